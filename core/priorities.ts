// Who comes first on a kit that runs short (docs/scaling.md#checkout-first): one table for CPU and one
// for disk, so that the order is declared once. Checkout's commits come first; sync, media and
// telemetry give way. CPU_PRIORITY is what `popkit up` gives its children (nice) and what
// docker-compose.yml gives the containers (cpu_shares; tests/unit/priorities.test.ts holds them equal).
// DISK_GIVE_WAY is the order in which writers stop as the data volume fills.
import fs from 'node:fs';

export interface CpuPriority {
  /** docker's relative CPU weight (default 1024); only matters while the CPU is contended */
  cpuShares: number;
  /** the Unix nice value `popkit up` starts the process with (0 = as the supervisor) */
  nice: number;
}

/**
 * Checkout and kitd (the hardware watchdog, LEDs, power policy: small and must stay responsive) first;
 * media next (live: a late frame is a lost frame; it also steps down its own ladder when orders come
 * in); sync last (a backlog waits without loss, services/sync/load.ts paces it too). The embedded hub
 * of `popkit up` stands for a hub that is elsewhere in the field.
 */
export const CPU_PRIORITY = {
  checkout: { cpuShares: 2048, nice: 0 },
  kitd: { cpuShares: 1024, nice: 0 },
  mosquitto: { cpuShares: 1024, nice: 0 },
  media: { cpuShares: 512, nice: 5 },
  sync: { cpuShares: 256, nice: 10 },
  hub: { cpuShares: 256, nice: 10 },
} as const satisfies Record<string, CpuPriority>;

export type PrioritizedProcess = keyof typeof CPU_PRIORITY;

/** Who writes to the data volume, and what stops when it gives way. */
export type DiskWriter = 'telemetry' | 'media' | 'sync' | 'orders';

/**
 * The order of giving way as free space falls, first to last. A writer stops below `reserves` times
 * POPKIT_STORE_RESERVE_MB of free space and resumes above it:
 *  - telemetry: sync stops queueing its telemetry entries;
 *  - media: the HLS pipeline stops and its segments are removed (the stream resumes with space);
 *  - sync: sync stops queueing health entries and stock snapshots;
 *  - orders: checkout answers 507 STORE_FULL (services/checkout/store-guard.ts), the last to go.
 * What frees space never stops: sync applying acks (deletes outbox entries), lane trims, HLS sweeps.
 */
export const DISK_GIVE_WAY: readonly { who: DiskWriter; reserves: number }[] = [
  { who: 'telemetry', reserves: 4 },
  { who: 'media', reserves: 3 },
  { who: 'sync', reserves: 2 },
  { who: 'orders', reserves: 1 },
];

/** Free bytes below which `who` stops writing. */
export function giveWayBelow(who: DiskWriter, reserveBytes: number): number {
  const row = DISK_GIVE_WAY.find((r) => r.who === who);
  if (!row) throw new Error(`no disk give-way row for ${who}`);
  return row.reserves * reserveBytes;
}

/** The data volume's free space as a writer other than checkout sees it: read at most once per interval. */
export class DiskWatch {
  private freeBytes = Number.POSITIVE_INFINITY;
  private checkedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly dir: string,
    private readonly reserveBytes: number,
    private readonly opts: {
      intervalMs?: number;
      now?: () => number;
      /** injected in tests; default fs.statfsSync's bavail × bsize */
      free?: (dir: string) => number;
    } = {},
  ) {}

  /** Free bytes on the volume (Infinity when it cannot be read: an unreadable volume stops no one). */
  free(): number {
    const now = (this.opts.now ?? Date.now)();
    if (now - this.checkedAt >= (this.opts.intervalMs ?? 1000)) {
      this.checkedAt = now;
      try {
        this.freeBytes = this.opts.free ? this.opts.free(this.dir) : statfsFree(this.dir);
      } catch {
        this.freeBytes = Number.POSITIVE_INFINITY;
      }
    }
    return this.freeBytes;
  }

  /** Should `who` hold back its writes now? */
  givesWay(who: DiskWriter): boolean {
    return this.free() < giveWayBelow(who, this.reserveBytes);
  }
}

function statfsFree(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}
