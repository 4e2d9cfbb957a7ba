// The HLS directory as media owns it: GStreamer (splitmuxsink + mpegtsmux) writes one short TS file
// per GOP (a "part", about 1/3 s, starting with an IDR); this module learns each finished part from
// splitmuxsink's `splitmuxsink-fragment-closed` bus message (gstreamer-superficial passes element
// messages with their fields), renames it to its part name, concatenates every few parts into a whole
// segment, and rewrites index.m3u8 (plain) and ll.m3u8 (low latency) by atomic rename. Removed
// segments stay fetchable for the playlist's duration plus one segment (RFC 8216 §6.2.2).
import fs from 'node:fs';
import path from 'node:path';
import {
  LivePlaylist,
  type Part,
  type PlaylistShape,
  parseMediaPlaylist,
  partUri,
  type Segment,
  segmentUri,
} from '../../core/contracts/hls-playlist.ts';
import type { Logger } from '../../core/logger.ts';
import { HlsStateStore, loadHlsState, RESERVE } from './hls-state.ts';

export const PLAIN_PLAYLIST = 'index.m3u8';
export const LL_PLAYLIST = 'll.m3u8';

export interface HlsOutputOptions {
  hlsDir: string;
  stateFile: string;
  bootId: string;
  shape: PlaylistShape;
  log: Logger;
  now?: () => number;
}

/** A splitmuxsink bus message as gstreamer-superficial delivers it. */
export interface FragmentMessage {
  type: string;
  name?: unknown;
  location?: unknown;
  'running-time'?: unknown;
}

function writeAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${path.dirname(file)}/.${path.basename(file)}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

const OURS = /^(seg\d+(-p\d+)?\.ts|w[a-z0-9]+-\d+-\d+\.ts|(index|ll)\.m3u8|\..*\.tmp)$/;

export class HlsOutput {
  private readonly dir: string;
  private readonly now: () => number;
  private playlist!: LivePlaylist;
  private store!: HlsStateStore;
  /** file name → when it may be deleted */
  private readonly doomed = new Map<string, number>();
  private run: { prefix: string; wallStartMs: number; opened: Map<string, number> } | undefined;
  private partsSeen = 0;

  constructor(private readonly opts: HlsOutputOptions) {
    this.dir = opts.hlsDir;
    this.now = opts.now ?? Date.now;
  }

  get live(): LivePlaylist {
    return this.playlist;
  }

  /** Parts finished since this process started (for the bench and stats). */
  get parts(): number {
    return this.partsSeen;
  }

  /** How long a segment stays on disk after it left the playlist: playlist duration + a segment. */
  graceMs(): number {
    const { shape } = this.opts;
    return (shape.windowSegments + 2) * shape.targetS * 1000;
  }

  /** Pick up where the last process left off (see hls-state.ts for why same boot and a new boot differ). */
  open(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    const { bootId, shape, stateFile } = this.opts;
    const saved = loadHlsState(stateFile);
    const sameBoot = saved?.bootId === bootId;
    const prev = sameBoot ? this.readOwnPlaylist() : undefined;
    let segments: Segment[] = [];
    // Without a readable state (first start, or a file that is not ours) the floor is whatever the
    // directory shows was published, plus a reservation's worth: never a number a player has seen.
    const floor = saved ? undefined : this.floorFromDisk();
    let nextMsn = saved?.msnReserved ?? floor?.msn ?? 0;
    let cc = saved?.cc ?? floor?.cc ?? 0;
    let published = saved !== undefined || floor !== undefined;
    if (prev) {
      segments = this.restorable(prev.segments);
      nextMsn = prev.mediaSequence + prev.segments.length;
      // the playlist's own discontinuity numbering (one per tag it carries), not the saved one: that
      // counts the run that began last, which may have ended before its first part and tagged nothing
      const lastCc = prev.segments[prev.segments.length - 1]?.cc;
      if (lastCc !== undefined) cc = lastCc;
      else if (Number.isSafeInteger(prev.discontinuitySequence)) cc = prev.discontinuitySequence;
      // Files of the segment in progress may exist; a file numbered beyond it means the playlist is
      // not the last one published (not ours, or edited): continue above every number on disk instead.
      const onDisk = this.highestSegmentFile();
      const consistent = onDisk <= nextMsn;
      if (!consistent) {
        segments = [];
        nextMsn = Math.max(nextMsn, onDisk + 1, saved?.msnReserved ?? 0);
      }
      const open = consistent ? this.finishOpen(prev, nextMsn, cc) : undefined;
      if (open) {
        segments.push(open);
        nextMsn += 1;
        cc = open.cc;
      }
      published = true;
    }
    this.playlist = new LivePlaylist(shape, { nextMsn, cc, published, segments });
    this.store = new HlsStateStore(stateFile, bootId, { msnReserved: saved?.msnReserved ?? nextMsn, cc });
    const keep = new Set<string>();
    for (const s of segments) {
      keep.add(s.uri);
      for (const p of s.parts) keep.add(p.uri);
    }
    for (const name of this.listDir()) {
      if (keep.has(name) || name === PLAIN_PLAYLIST || name === LL_PLAYLIST) continue;
      // after a reboot nothing old is listed anywhere; otherwise a screen may still be fetching it
      if (sameBoot) this.doomed.set(name, this.now() + this.graceMs());
      else fs.rmSync(path.join(this.dir, name), { force: true });
    }
    for (const s of this.playlist.trim()) this.doom(s);
    if (segments.length > 0) this.writePlaylists(true);
    else this.removePlaylists();
    this.opts.log.info(
      { nextMsn: this.playlist.nextMsn, cc, restored: segments.length, sameBoot },
      'media: live playlist continues',
    );
  }

