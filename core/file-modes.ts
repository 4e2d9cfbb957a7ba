// The kit's files are for its own user: the data dir and the logs dir 0700, the LMDB store, its lock
// file and the logs 0600, whatever the umask (a umask only removes bits, so creating with these
// modes is enough for new files; existing ones are tightened). A directory this process does not own,
// or a shared one with the sticky bit (/tmp), is never chmodded: POPKIT_DATA_DIR pointing there is
// left as it is (docs/security.md#files-logs-clocks-and-replays).
import fs from 'node:fs';
import { mkdirDurable } from './durable-file.ts';

export const PRIVATE_DIR = 0o700;
export const PRIVATE_FILE = 0o600;

function ownedByUs(st: fs.Stats): boolean {
  return typeof process.getuid !== 'function' || st.uid === process.getuid();
}

/** Create `dir` (and parents, durably) and make it 0700 when it is ours; returns its mode. */
export function ensurePrivateDir(dir: string): number {
  mkdirDurable(dir, PRIVATE_DIR);
  const st = fs.statSync(dir);
  const sticky = (st.mode & 0o1000) !== 0;
  if ((st.mode & 0o077) !== 0 && !sticky && ownedByUs(st)) fs.chmodSync(dir, PRIVATE_DIR);
  return fs.statSync(dir).mode & 0o7777;
}

/** Tighten an existing file of ours to 0600 (a missing one is left missing). */
export function makePrivateFile(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return;
  }
  if ((st.mode & 0o077) !== 0 && ownedByUs(st)) fs.chmodSync(file, PRIVATE_FILE);
}
