// The live playlist format is the contract between media (which writes it) and checkout (which reads
// it back to answer blocking reloads): declared here once, for both.
// The live playlist media owns (RFC 8216 and its low-latency extension, draft-pantos-hls-rfc8216bis):
// a pure model of the segment window and the parts of the newest segments, rendered as a plain
// playlist (index.m3u8, for players without LL-HLS) and a low-latency one (ll.m3u8). Pure: no files,
// no clock; hls-output.ts feeds it the parts GStreamer finishes and writes what it renders.
//
// Why we write it and not hlssink2: hlssink2 ends its playlist with #EXT-X-ENDLIST whenever its pipeline
// stops and restarts the media sequence at 0 with the next run, without a discontinuity; every ladder
// step, watchdog restart and process restart froze the venue screens (hls.js stops at ENDLIST).

export interface Part {
  uri: string;
  durationS: number;
  /** starts with an IDR: a player may begin decoding here */
  independent: boolean;
}

export interface Segment {
  msn: number;
  uri: string;
  durationS: number;
  /** wall clock of the segment's first frame (EXT-X-PROGRAM-DATE-TIME) */
  pdtMs: number;
  /** first segment of a pipeline run: EXT-X-DISCONTINUITY before it */
  discontinuity: boolean;
  /** discontinuity sequence number of this segment (RFC 8216 §4.3.3.3) */
  cc: number;
  parts: Part[];
}

export interface PlaylistShape {
  /** EXT-X-TARGETDURATION (whole seconds) */
  targetS: number;
  /** EXT-X-PART-INF PART-TARGET: no part lasts longer */
  partTargetS: number;
  /** parts per segment (a segment closes after this many parts) */
  partsPerSegment: number;
  /** segments listed */
  windowSegments: number;
}

/** Where the stream continues from: a fresh stream, or the state a previous run left. */
export interface PlaylistStart {
  nextMsn: number;
  /** discontinuity number of the newest published segment */
  cc: number;
  /** anything published before under these numbers (then the next run is marked a discontinuity) */
  published: boolean;
  segments?: Segment[];
}

export const segmentUri = (msn: number) => `seg${msn}.ts`;
export const partUri = (msn: number, part: number) => `seg${msn}-p${part}.ts`;

/** Durations as written: milliseconds, so a part written as 0.333 never exceeds a PART-TARGET of 0.334. */
const secs = (s: number) => (Math.round(s * 1000) / 1000).toFixed(3);

export interface OpenSegment {
  msn: number;
  pdtMs: number;
  discontinuity: boolean;
  cc: number;
  parts: Part[];
}

export class LivePlaylist {
  private readonly shape: PlaylistShape;
  private segs: Segment[];
  private openSeg: OpenSegment | undefined;
  private next: number;
  private ccNow: number;
  private published: boolean;
  private markNext = false;

  constructor(shape: PlaylistShape, start: PlaylistStart = { nextMsn: 0, cc: 0, published: false }) {
    if (!(shape.partTargetS > 0) || shape.partTargetS > shape.targetS || shape.partsPerSegment < 1) {
      throw new RangeError('a part target must be positive and at most the target duration');
    }
    this.shape = shape;
    this.segs = [...(start.segments ?? [])];
    this.next = start.nextMsn;
    this.ccNow = start.cc;
    this.published = start.published || this.segs.length > 0;
  }

  get segments(): readonly Segment[] {
    return this.segs;
  }

  get open(): OpenSegment | undefined {
    return this.openSeg;
  }

  /** The media sequence number the next new segment gets. */
  get nextMsn(): number {
    return this.openSeg ? this.openSeg.msn + 1 : this.next;
  }

  /** Discontinuity number of the newest segment (or of the next one, once a run has started). */
  get cc(): number {
    return this.ccNow;
  }

  /**
   * A pipeline run begins: its first segment is a discontinuity (new timestamps, maybe new caps)
   * unless nothing was ever published. Returns the discontinuity number the run's segments carry.
   */
  startRun(): number {
    this.closeOpen();
    // One number per DISCONTINUITY tag: a run that ended before its first part (a watchdog restart
    // again at once, a ladder step on a busy machine) tagged nothing, so the next run shares its
    // number. Counting it too made the window's EXT-X-DISCONTINUITY-SEQUENCE jump by one more than the
    // tags once the tagged segment was first in the window, and hls.js then refused the playlist
    // ("discontinuity sequence mismatch", a fatal levelParsingError, the screen reloaded).
    if (this.published && !this.markNext) {
      this.ccNow += 1;
      this.markNext = true;
    }
    return this.ccNow;
  }

  /** URI the next finished part will get (the EXT-X-PRELOAD-HINT). */
  nextPartUri(): string {
    return this.openSeg ? partUri(this.openSeg.msn, this.openSeg.parts.length) : partUri(this.next, 0);
  }

