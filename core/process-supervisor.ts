// Keeps the kit's processes running inside `popkit up` (on balena the supervisor does this per container):
// restarts a child that exits, with growing backoff that resets after a healthy run, and restarts one on
// request (kitd's watchdog asks over the local bus). Each child's output goes to <logDir>/<name>.log.
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Backoff } from './backoff.ts';
import { ensurePrivateDir, makePrivateFile, PRIVATE_FILE } from './file-modes.ts';

export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** a run this long counts as healthy and resets the backoff */
  healthyAfterMs?: number;
}

interface ChildState {
  spec: ChildSpec;
  proc: ChildProcess | null;
  restarts: number;
  backoff: Backoff;
  startedAt: number;
  timer: NodeJS.Timeout | null;
  lastExit: { code: number | null; signal: string | null; at: string } | null;
}

export interface SupervisorView {
  name: string;
  pid: number | null;
  running: boolean;
  restarts: number;
  lastExit: ChildState['lastExit'];
}

export class ProcessSupervisor extends EventEmitter {
  private readonly children = new Map<string, ChildState>();
  private stopping = false;

  constructor(
    private readonly logDir: string,
    private readonly opts: { minBackoffMs?: number; maxBackoffMs?: number } = {},
  ) {
    super();
  }

  add(spec: ChildSpec): void {
    const state: ChildState = {
      spec,
      proc: null,
      restarts: 0,
      backoff: new Backoff({
        initialMs: this.opts.minBackoffMs ?? 500,
        maxMs: this.opts.maxBackoffMs ?? 30_000,
      }),
      startedAt: 0,
      timer: null,
      lastExit: null,
    };
    this.children.set(spec.name, state);
    this.launch(state);
  }

  private launch(state: ChildState): void {
    if (this.stopping) return;
    ensurePrivateDir(this.logDir);
    const file = path.join(this.logDir, `${state.spec.name}.log`);
    const out = fs.openSync(file, 'a', PRIVATE_FILE);
    makePrivateFile(file);
    const proc = spawn(state.spec.command, state.spec.args, {
      env: state.spec.env,
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    state.proc = proc;
    state.startedAt = Date.now();
    this.emit('start', state.spec.name, proc.pid);
    proc.once('exit', (code, signal) => {
      state.proc = null;
      state.lastExit = { code, signal, at: new Date().toISOString() };
      if (this.stopping) return;
      const ranMs = Date.now() - state.startedAt;
      if (ranMs > (state.spec.healthyAfterMs ?? 30_000)) state.backoff.reset();
      state.restarts += 1;
      const delay = state.backoff.next();
      this.emit('exit', state.spec.name, code, signal, delay);
      state.timer = setTimeout(() => {
        state.timer = null;
        this.launch(state);
      }, delay);
    });
  }

  /** Restart a child now (SIGTERM; the exit handler brings it back). */
  restart(name: string): boolean {
    const state = this.children.get(name);
    if (!state) return false;
    if (state.proc) state.proc.kill('SIGTERM');
    else if (!state.timer) this.launch(state);
    return true;
  }

  view(): SupervisorView[] {
    return [...this.children.values()].map((s) => ({
      name: s.spec.name,
      pid: s.proc?.pid ?? null,
      running: s.proc !== null,
      restarts: s.restarts,
      lastExit: s.lastExit,
    }));
  }

  async stop(graceMs = 8000): Promise<void> {
    this.stopping = true;
    const waits: Promise<void>[] = [];
    for (const s of this.children.values()) {
      if (s.timer) clearTimeout(s.timer);
      const p = s.proc;
      if (!p) continue;
      waits.push(
        new Promise<void>((resolve) => {
          const kill = setTimeout(() => p.kill('SIGKILL'), graceMs);
          p.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          p.kill('SIGTERM');
        }),
      );
    }
    await Promise.all(waits);
  }
}
