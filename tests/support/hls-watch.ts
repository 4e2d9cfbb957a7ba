// Watches a live playlist the way a player reloads it, and checks that successive versions are one
// continuous stream: media sequence and discontinuity sequence never go back, a segment number always
// names the same segment, no ENDLIST, every version parses (never torn).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { type ParsedPlaylist, parseMediaPlaylist } from '../../core/contracts/hls-playlist.ts';

export class PlaylistWatch {
  readonly versions: ParsedPlaylist[] = [];
  readonly problems: string[] = [];
  /** msn → uri and discontinuity number, as first seen */
  readonly seen = new Map<number, { uri: string; cc: number; discontinuity: boolean }>();
  private last = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly file: string) {}

  start(everyMs = 40): this {
    this.timer = setInterval(() => this.sample(), everyMs);
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  sample(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch {
      return; // not there (yet): a player gets 404 and retries
    }
    if (text === this.last) return;
    this.last = text;
    const p = parseMediaPlaylist(text);
    if (!p || !text.endsWith('\n')) {
      this.problems.push(`torn or unparsable playlist: ${JSON.stringify(text.slice(0, 200))}`);
      return;
    }
    if (p.endList) this.problems.push('ENDLIST in a live playlist');
    const prev = this.versions[this.versions.length - 1];
    if (prev && p.mediaSequence < prev.mediaSequence) {
      this.problems.push(`media sequence went back ${prev.mediaSequence} -> ${p.mediaSequence}`);
    }
    if (prev && p.discontinuitySequence < prev.discontinuitySequence) {
      this.problems.push(
        `discontinuity sequence went back ${prev.discontinuitySequence} -> ${p.discontinuitySequence}`,
      );
    }
    for (const s of p.segments) {
      const was = this.seen.get(s.msn);
      if (!was) this.seen.set(s.msn, { uri: s.uri, cc: s.cc, discontinuity: s.discontinuity });
      else if (was.uri !== s.uri || was.cc !== s.cc) {
        this.problems.push(`segment ${s.msn} changed: ${JSON.stringify(was)} -> ${s.uri} cc ${s.cc}`);
      }
    }
    this.versions.push(p);
  }

  /** Segment numbers seen, ascending. */
  msns(): number[] {
    return [...this.seen.keys()].sort((a, b) => a - b);
  }

  assertContinuous(): void {
    assert.deepEqual(this.problems, [], 'the playlist stays one continuous live stream');
  }
}
