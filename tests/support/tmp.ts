// Temp dirs for tests, each removed when the test process exits (after the last after() hook), so a
// run leaves no /tmp/popkit-* behind, whether the file passed or failed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made = new Set<string>();
let hooked = false;

function removeAll(): void {
  for (const dir of made) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // a child that outlived its test may still hold a file open: nothing else to do at exit
    }
  }
  made.clear();
}

/** Register a directory for removal when this process exits. */
export function removeAtExit(dir: string): string {
  made.add(dir);
  if (!hooked) {
    hooked = true;
    process.once('exit', removeAll);
  }
  return dir;
}

/** A fresh directory under the system temp dir, named popkit-<prefix>…, removed at process exit. */
export function makeTempDir(prefix: string): string {
  const name = prefix.startsWith('popkit-') ? prefix : `popkit-${prefix}`;
  return removeAtExit(fs.mkdtempSync(path.join(os.tmpdir(), name)));
}
