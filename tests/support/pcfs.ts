// A data dir on pcfs (tests/support/pcfs.py): a FUSE passthrough that forgets, at a "power cut", every
// write that was not made durable. Needs /dev/fuse, fusermount and Debian's python3-fusepy (fuse3
// python3-fusepy, scripts/setup.sh); where it cannot mount, mountPcfs throws (the tests fail, loudly,
// rather than skip).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PCFS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pcfs.py');
// Debian's interpreter: python3-fusepy is installed for it, not for a pyenv or venv python3 on PATH
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

export interface PcfsResult {
  cut: boolean;
  files: number;
  bytes_rolled_back: number;
  fsyncs: number;
  writes: number;
}

export interface Pcfs {
  /** where the files really are (rolled back at a cut) */
  backing: string;
  /** where programs read and write them */
  mount: string;
  /** unmount and roll back to the durable state: a power cut (stop every writer first) */
  cut(): Promise<PcfsResult>;
  /** unmount keeping everything (a clean shutdown) */
  unmount(): Promise<PcfsResult>;
  /**
   * Hold the next writes through an O_SYNC/O_DSYNC descriptor (LMDB's meta page) before they reach
   * the backing, as a loaded pcfs is slow to apply them; `held()` resolves once one waits.
   */
  holdSyncWrites(): { held(): Promise<void>; release(): void };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mounted = (dir: string) => fs.readFileSync('/proc/self/mounts', 'utf8').includes(` ${dir} fuse`);

function fusermount(args: string[]): Promise<string | undefined> {
  return new Promise((resolve) =>
    execFile('fusermount', args, (err, _out, stderr) => resolve(err ? stderr || String(err) : undefined)),
  );
}

/** Mount pcfs over `backing` (created if needed) at `mount`; throws when FUSE does not work here. */
export async function mountPcfs(backing: string, mount: string): Promise<Pcfs> {
  fs.mkdirSync(backing, { recursive: true });
  fs.mkdirSync(mount, { recursive: true });
  const child: ChildProcess = spawn(PYTHON, [PCFS, backing, mount], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  // 'close', not 'exit': 'exit' may come before the last of its stdout is read, and the report pcfs
  // prints as it ends was then missed ("did not report", on a loaded CI machine)
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const deadline = Date.now() + 15_000;
  while (!mounted(mount)) {
    if (gone || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `pcfs could not mount ${mount}: it needs /dev/fuse, fusermount and python3-fusepy (apt-get install fuse3 python3-fusepy; as root or with user_allow_other). pcfs said: ${err.trim() || '(nothing)'}`,
      );
    }
    await sleep(20);
  }

  async function unmount(cut: boolean): Promise<PcfsResult> {
    if (cut) fs.writeFileSync(`${path.resolve(backing)}.cut`, '');
    const until = Date.now() + 15_000;
    for (;;) {
      const problem = await fusermount(['-u', mount]);
      if (!problem) break;
      // a writer that was just killed may still hold a file open for a moment
      if (Date.now() > until) {
        await fusermount(['-uz', mount]);
        throw new Error(`pcfs: cannot unmount ${mount}: ${problem}`);
      }
      await sleep(50);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 30_000)))]);
    clearTimeout(timer);
    const line = out.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as PcfsResult;
    } catch {
      throw new Error(
        `pcfs did not report after unmount (${gone ? 'it ended' : 'still running after 30 s'}): ${out} ${err}`,
      );
    }
  }

  function holdSyncWrites() {
    const hold = `${path.resolve(backing)}.hold`;
    const held = `${path.resolve(backing)}.held`;
    fs.writeFileSync(hold, '');
    return {
      async held() {
        const until = Date.now() + 15_000;
        while (!fs.existsSync(held)) {
          if (Date.now() > until) throw new Error('pcfs: no synchronous write came to be held');
          await sleep(10);
        }
      },
      release: () => fs.rmSync(hold, { force: true }),
    };
  }

  return { backing, mount, cut: () => unmount(true), unmount: () => unmount(false), holdSyncWrites };
}
