// Files outside LMDB whose loss or tearing matters (keys, tokens, run status, kitd's state) are written
// through here: a temp file in the same directory, written, fsynced, then renamed over the target (or
// linked, when the target must not be replaced), then the directory fsynced. After a power cut at any
// moment the target holds either its old content or the new one in full, never a prefix or nothing.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface DurableWriteOptions {
  /** file mode, applied whatever the umask (default 0o644) */
  mode?: number;
  /** create only: when the target exists, leave it and return false (the atomic O_EXCL of a link) */
  exclusive?: boolean;
}

/** fsync a directory, so a rename or link inside it survives a power cut. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Create `dir` (and parents) with `mode` and make each new entry durable; an existing directory is left
 * as it is (core/file-modes.ts ensurePrivateDir narrows one that is too open).
 */
export function mkdirDurable(dir: string, mode = 0o755): void {
  const abs = path.resolve(dir);
  const missing: string[] = [];
  for (let d = abs; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      fs.mkdirSync(d, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    fsyncDir(path.dirname(d));
  }
}

/**
 * Write `data` to `file` atomically and durably. Returns false only with `exclusive` when the file
 * already existed (it is then untouched).
 */
export function writeFileDurable(
  file: string,
  data: string | Uint8Array,
  opts: DurableWriteOptions = {},
): boolean {
  const mode = opts.mode ?? 0o644;
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    try {
      fs.fchmodSync(fd, mode);
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off, buf.length - off);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (opts.exclusive) {
      try {
        fs.linkSync(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
    } else {
      fs.renameSync(tmp, file);
    }
    fsyncDir(dir);
    return true;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Append `data` to `file` (created with `mode` when missing) and fsync it before returning; a newly
 * created file's directory entry is fsynced too. For journals whose lines must outlive a power cut
 * once appended (the sandbox gateway's charges): a cut during the call may leave a torn last line,
 * which the reader must skip, but never loses a line this call returned for.
 */
export function appendFileDurable(file: string, data: string | Uint8Array, mode = 0o644): void {
  const created = !fs.existsSync(file);
  const fd = fs.openSync(file, 'a', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off, buf.length - off);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  if (created) fsyncDir(path.dirname(file));
}
