// The numbering the live playlist must never take back, kept durably in <data>/run/media-hls.json.
//
// Cost choice: the playlists are rewritten three times a second (every part) by an atomic rename
// without fsync; an fsync per part on an SD card costs wear and 5–50 ms of stalled writes each. What
// must survive a power cut is only that numbers never go backwards, so this small file is written
// durably (core/durable-file.ts) once per pipeline run (its discontinuity number) and once per
// RESERVE segments (a media-sequence reservation, like a hi-lo id allocator): about one fsync a
// minute with 1 s segments. After a reboot (a new kernel boot id: the page cache and with it any
// playlist not yet on disk may be gone) the stream continues from the reservation, a jump forward
// marked by a discontinuity; after a process restart on the same boot the playlist on disk is the
// last one published (a rename is visible at once to every reader), so the stream continues gaplessly
// from it.
import fs from 'node:fs';
import path from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { mkdirDurable, writeFileDurable } from '../../core/durable-file.ts';

export const RESERVE = 64;

export const HlsState = Type.Object(
  {
    v: Type.Literal(1),
    /** kernel boot id when written */
    bootId: Type.String({ maxLength: 64 }),
    /** every media sequence number published so far is below this */
    msnReserved: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    /** discontinuity number of the newest pipeline run */
    cc: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  },
  { additionalProperties: false },
);
export type HlsStateT = Static<typeof HlsState>;

export function readBootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().slice(0, 64);
  } catch {
    // no /proc: treat every start as a new boot (always safe, costs a jump in numbers)
    return `unknown-${process.pid}-${Date.now()}`;
  }
}

/** The stored state; undefined when absent or not ours (a torn or hand-edited file is not trusted). */
export function loadHlsState(file: string): HlsStateT | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  return Value.Check(HlsState, raw) ? raw : undefined;
}

export class HlsStateStore {
  private state: HlsStateT;

  constructor(
    private readonly file: string,
    bootId: string,
    initial: { msnReserved: number; cc: number },
  ) {
    this.state = { v: 1, bootId, msnReserved: initial.msnReserved, cc: initial.cc };
  }

  get current(): Readonly<HlsStateT> {
    return this.state;
  }

  /** Make sure `msn` may be published: reserve further ahead (durably) when it is not yet covered. */
  cover(msn: number): void {
    if (msn < this.state.msnReserved) return;
    this.save({ ...this.state, msnReserved: msn + RESERVE });
  }

  /** A new run with discontinuity number `cc` (and `nextMsn` coming): durable before it is published. */
  run(cc: number, nextMsn: number): void {
    const msnReserved = Math.max(this.state.msnReserved, nextMsn + RESERVE);
    this.save({ ...this.state, cc, msnReserved });
  }

  private save(next: HlsStateT): void {
    mkdirDurable(path.dirname(this.file));
    writeFileDurable(this.file, `${JSON.stringify(next)}\n`);
    this.state = next;
  }
}
