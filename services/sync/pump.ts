// The outbox pump: scans the kit's outbox (highest lane first, oldest first) into batches of at most
// batchMax entries / batchBytes, keeps at most `window` batches awaiting their ack, and sends back to
// the scan whatever was not acked within the ack timeout. Entries are only read here; one leaves the
// outbox only when its ack is applied (acks.ts).

import {
  type BatchEntryT,
  type OrderEventT,
  topics,
  type WireOrderT,
} from '../../core/contracts/hub-wire.ts';
import type { LanGrantReportT } from '../../core/contracts/lan-stock.ts';
import { hubTopicLeaf, LANES, type LaneName, laneOfPriority } from '../../core/contracts/lanes.ts';
import type { StockReleaseT } from '../../core/contracts/shared-stock.ts';
import { isKitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import {
  getOrder,
  type KitStore,
  type OutboxEntry,
  type OutboxKey,
  readSealedToken,
  type StoredOrder,
  scanOutbox,
} from '../../core/store/index.ts';
import type { TokenVault } from '../../core/token-vault.ts';
import { ALWAYS_IDLE, type BusyLimits, type LoadSignal } from './load.ts';

const log = moduleLogger('sync');

export interface PumpOptions {
  kitId: string;
  batchMax: number;
  batchBytes: number;
  window: number;
  ackTimeoutMs: number;
  /** smaller batches and window while checkout is busy (load.ts); undefined: always full size */
  busy?: BusyLimits | undefined;
}

/** Where batches go: the hub link's QoS 1 publish, while it is up. */
export interface BatchSink {
  ready(): boolean;
  send(topic: string, payload: string, entries: number): void;
}

interface InflightBatch {
  keys: string[];
  remaining: number;
  sentAt: number;
}

type Leaf = 'orders' | 'telemetry';

export function entryKey(lane: number, id: string): string {
  return `${lane}:${id}`;
}

export class OutboxPump {
  private pumping = false;
  private seq = 0;
  private readonly inflight = new Map<string, number>();
  private readonly batches = new Map<number, InflightBatch>();
  /** where the next scan of the outbox starts (the last key put in a batch); undefined: the beginning */
  private cursor: OutboxKey | undefined;
  private readonly unpublishable = new Set<string>();
  published = 0;
  resent = 0;
  /** batches sent while checkout was busy, and at full size (for status and tests) */
  readonly batchesBy = { busy: 0, idle: 0 };
  /** the most entries one batch held, by mode */
  readonly largestBatch = { busy: 0, idle: 0 };

  constructor(
    private readonly store: KitStore,
    private readonly vault: TokenVault,
    private readonly sink: BatchSink,
    private readonly opts: PumpOptions,
    private readonly load: LoadSignal = ALWAYS_IDLE,
    /** the lanes that may be sent now (metered.ts: orders and stock on a metered link); undefined: all */
    private readonly sendable: () => readonly LaneName[] | undefined = () => undefined,
  ) {}

  get inflightCount(): number {
    return this.inflight.size;
  }

  /** Fill the window of unacked messages from the outbox. */
  pump(): void {
    if (this.pumping || !this.sink.ready()) return;
    this.pumping = true;
    try {
      // checkout's commits come first: while orders arrive, fewer and smaller batches in flight, so
      // that the acks coming back are small too (acks.ts paces their transactions)
      const busy = this.opts.busy && this.load.busy() ? this.opts.busy : undefined;
      const window = busy ? Math.min(busy.window, this.opts.window) : this.opts.window;
      const batchMax = busy ? Math.min(busy.batchMax, this.opts.batchMax) : this.opts.batchMax;
      while (this.batches.size < window) {
        const batch = this.nextBatch(batchMax);
        if (!batch) break;
        this.publishBatch(batch.leaf, batch.parts, batch.keys);
        const mode = busy ? 'busy' : 'idle';
        this.batchesBy[mode]++;
        this.largestBatch[mode] = Math.max(this.largestBatch[mode], batch.keys.length);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** The link dropped: whatever was in flight is resent after the reconnect (the ledger absorbs duplicates). */
  reset(): void {
    this.inflight.clear();
    this.batches.clear();
    this.cursor = undefined;
  }

  /** Acked entries leave the window. */
  settle(acked: { lane: number; id: string }[]): void {
    for (const a of acked) {
      const ks = entryKey(a.lane, a.id);
      const seq = this.inflight.get(ks);
      if (seq === undefined) continue;
      this.inflight.delete(ks);
      const b = this.batches.get(seq);
      if (b && --b.remaining <= 0) this.batches.delete(seq);
    }
  }

  /** Entries whose ack did not come within the timeout go back to the outbox scan (a resend); true when any did. */
  expire(now = Date.now()): boolean {
    let expired = false;
    for (const [seq, b] of this.batches) {
      if (now - b.sentAt < this.opts.ackTimeoutMs) continue;
      for (const k of b.keys) {
        if (this.inflight.get(k) === seq) {
          this.inflight.delete(k);
          this.resent++;
        }
      }
      this.batches.delete(seq);
      expired = true;
    }
    if (expired) this.cursor = undefined;
    return expired;
  }

  private nextBatch(batchMax: number): { leaf: Leaf; parts: string[]; keys: string[] } | undefined {
    let wrapped = false;
    const allowed = this.sendable();
    // lanes are key prefixes: a held lane behind the last sendable one is not even scanned
    const end: OutboxKey | undefined = allowed
      ? [Math.max(-1, ...allowed.map((l) => LANES[l])) + 1, '']
      : undefined;
    for (;;) {
      let leaf: Leaf | undefined;
      const parts: string[] = [];
      const keys: string[] = [];
      let bytes = 128;
      let last: OutboxKey | undefined;
      for (const { key, value } of scanOutbox(this.store, this.cursor, end)) {
        const ks = entryKey(key[0], key[1]);
        if (this.inflight.has(ks) || this.unpublishable.has(ks)) continue;
        const lane = laneOfPriority(key[0]);
        if (!lane || (allowed && !allowed.includes(lane))) continue;
        const l = hubTopicLeaf(lane);
        if (leaf && l !== leaf) break;
        const entry = this.toWire(lane, key[1], value);
        if (!entry) {
          this.unpublishable.add(ks);
          log.error({ lane, id: key[1] }, 'outbox entry cannot be published (its order is missing)');
          continue;
        }
        const text = JSON.stringify(entry);
        if (
          parts.length > 0 &&
          (parts.length >= batchMax || bytes + text.length + 1 > this.opts.batchBytes)
        ) {
          break;
        }
        leaf = l;
        parts.push(text);
        keys.push(ks);
        bytes += text.length + 1;
        last = key;
      }
      if (leaf && last) {
        this.cursor = last;
        return { leaf, parts, keys };
      }
      // nothing past the cursor: look once from the start, for entries that committed out of id
      // order, higher lanes that arrived meanwhile, and entries whose ack timed out
      if (wrapped || !this.cursor) return undefined;
      this.cursor = undefined;
      wrapped = true;
    }
  }

  private toWire(lane: LaneName, id: string, entry: OutboxEntry): BatchEntryT | undefined {
    switch (lane) {
      case 'orders': {
        if (entry.kind === 'orderEvent') {
          return { lane: 'orders', id, event: entry.body as unknown as OrderEventT };
        }
        if (entry.kind === 'stockRelease') {
          return { lane: 'orders', id, release: entry.body as unknown as StockReleaseT };
        }
        if (entry.kind === 'lanGrant') {
          return { lane: 'orders', id, lanGrant: entry.body as unknown as LanGrantReportT };
        }
        const order = getOrder(this.store, entry.ref ?? id);
        if (!order) return undefined;
        const out: BatchEntryT = { lane: 'orders', id, order: toWireOrder(order) };
        if (order.payment.method === 'token') {
          const sealed = readSealedToken(this.store, order.id);
          if (!sealed) out.tokenError = 'missing';
          else {
            try {
              // the only place a plaintext token exists on the kit: in memory, on its way to the hub
              out.token = this.vault.open(sealed);
            } catch (err) {
              // the token key is lost (core/token-key.ts): keep the order until the key is restored
              if (isKitError(err) && err.code === 'CARD_UNAVAILABLE') return undefined;
              out.tokenError = isKitError(err) && err.code === 'TOKEN_EXPIRED' ? 'expired' : 'invalid';
            }
          }
        }
        return out;
      }
      case 'stock':
        return {
          lane: 'stock',
          id,
          at: entry.createdAt,
          stock: (entry.body?.['stock'] as Record<string, number> | undefined) ?? {},
        };
      case 'health':
      case 'telemetry':
        return { lane, id, at: entry.createdAt, body: entry.body ?? {} };
    }
  }

  private publishBatch(leaf: Leaf, parts: string[], keys: string[]): void {
    const seq = ++this.seq;
    const now = Date.now();
    for (const k of keys) this.inflight.set(k, seq);
    this.batches.set(seq, { keys, remaining: keys.length, sentAt: now });
    const kitId = this.opts.kitId;
    // built as text: the entries were serialized once while measuring the batch
    const payload = `{"v":1,"kitId":${JSON.stringify(kitId)},"sentAt":${now},"entries":[${parts.join(',')}]}`;
    this.sink.send(leaf === 'orders' ? topics.orders(kitId) : topics.telemetry(kitId), payload, keys.length);
    this.published += keys.length;
  }
}

export function toWireOrder(o: StoredOrder): WireOrderT {
  return {
    id: o.id,
    kitId: o.kitId,
    eventId: o.eventId,
    catalogVersion: o.catalogVersion,
    totalCents: o.totalCents,
    currency: o.currency,
    lines: o.lines.map((l) => ({
      sku: l.sku,
      name: l.name,
      qty: l.qty,
      unitPriceCents: l.unitPriceCents,
      lineCents: l.lineCents,
      ...(l.components ? { components: l.components } : {}),
    })),
    payment:
      o.payment.method === 'token'
        ? { method: 'token', tokenHint: o.payment.tokenHint, ...(o.authRef ? { authRef: o.authRef } : {}) }
        : { method: 'cash' },
    createdAt: o.createdAt,
    ...(o.status !== 'accepted' ? { status: o.status } : {}),
    ...(o.subtotalCents !== undefined ? { subtotalCents: o.subtotalCents } : {}),
    ...(o.discount ? { discount: o.discount } : {}),
    ...(o.reservationId ? { reservationId: o.reservationId } : {}),
    ...(o.pickup ? { pickup: { slotId: o.pickup.slotId, code: o.pickup.code } } : {}),
    ...(o.deviceId ? { deviceId: o.deviceId } : {}),
  };
}
