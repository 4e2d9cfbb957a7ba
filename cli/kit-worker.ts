// One part of the combined kit process (`popkit kit`, cli/commands/kit.ts) inside its worker thread:
// starts the part with the same start<Part>(env) its own process uses, and stops it when the parent says
// so (a worker never sees SIGTERM). An uncaught exception ends this worker only; the parent's
// WorkerSupervisor (core/worker-supervisor.ts) starts it again.
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { KIT_PARTS, type KitPart, type RunningPart } from '../core/kit-part.ts';
import { CPU_PRIORITY } from '../core/priorities.ts';

/** What the parent passes as workerData. */
export interface KitWorkerData {
  part: KitPart;
}

const START: Record<KitPart, (env: NodeJS.ProcessEnv) => Promise<RunningPart>> = {
  checkout: async (env) => (await import('../services/checkout/main.ts')).startCheckout(env),
  // a kit flashed with only an enrollment code enrolls here first, as `popkit sync` does
  sync: async (env) => {
    const { syncEnvironment } = await import('./commands/sync.ts');
    return (await import('../services/sync/main.ts')).startSync(await syncEnvironment(env));
  },
  kitd: async (env) => (await import('../firmware/main.ts')).startKitd(env),
};

export async function runKitWorker(): Promise<void> {
  const port = parentPort;
  const data = workerData as KitWorkerData | undefined;
  if (!port || !data || !(KIT_PARTS as readonly string[]).includes(data.part))
    throw new Error('cli/kit-worker.ts runs as a worker of `popkit kit`, with workerData { part }');
  const part = data.part;
  let running: RunningPart | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await running?.stop();
    process.exit(0); // in a worker: ends this thread only
  };
  // asked before the start finished: stop once it has (the parent terminates a worker that takes too long)
  port.on('message', (msg: unknown) => {
    if ((msg as { cmd?: unknown } | null)?.cmd === 'stop' && running) void stop();
    else if ((msg as { cmd?: unknown } | null)?.cmd === 'stop') stopping = true;
  });
  // the part's CPU priority, as its own process would be niced: on Linux a nice value belongs to the
  // thread, and os.setPriority(0, …) sets the calling thread's (core/priorities.ts CPU_PRIORITY)
  const nice = CPU_PRIORITY[part].nice;
  if (nice) {
    try {
      os.setPriority(0, nice);
    } catch {
      // not allowed here: the part runs at the process's priority
    }
  }
  running = await START[part](process.env);
  if (stopping) {
    stopping = false;
    await stop();
  }
}
