// A fake host root for pty tests: `/dev/serial/by-id` links live under it (POPKIT_HOST_ROOT), and every
// socat pair started through `pairs` is killed, and the root removed, when the test file ends.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import type { PtyPair } from '../../hardware/sim/pty-pair.ts';
import { waitFor } from './hub-link.ts';

export function ptyHostRoot(prefix: string): { root: string; env: NodeJS.ProcessEnv; pairs: PtyPair[] } {
  const root = mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  const pairs: PtyPair[] = [];
  after(async () => {
    for (const p of pairs) await p.kill();
    rmSync(root, { recursive: true, force: true });
  });
  return { root, env: { ...process.env, POPKIT_HOST_ROOT: root }, pairs };
}

/** Poll `cond` every 20 ms; fails (never hangs) after `timeoutMs`. */
export async function until(what: string, cond: () => boolean, timeoutMs = 8000): Promise<void> {
  await waitFor(cond, timeoutMs, what);
}