  /** The part the hint names, as (msn, part index). */
  nextPartPosition(): { msn: number; part: number } {
    return this.openSeg
      ? { msn: this.openSeg.msn, part: this.openSeg.parts.length }
      : { msn: this.next, part: 0 };
  }

  /**
   * A part finished (its file is already at `nextPartUri()`). Returns the segment it completed, if
   * any: the caller writes that segment's file before it renders a playlist that lists it.
   */
  addPart(durationS: number, startPdtMs: number, independent: boolean): Segment | undefined {
    if (!this.openSeg) {
      this.openSeg = {
        msn: this.next,
        pdtMs: startPdtMs,
        discontinuity: this.markNext,
        cc: this.ccNow,
        parts: [],
      };
      this.next += 1;
      this.markNext = false;
      this.published = true;
    }
    const o = this.openSeg;
    o.parts.push({ uri: partUri(o.msn, o.parts.length), durationS, independent });
    const total = o.parts.reduce((a, p) => a + p.durationS, 0);
    // Close on the part count, or earlier when one more part could round above the target duration.
    if (
      o.parts.length >= this.shape.partsPerSegment ||
      total + this.shape.partTargetS >= this.shape.targetS + 0.5
    ) {
      return this.closeOpen();
    }
    return undefined;
  }

  /** End of a run: the newest segment closes with the parts it has. */
  closeOpen(): Segment | undefined {
    const o = this.openSeg;
    if (!o) return undefined;
    this.openSeg = undefined;
    if (o.parts.length === 0) return undefined;
    const seg: Segment = {
      msn: o.msn,
      uri: segmentUri(o.msn),
      durationS: o.parts.reduce((a, p) => a + p.durationS, 0),
      pdtMs: o.pdtMs,
      discontinuity: o.discontinuity,
      cc: o.cc,
      parts: o.parts,
    };
    this.segs.push(seg);
    return seg;
  }

  /** Drop segments beyond the window; returns them (their files stay fetchable for a while). */
  trim(): Segment[] {
    const over = this.segs.length - this.shape.windowSegments;
    return over > 0 ? this.segs.splice(0, over) : [];
  }

  /** Forget every segment (the data volume is low and the files go); numbering continues. */
  clear(): Segment[] {
    this.closeOpen();
    const gone = this.segs;
    this.segs = [];
    return gone;
  }

  /** EXT-X-TARGETDURATION: the configured one, raised if a segment ever rounded above it. */
  targetDuration(): number {
    let t = this.shape.targetS;
    for (const s of this.segs) t = Math.max(t, Math.round(s.durationS));
    return t;
  }

  partTarget(): number {
    let t = this.shape.partTargetS;
    for (const s of this.segs) for (const p of s.parts) t = Math.max(t, p.durationS);
    for (const p of this.openSeg?.parts ?? []) t = Math.max(t, p.durationS);
    return Math.ceil(t * 1000) / 1000;
  }

  private header(version: number): string[] {
    const first = this.segs[0] ?? this.openSeg;
    const msn = first ? first.msn : this.next;
    // the number of the first listed segment, less the tag it carries itself (RFC 8216 §4.3.3.3)
    const dsn = first ? first.cc - (first.discontinuity ? 1 : 0) : this.ccNow;
    return [
      '#EXTM3U',
      `#EXT-X-VERSION:${version}`,
      `#EXT-X-TARGETDURATION:${this.targetDuration()}`,
      `#EXT-X-MEDIA-SEQUENCE:${msn}`,
      `#EXT-X-DISCONTINUITY-SEQUENCE:${dsn}`,
    ];
  }

