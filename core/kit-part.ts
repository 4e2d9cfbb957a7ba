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

/**
 * The V8 flag a small board's kit processes (`popkit kit` and media) start with, on node's command line
 * (NODE_OPTIONS does not take V8 flags): `--optimize-for-size` makes V8 favour memory over speed (a
 * heap grown less between full collections, compacted more eagerly; in every isolate of the process,
 * so in each part's worker too). bench/kit-memory.ts: the kit process held 92–96 MB in every round
 * where it had moved between 97 and 132 MB from run to run with the same settings; what it costs
 * checkout in a rush is not settled yet (docs/scaling.md#small-boards). `popkit up`
 * in combined mode and docker-compose.small.yml (a test holds them equal) start the kit and media
 * with it.
 */
export const SMALL_BOARD_NODE_FLAGS: readonly string[] = ['--optimize-for-size'];

/**
 * What a small board's kit processes (`popkit kit` and media) run with, as measured by
 * bench/kit-memory.ts (docs/scaling.md#small-boards): 1 MB semi-spaces instead of V8's up to 16 MB per
 * isolate (more frequent scavenges of a smaller young generation), and two glibc malloc arenas instead
 * of one per thread that allocates. docker-compose.small.yml sets the same (a test holds them equal).
 */
export function smallBoardEnv(env: NodeJS.ProcessEnv): { NODE_OPTIONS: string; MALLOC_ARENA_MAX: string } {
  return {
    NODE_OPTIONS: [env['NODE_OPTIONS'], '--max-semi-space-size=1'].filter(Boolean).join(' '),
    MALLOC_ARENA_MAX: env['MALLOC_ARENA_MAX'] ?? '2',
  };
}
