// Which processes are still about: for tests that must leave nothing running.
import fs from 'node:fs';

/** Processes whose command line or environment names `dir` (a kit's data dir is in both for its children). */
export function processesUsing(dir: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
      if (cmd.includes(dir) || env.includes(`POPKIT_DATA_DIR=${dir}`))
        found.push(`${pid} ${cmd.replace(/\0/g, ' ')}`);
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}