  private segmentTags(s: { discontinuity: boolean; pdtMs: number }): string[] {
    const out: string[] = [];
    if (s.discontinuity) out.push('#EXT-X-DISCONTINUITY');
    out.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.pdtMs).toISOString()}`);
    return out;
  }

  /** The playlist for players without LL-HLS: whole segments only. Never an ENDLIST: the show is live. */
  renderPlain(): string {
    const lines = this.header(3);
    for (const s of this.segs) {
      lines.push(...this.segmentTags(s), `#EXTINF:${secs(s.durationS)},`, s.uri);
    }
    return `${lines.join('\n')}\n`;
  }

  /** The low-latency playlist: segments, the parts of the last three target durations, a preload hint. */
  renderLL(): string {
    const partTarget = this.partTarget();
    const lines = this.header(6);
    lines.splice(
      3,
      0,
      `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${secs(3 * partTarget)}`,
      `#EXT-X-PART-INF:PART-TARGET=${secs(partTarget)}`,
    );
    // Parts more than three target durations from the end of the playlist are left out (LL-HLS §4.4.4.9).
    const horizon = 3 * this.targetDuration();
    let fromEnd = (this.openSeg?.parts ?? []).reduce((a, p) => a + p.durationS, 0);
    const withParts = new Set<number>();
    for (let i = this.segs.length - 1; i >= 0; i--) {
      const s = this.segs[i]!;
      fromEnd += s.durationS;
      if (fromEnd - s.durationS >= horizon) break;
      withParts.add(s.msn);
    }
    const partLine = (p: Part) =>
      `#EXT-X-PART:DURATION=${secs(p.durationS)},URI="${p.uri}"${p.independent ? ',INDEPENDENT=YES' : ''}`;
    for (const s of this.segs) {
      lines.push(...this.segmentTags(s));
      if (withParts.has(s.msn)) for (const p of s.parts) lines.push(partLine(p));
      lines.push(`#EXTINF:${secs(s.durationS)},`, s.uri);
    }
    const o = this.openSeg;
    if (o) {
      lines.push(...this.segmentTags(o));
      for (const p of o.parts) lines.push(partLine(p));
    }
    lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${this.nextPartUri()}"`);
    return `${lines.join('\n')}\n`;
  }
}

// --- reading a playlist back --------------------------------------------------------------------

export interface ParsedPlaylist {
  mediaSequence: number;
  discontinuitySequence: number;
  targetDuration: number;
  partTarget: number | undefined;
  segments: Segment[];
  /** parts listed after the last whole segment (the segment being produced) */
  openParts: Part[];
  openPdtMs: number | undefined;
  openDiscontinuity: boolean;
  preloadHint: string | undefined;
  endList: boolean;
}

const attr = (line: string, name: string): string | undefined => {
  const m = new RegExp(`(?:^|[:,])${name}=("([^"]*)"|[^,]*)`).exec(line);
  return m ? (m[2] ?? m[1]) : undefined;
};

/**
 * Parse a media playlist (ours, or any simple one). Unknown tags are ignored as RFC 8216 asks;
 * returns undefined for text that is not a playlist at all.
 */
export function parseMediaPlaylist(text: string): ParsedPlaylist | undefined {
  const lines = text.split('\n').map((l) => l.trim());
  if (lines[0] !== '#EXTM3U') return undefined;
  const out: ParsedPlaylist = {
    mediaSequence: 0,
    discontinuitySequence: 0,
    targetDuration: 0,
    partTarget: undefined,
    segments: [],
    openParts: [],
    openPdtMs: undefined,
    openDiscontinuity: false,
    preloadHint: undefined,
    endList: false,
  };
  let cc = 0;
  let extinf: number | undefined;
  let disc = false;
  let pdt: number | undefined;
  let parts: Part[] = [];
  for (const line of lines.slice(1)) {
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) out.mediaSequence = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-DISCONTINUITY-SEQUENCE:')) {
      out.discontinuitySequence = Number(line.slice(30));
      cc = out.discontinuitySequence;
    } else if (line.startsWith('#EXT-X-TARGETDURATION:')) out.targetDuration = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-PART-INF:')) out.partTarget = Number(attr(line, 'PART-TARGET'));
    else if (line === '#EXT-X-DISCONTINUITY') disc = true;
    else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdt = Date.parse(line.slice(25));
    else if (line.startsWith('#EXT-X-PART:')) {
      parts.push({
        uri: attr(line, 'URI') ?? '',
        durationS: Number(attr(line, 'DURATION')),
        independent: attr(line, 'INDEPENDENT') === 'YES',
      });
    } else if (line.startsWith('#EXT-X-PRELOAD-HINT:')) out.preloadHint = attr(line, 'URI');
    else if (line === '#EXT-X-ENDLIST') out.endList = true;
    else if (line.startsWith('#EXTINF:')) extinf = Number.parseFloat(line.slice(8));
    else if (line && !line.startsWith('#') && extinf !== undefined) {
      if (disc) cc += 1;
      out.segments.push({
        msn: out.mediaSequence + out.segments.length,
        uri: line,
        durationS: extinf,
        pdtMs: pdt ?? Number.NaN,
        discontinuity: disc,
        cc,
        parts,
      });
      extinf = undefined;
      disc = false;
      pdt = undefined;
      parts = [];
    }
  }
  out.openParts = parts;
  out.openPdtMs = parts.length > 0 ? pdt : undefined;
  out.openDiscontinuity = parts.length > 0 && disc;
  return out;
}

/** Where a playlist stands for a blocking reload: the last whole segment and the parts after it. */
export function playlistPosition(p: ParsedPlaylist): { lastMsn: number; openParts: number } {
  return { lastMsn: p.mediaSequence + p.segments.length - 1, openParts: p.openParts.length };
}
