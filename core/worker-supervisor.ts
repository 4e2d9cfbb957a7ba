// Keeps the worker threads of one process running, as core/process-supervisor.ts keeps processes: a
// worker that ends (an uncaught exception ends only that worker, its 'error' then 'exit') is started
// again with growing backoff that resets after a healthy run, and one can be restarted on request.
// The combined kit process of a small board runs checkout, sync and kitd this way (cli/commands/kit.ts).
// A worker never receives a signal, so stopping is a message: the worker gets { cmd: 'stop' }, stops
// its part cleanly and exits; one that has not exited after the grace period is terminated.
import { EventEmitter } from 'node:events';
import { type ResourceLimits, Worker } from 'node:worker_threads';
import { Backoff } from './backoff.ts';

export interface WorkerSpec {
  name: string;
  /** the worker's entry module (a plain .js file: a worker gets no TypeScript loader of its own) */
  filename: URL;
  workerData: unknown;
  /** the worker's process.env */
  env: NodeJS.ProcessEnv;
  /** a run this long counts as healthy and resets the backoff */
  healthyAfterMs?: number;
  /** V8 heap limits of the worker's isolate */
  resourceLimits?: ResourceLimits;
}

/** The message a supervised worker gets when it is to stop (restart or shutdown). */
export const WORKER_STOP = { cmd: 'stop' } as const;

export interface WorkerView {
  name: string;
  threadId: number | null;
  running: boolean;
  restarts: number;
  lastExit: { code: number; error?: string; at: string } | null;
}

interface WorkerState {
  spec: WorkerSpec;
  worker: Worker | null;
  restarts: number;
  backoff: Backoff;
  startedAt: number;
  timer: NodeJS.Timeout | null;
  lastError: string | undefined;
  lastExit: WorkerView['lastExit'];
}

export class WorkerSupervisor extends EventEmitter {
  private readonly workers = new Map<string, WorkerState>();
  private stopping = false;

  constructor(
    private readonly opts: { minBackoffMs?: number; maxBackoffMs?: number; graceMs?: number } = {},
  ) {
    super();
  }

  add(spec: WorkerSpec): void {
    const state: WorkerState = {
      spec,
      worker: null,
      restarts: 0,
      // as the process supervisor: the first restart at once, repeated crashes back off
      backoff: new Backoff({
        initialMs: this.opts.minBackoffMs ?? 100,
        maxMs: this.opts.maxBackoffMs ?? 30_000,
      }),
      startedAt: 0,
      timer: null,
      lastError: undefined,
      lastExit: null,
    };
    this.workers.set(spec.name, state);
    this.launch(state);
  }

  private launch(state: WorkerState): void {
    if (this.stopping) return;
    const { spec } = state;
    const worker = new Worker(spec.filename, {
      workerData: spec.workerData,
      env: spec.env,
      ...(spec.resourceLimits ? { resourceLimits: spec.resourceLimits } : {}),
    });
    state.worker = worker;
    state.startedAt = Date.now();
    state.lastError = undefined;
    this.emit('start', spec.name, worker.threadId);
    worker.on('error', (err) => {
      // an uncaught exception (or a heap over its limit) in the worker: 'exit' follows
      state.lastError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      // not 'error': an EventEmitter throws an 'error' nobody listens to, which would end this thread
      this.emit('crash', spec.name, err);
    });
    worker.once('exit', (code) => {
      state.worker = null;
      state.lastExit = {
        code,
        ...(state.lastError ? { error: state.lastError } : {}),
        at: new Date().toISOString(),
      };
      if (this.stopping) return;
      if (Date.now() - state.startedAt > (spec.healthyAfterMs ?? 30_000)) state.backoff.reset();
      state.restarts += 1;
      const delay = state.backoff.next();
      this.emit('exit', spec.name, code, state.lastError, delay);
      state.timer = setTimeout(() => {
        state.timer = null;
        this.launch(state);
      }, delay);
    });
  }

  /** Ask a worker to stop; terminate it when it has not exited within the grace period. */
  private end(worker: Worker, graceMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const kill = setTimeout(() => void worker.terminate(), graceMs);
      worker.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      worker.postMessage(WORKER_STOP);
    });
  }

  /** Restart a worker now (stopped cleanly; the exit handler brings it back). */
  restart(name: string): boolean {
    const state = this.workers.get(name);
    if (!state) return false;
    if (state.worker) void this.end(state.worker, this.opts.graceMs ?? 8000);
    else if (!state.timer) this.launch(state);
    return true;
  }

  /** The worker of `name` as it runs now (tests end one from outside, as a crash would). */
  current(name: string): Worker | null {
    return this.workers.get(name)?.worker ?? null;
  }

  view(): WorkerView[] {
    return [...this.workers.values()].map((s) => ({
      name: s.spec.name,
      threadId: s.worker?.threadId ?? null,
      running: s.worker !== null,
      restarts: s.restarts,
      lastExit: s.lastExit,
    }));
  }

  async stop(graceMs = this.opts.graceMs ?? 8000): Promise<void> {
    this.stopping = true;
    const waits: Promise<void>[] = [];
    for (const s of this.workers.values()) {
      if (s.timer) clearTimeout(s.timer);
      if (s.worker) waits.push(this.end(s.worker, graceMs));
    }
    await Promise.all(waits);
  }
}
