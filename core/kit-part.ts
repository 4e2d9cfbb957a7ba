// A kit part (checkout, sync, kitd) as started in this thread: the same start and stop whether the part
// is a process of its own (`popkit checkout`, a container on a board) or a worker thread of the combined
// kit process on a small board (`popkit kit`, cli/commands/kit.ts), so neither duplicates the other's
// start-up. A process stops on SIGTERM/SIGINT; a worker never sees a signal (only the main thread
// does), so the combined process's main thread tells each worker to stop.

/** The parts `popkit kit` runs as worker threads of one process (media stays a process of its own). */
export const KIT_PARTS = ['checkout', 'sync', 'kitd'] as const;
export type KitPart = (typeof KIT_PARTS)[number];

/** A started part; stop() ends it cleanly (closes its server, bus clients and store). */
export interface RunningPart {
  stop(): Promise<void>;
}

/** Resolves on the first SIGTERM or SIGINT of this process (a process's entry waits on it). */
export function untilStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
}
