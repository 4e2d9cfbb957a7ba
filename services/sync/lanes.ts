// The outbox lanes sync fills itself (stock, health, telemetry) and their limits: each has a TTL and a
// disk quota; past either, its oldest entries go first. The orders lane is checkout's and is never
// expired or trimmed here, whatever its size. As the data volume fills, these lanes stop queueing
// before orders do, in core/priorities.ts's order (telemetry first, then health and stock).

import { LANES, type LaneName } from '../../core/contracts/lanes.ts';
import { MonotonicIds } from '../../core/ids.ts';
import { moduleLogger } from '../../core/logger.ts';
import type { DiskWriter } from '../../core/priorities.ts';
import {
  enqueueOutbox,
  type KitStore,
  laneBacklog,
  laneEntries,
  laneOldestAt,
  lastStockSnapshot,
  type OutboxEntry,
  type OutboxKey,
  queueSeriesEntries,
  readAllStock,
  removeOutboxEntries,
  replaceStockSnapshot,
} from '../../core/store/index.ts';

const log = moduleLogger('sync-lanes');

export interface LaneLimits {
  ttlMs: number;
  quotaBytes: number;
}

export type TrimmedLane = Exclude<LaneName, 'orders'>;

export interface LaneStats {
  backlog: Record<LaneName, number>;
  oldestAgeMs: Record<LaneName, number>;
  bytes: Record<LaneName, number>;
}

export class LaneKeeper {
  private readonly ids = new MonotonicIds();
  /** entries dropped by TTL or quota, per lane, since start (for telemetry and tests) */
  readonly dropped: Record<TrimmedLane, number> = { stock: 0, health: 0, telemetry: 0 };
  /** entries not queued because the volume is low (core/priorities.ts DISK_GIVE_WAY), per lane */
  readonly heldBack: Record<TrimmedLane, number> = { stock: 0, health: 0, telemetry: 0 };

  constructor(
    private readonly store: KitStore,
    private readonly limits: Record<TrimmedLane, LaneLimits>,
    private readonly now: () => number = Date.now,
    /** the data volume's free space (core/priorities.ts DiskWatch); without it, nothing is held back */
    private readonly disk?: { givesWay(who: DiskWriter): boolean },
  ) {}

  /** True when the volume is too low for this lane: the entry is counted and not written. */
  private holdsBack(lane: TrimmedLane): boolean {
    if (!this.disk?.givesWay(lane === 'telemetry' ? 'telemetry' : 'sync')) return false;
    if (this.heldBack[lane]++ === 0) log.warn({ lane }, 'data volume low: lane gives way to orders');
    return true;
  }

  /** Queue an entry on a sync-owned lane, then trim that lane to its limits; undefined when held back. */
  async enqueue(
    lane: TrimmedLane,
    kind: OutboxEntry['kind'],
    body: Record<string, unknown>,
  ): Promise<string | undefined> {
    if (this.holdsBack(lane)) return undefined;
    const id = this.ids.next();
    const createdAt = this.now();
    await enqueueOutbox(this.store, [LANES[lane], id], { kind, body, createdAt });
    await this.trim(lane);
    return id;
  }

  /**
   * Queue sealed telemetry, one entry per maker (each body is made with its entry id, which the seal's
   * AAD binds), and move the series cursor in the same transaction; then trim the lane. Undefined when
   * the volume is low (nothing queued, the cursor stays: the range ships when there is room).
   */
  async enqueueSealed(
    makers: readonly ((id: string) => Record<string, unknown>)[],
    cursor: number,
  ): Promise<string[] | undefined> {
    if (this.holdsBack('telemetry')) return undefined;
    const createdAt = this.now();
    const entries = makers.map((make) => {
      const id = this.ids.next();
      const key: OutboxKey = [LANES.telemetry, id];
      return { key, entry: { kind: 'telemetry' as const, body: make(id), createdAt } };
    });
    await queueSeriesEntries(this.store, entries, cursor);
    await this.trim('telemetry');
    return entries.map((e) => e.key[1]);
  }

  /**
   * Queue a stock snapshot when stock differs from the last one queued. A snapshot supersedes every
   * older one still waiting, so they are coalesced into it: the hub only ever needs the latest.
   */
  async snapshotStock(): Promise<boolean> {
    if (this.holdsBack('stock')) return false;
    const stock = readAllStock(this.store);
    const text = JSON.stringify(stock);
    if (lastStockSnapshot(this.store) === text) return false;
    await replaceStockSnapshot(this.store, this.ids.next(), stock, text, this.now());
    return true;
  }

  /** Drop expired entries, then the oldest ones while the lane is over its quota. */
  async trim(lane: TrimmedLane): Promise<number> {
    const n = LANES[lane];
    const { ttlMs, quotaBytes } = this.limits[lane];
    const cutoff = this.now() - ttlMs;
    const entries: { key: OutboxKey; createdAt: number; size: number }[] = [];
    let total = 0;
    for (const { key, value } of laneEntries(this.store, n)) {
      const size = entrySize(key, value);
      entries.push({ key, createdAt: value.createdAt, size });
      total += size;
    }
    const drop: OutboxKey[] = [];
    for (const e of entries) {
      // key order is age order within a lane, so the drop set is always a prefix
      if (e.createdAt < cutoff || total > quotaBytes) {
        drop.push(e.key);
        total -= e.size;
      } else break;
    }
    if (drop.length === 0) return 0;
    await removeOutboxEntries(this.store, drop);
    this.dropped[lane] += drop.length;
    log.info({ lane, dropped: drop.length }, 'lane trimmed (TTL or quota)');
    return drop.length;
  }

  async trimAll(): Promise<void> {
    for (const lane of ['stock', 'health', 'telemetry'] as const) await this.trim(lane);
  }

  /** Backlog per lane, and the age of each lane's oldest entry (0 when empty). */
  stats(): Omit<LaneStats, 'bytes'> {
    const now = this.now();
    const backlog = { orders: 0, stock: 0, health: 0, telemetry: 0 } as Record<LaneName, number>;
    const oldestAgeMs = { orders: 0, stock: 0, health: 0, telemetry: 0 } as Record<LaneName, number>;
    for (const [name, n] of Object.entries(LANES) as [LaneName, number][]) {
      backlog[name] = laneBacklog(this.store, n);
      const oldestAt = laneOldestAt(this.store, n);
      if (oldestAt !== undefined) oldestAgeMs[name] = Math.max(0, now - oldestAt);
    }
    return { backlog, oldestAgeMs };
  }
}

/** What an entry costs on disk, near enough for a quota: key and JSON value. */
export function entrySize(key: OutboxKey, value: OutboxEntry): number {
  return key[1].length + 8 + JSON.stringify(value).length;
}
