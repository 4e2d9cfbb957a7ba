// Keeps the kit's processes running inside `popkit up` (on balena the supervisor does this per container):
// restarts a child that exits, with growing backoff that resets after a healthy run, and restarts one on
// request (kitd's watchdog asks over the local bus). Each child's stdout and stderr come through pipes
// into <logDir>/<name>.log, rotated by size (core/rotating-log.ts), one log per name across restarts.
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import { Backoff } from './backoff.ts';
import { DEFAULT_LOG_ROTATION, type LogRotation, RotatingLog } from './rotating-log.ts';

export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** a run this long counts as healthy and resets the backoff */
  healthyAfterMs?: number;
  /** start the process at this nice value (core/priorities.ts CPU_PRIORITY); every thread it makes inherits it */
  nice?: number;
}

/** coreutils' nice: the child starts niced, before node makes its first thread */
const NICE_BIN = ['/usr/bin/nice', '/bin/nice'].find((p) => fs.existsSync(p));

/** The command line that starts `spec` at its nice value. */
export function nicedCommand(spec: Pick<ChildSpec, 'command' | 'args' | 'nice'>): {
  command: string;
  args: string[];
  setAfter: boolean;
} {
  if (!spec.nice) return { command: spec.command, args: spec.args, setAfter: false };
  if (NICE_BIN)
    return {
      command: NICE_BIN,
      args: ['-n', String(spec.nice), spec.command, ...spec.args],
      setAfter: false,
    };
  // no nice binary: the main thread is reniced right after the spawn (threads made before keep 0)
  return { command: spec.command, args: spec.args, setAfter: true };
}

interface ChildState {
  spec: ChildSpec;
  proc: ChildProcess | null;
  restarts: number;
  backoff: Backoff;
  startedAt: number;
  timer: NodeJS.Timeout | null;
  lastExit: { code: number | null; signal: string | null; at: string } | null;
  /** settles once the current process's pipes are read to their end (its 'close') */
  drained: Promise<void>;
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
  private readonly logs = new Map<string, RotatingLog>();
  private stopping = false;

  constructor(
    private readonly logDir: string,
    private readonly opts: { minBackoffMs?: number; maxBackoffMs?: number; log?: LogRotation } = {},
  ) {
    super();
  }

  add(spec: ChildSpec): void {
    const state: ChildState = {
      spec,
      proc: null,
      restarts: 0,
      backoff: new Backoff({
        // the first restart after a crash comes at once (a venue screen waits on media's), repeated
        // crashes back off: 100 ms, 200, 400, … up to maxBackoffMs
        initialMs: this.opts.minBackoffMs ?? 100,
        maxMs: this.opts.maxBackoffMs ?? 30_000,
      }),
      startedAt: 0,
      timer: null,
      lastExit: null,
      drained: Promise.resolve(),
    };
    this.children.set(spec.name, state);
    this.launch(state);
  }

  private launch(state: ChildState): void {
    if (this.stopping) return;
    let log = this.logs.get(state.spec.name);
    if (!log) {
      log = new RotatingLog(this.logDir, state.spec.name, this.opts.log ?? DEFAULT_LOG_ROTATION);
      this.logs.set(state.spec.name, log);
    }
    const cmd = nicedCommand(state.spec);
    const proc = spawn(cmd.command, cmd.args, {
      env: state.spec.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (cmd.setAfter && proc.pid !== undefined) {
      try {
        os.setPriority(proc.pid, state.spec.nice ?? 0);
      } catch {
        // the process already exited; its exit handler restarts it
      }
    }
    log.follow(proc.stdout);
    log.follow(proc.stderr);
    state.drained = new Promise<void>((resolve) => proc.once('close', () => resolve()));
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
    // what the children wrote before they exited is still in the pipes: read it into the logs first
    // (bounded: a grandchild still holding a pipe open must not hold the stop forever)
    let cap: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.children.values()].map((s) => s.drained)),
      new Promise<void>((resolve) => {
        cap = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(cap);
    await Promise.all([...this.logs.values()].map((l) => l.close()));
  }
}
