// A child's log under `popkit up`: its stdout and stderr come through pipes into the parent, which
// writes whole lines into <dir>/<name>.log and rotates it by size (rotating-file-stream, classical
// logrotate: <name>.log.1 is the newest rotated file, the oldest beyond `files` is removed). Nothing
// is lost at a rotation: a write is never split between two files, writes queue while a rotation
// runs, and a full stream pauses the pipe (the child then waits on its own write) instead of dropping.
// Every file is 0600 in a 0700 dir. Deliberately not durable (no fsync per line, not core/durable-
// file.ts): logs are appended at the rate of the children's output, and an fsync per line would cost
// checkout's commits their disk; a power cut loses the log's last seconds, the tail the page cache
// held (docs/power-cuts.md). Nothing the kit acknowledges is kept only in a log.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { createStream, type RotatingFileStream } from 'rotating-file-stream';
import { ensurePrivateDir, makePrivateFile, PRIVATE_FILE } from './file-modes.ts';

export interface LogRotation {
  /** rotate once the file reaches this many bytes */
  maxBytes: number;
  /** rotated files kept beside the live one */
  files: number;
}

export const DEFAULT_LOG_ROTATION: LogRotation = { maxBytes: 10 * 1024 * 1024, files: 5 };

export class RotatingLog {
  private readonly stream: RotatingFileStream;
  private readonly ended: Promise<void>;
  /** sources paused until the file stream drains */
  private readonly paused = new Set<Readable>();

  constructor(dir: string, name: string, rotation: LogRotation) {
    ensurePrivateDir(dir);
    const live = `${name}.log`;
    // a live file left open by an older release is tightened before rotation renames it
    makePrivateFile(`${dir}/${live}`);
    // classical rotation calls the generator with the index alone (null: the live file)
    const fileName = (index: number | Date | null) =>
      typeof index === 'number' && index > 0 ? `${live}.${index}` : live;
    this.stream = createStream(fileName as (time: number | Date) => string, {
      path: dir,
      size: `${Math.max(1, Math.floor(rotation.maxBytes))}B`,
      rotate: Math.max(1, Math.floor(rotation.files)),
      mode: PRIVATE_FILE,
    });
    this.ended = new Promise<void>((resolve) => {
      this.stream.once('finish', () => resolve());
      this.stream.once('close', () => resolve());
    });
    this.stream.on('error', (err) => {
      // nothing more can be written: say so where the parent's own output goes, and let the children
      // write on (into nothing) rather than block on a full pipe forever
      process.stderr.write(`popkit: log ${name}: ${err.message}\n`);
      for (const source of this.paused) source.resume();
      this.paused.clear();
    });
  }

  /** Copy `source` into the log, whole lines at a time, pausing it while the file stream is full. */
  follow(source: Readable): void {
    let carry = '';
    source.setEncoding('utf8');
    const write = (text: string) => {
      if (!text || this.stream.destroyed || this.stream.writableEnded) return;
      if (!this.stream.write(text) && !this.paused.has(source)) {
        source.pause();
        this.paused.add(source);
        this.stream.once('drain', () => {
          this.paused.delete(source);
          source.resume();
        });
      }
    };
    source.on('data', (chunk: string) => {
      const text = carry + chunk;
      const cut = text.lastIndexOf('\n') + 1;
      carry = text.slice(cut);
      write(text.slice(0, cut));
    });
    source.on('end', () => {
      write(carry ? `${carry}\n` : '');
      carry = '';
    });
  }

  /** Flush what is queued and close the file. */
  async close(): Promise<void> {
    if (!this.stream.writableEnded) this.stream.end();
    await this.ended;
  }
}

/** The live file and its rotated ones, newest first (for tests and `popkit logs`-like readers). */
export function logFiles(dir: string, name: string): string[] {
  const live = `${name}.log`;
  const rotated = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${live}.`) && /^\d+$/.test(f.slice(live.length + 1)))
    .sort((a, b) => Number(a.slice(live.length + 1)) - Number(b.slice(live.length + 1)));
  return [live, ...rotated].filter((f) => fs.existsSync(`${dir}/${f}`)).map((f) => `${dir}/${f}`);
}