  private listDir(): string[] {
    try {
      return fs.readdirSync(this.dir).filter((n) => OURS.test(n));
    } catch {
      return [];
    }
  }

  private highestSegmentFile(): number {
    let msn = -1;
    for (const name of this.listDir()) {
      const m = /^seg(\d{1,15})(?:-p\d+)?\.ts$/.exec(name);
      if (m) msn = Math.max(msn, Number(m[1]));
    }
    return msn;
  }

  /** Numbers a previous run may have published, judged from the files alone. */
  private floorFromDisk(): { msn: number; cc: number } | undefined {
    let msn = this.highestSegmentFile();
    let cc = -1;
    for (const name of [LL_PLAYLIST, PLAIN_PLAYLIST]) {
      try {
        const p = parseMediaPlaylist(fs.readFileSync(path.join(this.dir, name), 'utf8'));
        if (!p) continue;
        const last = p.mediaSequence + p.segments.length + 1;
        if (Number.isSafeInteger(last)) msn = Math.max(msn, last);
        if (Number.isSafeInteger(p.discontinuitySequence)) {
          cc = Math.max(cc, p.discontinuitySequence + p.segments.filter((x) => x.discontinuity).length + 1);
        }
      } catch {
        // absent
      }
    }
    if (msn < 0 && cc < 0) return undefined;
    return { msn: Math.max(0, msn) + RESERVE, cc: Math.max(0, cc) };
  }

  private readOwnPlaylist() {
    try {
      const p = parseMediaPlaylist(fs.readFileSync(path.join(this.dir, LL_PLAYLIST), 'utf8'));
      return p && Number.isSafeInteger(p.mediaSequence) && p.mediaSequence >= 0 ? p : undefined;
    } catch {
      return undefined;
    }
  }

  private exists(uri: string): boolean {
    return /^seg\d+(-p\d+)?\.ts$/.test(uri) && fs.existsSync(path.join(this.dir, uri));
  }

  /** The newest run of listed segments that are ours, sound, and whose files are all still there. */
  private restorable(segs: Segment[]): Segment[] {
    const sound = (s: Segment) =>
      s.uri === segmentUri(s.msn) &&
      Number.isFinite(s.durationS) &&
      s.durationS > 0 &&
      s.durationS <= 60 &&
      Number.isFinite(s.pdtMs) &&
      s.parts.every((p) => Number.isFinite(p.durationS) && p.durationS > 0 && p.durationS <= 60) &&
      this.exists(s.uri);
    let from = segs.length;
    while (from > 0 && sound(segs[from - 1]!)) from -= 1;
    return segs.slice(from).map((s) => ({ ...s, parts: s.parts.filter((p) => this.exists(p.uri)) }));
  }

  /** The previous process's unfinished segment, closed with the parts it had published. */
  private finishOpen(
    prev: NonNullable<ReturnType<HlsOutput['readOwnPlaylist']>>,
    msn: number,
    lastCc: number,
  ): Segment | undefined {
    const parts = prev.openParts.filter(
      (p, i) => p.uri === partUri(msn, i) && p.durationS > 0 && p.durationS <= 60 && this.exists(p.uri),
    );
    if (parts.length === 0 || parts.length !== prev.openParts.length) return undefined;
    const seg: Segment = {
      msn,
      uri: segmentUri(msn),
      durationS: parts.reduce((a, p) => a + p.durationS, 0),
      pdtMs: prev.openPdtMs ?? this.now(),
      discontinuity: prev.openDiscontinuity,
      cc: prev.openDiscontinuity ? lastCc + 1 : lastCc,
      parts,
    };
    this.writeSegment(seg);
    return seg;
  }

  /** A pipeline run begins; `prefix` names the files splitmuxsink writes for it. */
  startRun(prefix: string, wallStartMs: number): void {
    this.endRun();
    const cc = this.playlist.startRun();
    this.store.run(cc, this.playlist.nextMsn);
    this.run = { prefix, wallStartMs, opened: new Map() };
  }

  /** The run ended (pipeline stopped): close the newest segment, drop the unfinished part. */
  endRun(): void {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    const seg = this.playlist.closeOpen();
    if (seg) this.writeSegment(seg);
    for (const name of this.listDir()) {
      if (name.startsWith(`${run.prefix}-`)) fs.rmSync(path.join(this.dir, name), { force: true });
    }
    if (seg) this.publish();
  }

  /** A bus message; returns true when it was a finished part. */
  onMessage(msg: FragmentMessage): boolean {
    const run = this.run;
    if (!run || msg.type !== 'element' || typeof msg.location !== 'string') return false;
    const rt = Number(msg['running-time']);
    const name = path.basename(msg.location);
    if (!Number.isFinite(rt) || !name.startsWith(`${run.prefix}-`)) return false;
    if (msg.name === 'splitmuxsink-fragment-opened') {
      run.opened.set(name, rt);
      return false;
    }
    if (msg.name !== 'splitmuxsink-fragment-closed') return false;
    const startRt = run.opened.get(name);
    run.opened.delete(name);
    if (startRt === undefined || rt <= startRt) return false;
    const { msn } = this.playlist.nextPartPosition();
    // the hint one ahead may name the next segment: both numbers are reserved before anyone sees them
    this.store.cover(msn + 1);
    try {
      fs.renameSync(path.join(this.dir, name), path.join(this.dir, this.playlist.nextPartUri()));
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, name }, 'media: part vanished before listing');
      return false;
    }
    this.partsSeen += 1;
    // splitmuxsink cuts only at keyframes, so every part starts with an IDR
    const seg = this.playlist.addPart((rt - startRt) / 1e9, run.wallStartMs + startRt / 1e6, true);
    if (seg) this.writeSegment(seg);
    this.publish(seg !== undefined);
    return true;
  }

  private writeSegment(seg: Segment): void {
    const bufs = seg.parts.map((p: Part) => fs.readFileSync(path.join(this.dir, p.uri)));
    writeAtomic(path.join(this.dir, seg.uri), Buffer.concat(bufs));
  }

  private doom(seg: Segment): void {
    const at = this.now() + this.graceMs();
    this.doomed.set(seg.uri, at);
    for (const p of seg.parts) this.doomed.set(p.uri, at);
  }

  private publish(segmentsChanged = true): void {
    for (const s of this.playlist.trim()) this.doom(s);
    this.writePlaylists(segmentsChanged);
  }

  private writePlaylists(plainToo: boolean): void {
    fs.mkdirSync(this.dir, { recursive: true });
    writeAtomic(path.join(this.dir, LL_PLAYLIST), this.playlist.renderLL());
    if (plainToo && this.playlist.segments.length > 0) {
      writeAtomic(path.join(this.dir, PLAIN_PLAYLIST), this.playlist.renderPlain());
    }
  }

  private removePlaylists(): void {
    fs.rmSync(path.join(this.dir, PLAIN_PLAYLIST), { force: true });
    fs.rmSync(path.join(this.dir, LL_PLAYLIST), { force: true });
  }

  /** Delete what left the playlists long enough ago. Returns how many files went. */
  sweep(): number {
    const now = this.now();
    let n = 0;
    for (const [name, at] of this.doomed) {
      if (at > now) continue;
      this.doomed.delete(name);
      fs.rmSync(path.join(this.dir, name), { force: true });
      n += 1;
    }
    return n;
  }

  /** The data volume is low: every file goes now, the numbering continues. */
  clear(): void {
    this.endRun();
    this.playlist.clear();
    this.doomed.clear();
    for (const name of this.listDir()) fs.rmSync(path.join(this.dir, name), { force: true });
  }
}
