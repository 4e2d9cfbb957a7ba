// Store-and-forward from the kit's LMDB outbox to the hub. The outbox is the only source of truth:
// an entry leaves it only in the LMDB transaction that applies the hub's application-level ack, so a
// crash of sync, of the hub or of the link at any moment at worst resends entries, which the hub's
// ledger (keyed by the kit's ids) absorbs. mqtt.js's in-memory queue is never relied upon.
import type { KeyObject } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { verifySignedCatalog } from '../../core/catalog-signing.ts';
import {
  type BatchEntryT,
  type KitStatusT,
  topics,
  type WireOrderT,
  wire,
} from '../../core/contracts/hub-wire.ts';
import { LANE_NAMES, type LaneName } from '../../core/contracts/lanes.ts';
import { isKitError } from '../../core/errors.ts';
import { moduleLogger, redactUrl } from '../../core/logger.ts';
import { readServiceStatus, writeServiceStatus } from '../../core/run-status.ts';
import {
  applyHubAcks,
  getOrder,
  type KitStore,
  LANES,
  type OutboxEntry,
  type OutboxKey,
  readCatalogStamp,
  readEventState,
  readSealedToken,
  readStoredCatalog,
  replaceCatalog,
  type StoredOrder,
  scanOutbox,
} from '../../core/store/index.ts';
import type { TokenVault } from '../../core/token-vault.ts';
import { Backoff } from './backoff.ts';
import type { LaneKeeper } from './lanes.ts';

const log = moduleLogger('sync');

export interface SyncOptions {
  kitId: string;
  dataDir: string;
  hubUrl: string;
  username?: string | undefined;
  password?: string | undefined;
  ca?: Buffer | undefined;
  /** the hub's catalog signing key; without it every catalog is refused */
  hubPublicKey?: KeyObject | undefined;
  eventId?: string | undefined;
  batchMax: number;
  batchBytes: number;
  window: number;
  ackTimeoutMs: number;
  pollMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  stockIntervalMs: number;
  healthIntervalMs: number;
  telemetryIntervalMs: number;
  statusIntervalMs?: number;
}

export type LinkState = 'connecting' | 'up' | 'down';

interface InflightBatch {
  keys: string[];
  remaining: number;
  sentAt: number;
}

const LANE_BY_NUMBER: LaneName[] = [];
for (const name of LANE_NAMES) LANE_BY_NUMBER[LANES[name]] = name;

function topicLeaf(lane: LaneName): 'orders' | 'telemetry' {
  return lane === 'orders' || lane === 'stock' ? 'orders' : 'telemetry';
}

function keyString(lane: number, id: string): string {
  return `${lane}:${id}`;
}

export class SyncService {
  private client: MqttClient | undefined;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private pumping = false;
  private seq = 0;
  private readonly inflight = new Map<string, number>();
  private readonly batches = new Map<number, InflightBatch>();
  /** where the next scan of the outbox starts (the last key put in a batch); undefined: the beginning */
  private cursor: OutboxKey | undefined;
  private readonly unpublishable = new Set<string>();
  private subscribedEvent: string | undefined;

  link: LinkState = 'connecting';
  published = 0;
  drained = 0;
  resent = 0;
  reconnects = 0;
  lastAckAt: number | null = null;
  catalog: { eventId: string; version: number; acceptedAt: string } | null = null;
  catalogRefusals: { code: string; message: string; at: string }[] = [];

  constructor(
    private readonly store: KitStore,
    private readonly vault: TokenVault,
    private readonly lanes: LaneKeeper,
    private readonly opts: SyncOptions,
  ) {
    this.backoff = new Backoff(opts.backoffMinMs, opts.backoffMaxMs);
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  start(): void {
    const { kitId } = this.opts;
    const offline: KitStatusT = { v: 1, kitId, online: false, at: Date.now() };
    const clientOpts: IClientOptions = {
      protocolVersion: 5,
      clientId: `popkit-sync-${kitId}`,
      // a persistent session keeps acks the hub sent while the link was down
      clean: false,
      properties: { sessionExpiryInterval: 7 * 24 * 3600 },
      // reconnects are ours (exponential backoff with jitter), not mqtt.js's fixed period
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      username: this.opts.username ?? kitId,
      ...(this.opts.password ? { password: this.opts.password } : {}),
      ...(this.opts.ca ? { ca: this.opts.ca } : {}),
      will: {
        topic: topics.status(kitId),
        payload: Buffer.from(JSON.stringify(offline)),
        qos: 1,
        retain: true,
      },
    };
    const client = mqtt.connect(this.opts.hubUrl, clientOpts);
    this.client = client;
    client.on('connect', () => this.onConnect());
    client.on('close', () => this.onClose());
    client.on('error', (err) => log.warn({ err: err.message }, 'hub link error'));
    client.on('message', (topic, payload) => {
      if (topic === topics.acks(kitId)) {
        this.onAck(payload).catch((err) => log.error({ err: (err as Error).message }, 'ack not applied'));
      } else if (topic.endsWith('/catalog')) {
        this.onCatalog(topic, payload).catch((err) =>
          log.error({ err: (err as Error).message }, 'catalog handling failed'),
        );
      }
    });

    const every = (ms: number, fn: () => unknown) => {
      const t = setInterval(() => {
        try {
          const r = fn();
          if (r instanceof Promise)
            r.catch((err) => log.warn({ err: (err as Error).message }, 'periodic task'));
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'periodic task');
        }
      }, ms);
      this.timers.push(t);
    };
    every(this.opts.pollMs, () => this.pump());
    every(Math.min(1000, this.opts.ackTimeoutMs), () => this.expireInflight());
    every(this.opts.statusIntervalMs ?? 1000, () => this.tick());
    every(this.opts.stockIntervalMs, () =>
      this.lanes.snapshotStock().then((queued) => queued && this.pump()),
    );
    every(this.opts.healthIntervalMs, () => this.queueHealth());
    every(this.opts.telemetryIntervalMs, () => this.queueTelemetry());
    every(30_000, () => this.lanes.trimAll());
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    if (client?.connected) {
      const bye: KitStatusT = { ...this.kitStatus(), online: false };
      await client
        .publishAsync(topics.status(this.opts.kitId), JSON.stringify(bye), { qos: 1, retain: true })
        .catch(() => undefined);
    }
    await client?.endAsync().catch(() => undefined);
    this.link = 'down';
    this.writeStatus();
  }

  private onConnect(): void {
    const client = this.client!;
    this.link = 'up';
    this.backoff.reset();
    log.info({ hub: redactUrl(this.opts.hubUrl) }, 'hub link up');
    // a link change shows in /v1/status at once, not at the next tick
    this.writeStatus();
    const subs: Record<string, { qos: 1 }> = { [topics.acks(this.opts.kitId)]: { qos: 1 } };
    this.subscribedEvent = this.activeEventId();
    subs[topics.catalog(this.subscribedEvent)] = { qos: 1 };
    client.subscribe(subs, (err) => {
      if (err) log.warn({ err: err.message }, 'subscribe failed');
    });
    client.publish(topics.status(this.opts.kitId), JSON.stringify(this.kitStatus()), {
      qos: 1,
      retain: true,
    });
    this.pump();
  }

  private onClose(): void {
    if (this.link === 'up') log.warn('hub link down');
    this.link = this.stopping ? 'down' : 'connecting';
    // whatever was in flight is resent after the reconnect; the ledger absorbs duplicates
    this.inflight.clear();
    this.batches.clear();
    this.cursor = undefined;
    if (this.stopping || this.reconnectTimer) return;
    const delay = this.backoff.next();
    this.link = 'down';
    this.writeStatus();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stopping) return;
      this.reconnects++;
      this.link = 'connecting';
      this.client?.reconnect();
    }, delay);
  }

  /**
   * kitd's "flush" (critical power, safe shutdown): don't sit out a reconnect backoff, try the link now,
   * and push what the window takes.
   */
  flushNow(): void {
    if (this.stopping) return;
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      this.reconnects++;
      this.link = 'connecting';
      this.client?.reconnect();
    }
    this.pump();
  }

  /** Fill the window of unacked messages from the outbox, highest lane first, oldest first. */
  pump(): void {
    if (this.pumping || !this.connected || this.stopping) return;
    this.pumping = true;
    try {
      while (this.batches.size < this.opts.window) {
        const batch = this.nextBatch();
        if (!batch) break;
        this.publishBatch(batch.leaf, batch.parts, batch.keys);
      }
    } finally {
      this.pumping = false;
    }
  }

  private nextBatch(): { leaf: 'orders' | 'telemetry'; parts: string[]; keys: string[] } | undefined {
    let wrapped = false;
    for (;;) {
      let leaf: 'orders' | 'telemetry' | undefined;
      const parts: string[] = [];
      const keys: string[] = [];
      let bytes = 128;
      let last: OutboxKey | undefined;
      for (const { key, value } of scanOutbox(this.store, this.cursor)) {
        const ks = keyString(key[0], key[1]);
        if (this.inflight.has(ks) || this.unpublishable.has(ks)) continue;
        const lane = LANE_BY_NUMBER[key[0]];
        if (!lane) continue;
        const l = topicLeaf(lane);
        if (leaf && l !== leaf) break;
        const wire = this.toWire(lane, key[1], value);
        if (!wire) {
          this.unpublishable.add(ks);
          log.error({ lane, id: key[1] }, 'outbox entry cannot be published (its order is missing)');
          continue;
        }
        const text = JSON.stringify(wire);
        if (
          parts.length > 0 &&
          (parts.length >= this.opts.batchMax || bytes + text.length + 1 > this.opts.batchBytes)
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

  private publishBatch(leaf: 'orders' | 'telemetry', parts: string[], keys: string[]): void {
    const seq = ++this.seq;
    const now = Date.now();
    for (const k of keys) this.inflight.set(k, seq);
    this.batches.set(seq, { keys, remaining: keys.length, sentAt: now });
    const kitId = this.opts.kitId;
    const payload = `{"v":1,"kitId":${JSON.stringify(kitId)},"sentAt":${now},"entries":[${parts.join(',')}]}`;
    const topic = leaf === 'orders' ? topics.orders(kitId) : topics.telemetry(kitId);
    this.client!.publish(topic, payload, { qos: 1 }, (err) => {
      if (err && !this.stopping) log.warn({ err: err.message, entries: keys.length }, 'publish failed');
    });
    this.published += keys.length;
  }

  /** Entries whose ack did not come within the timeout go back to the outbox scan (a resend). */
  private expireInflight(): void {
    const now = Date.now();
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
    if (expired) {
      this.cursor = undefined;
      this.pump();
    }
  }

  private async onAck(payload: Buffer): Promise<void> {
    const ack = wire.ack.parse(payload);
    if (!ack || ack.kitId !== this.opts.kitId) {
      log.warn('malformed ack ignored');
      return;
    }
    await applyHubAcks(this.store, ack.acks);
    for (const a of ack.acks) {
      const ks = keyString(LANES[a.lane], a.id);
      const seq = this.inflight.get(ks);
      if (seq === undefined) continue;
      this.inflight.delete(ks);
      const b = this.batches.get(seq);
      if (b && --b.remaining <= 0) this.batches.delete(seq);
    }
    this.drained += ack.acks.length;
    this.lastAckAt = Date.now();
    this.pump();
  }

  private activeEventId(): string {
    // the live event wins, then the configured one, then the event of the catalog the kit already sells
    return (
      readEventState(this.store).eventId ??
      this.opts.eventId ??
      readStoredCatalog(this.store)?.eventId ??
      'default'
    );
  }

  private async onCatalog(topic: string, payload: Buffer): Promise<void> {
    const eventId = topic.split('/')[3] ?? '';
    if (eventId !== this.subscribedEvent || payload.length === 0) return;
    if (!this.opts.hubPublicKey) {
      this.refuseCatalog('CATALOG_UNVERIFIABLE', 'no hub public key configured (POPKIT_HUB_PUBLIC_KEY)');
      return;
    }
    let verified: ReturnType<typeof verifySignedCatalog>;
    try {
      verified = verifySignedCatalog(this.opts.hubPublicKey, payload, eventId);
    } catch (err) {
      this.refuseCatalog(isKitError(err) ? err.code : 'CATALOG_MALFORMED', (err as Error).message);
      return;
    }
    const cur = readStoredCatalog(this.store);
    if (cur && cur.eventId === verified.eventId && cur.version === verified.version && cur.source === 'hub') {
      return; // the retained copy, delivered again on reconnect
    }
    try {
      await replaceCatalog(this.store, verified.catalog, { source: 'hub', requireNewer: true });
    } catch (err) {
      const code =
        isKitError(err) && err.code === 'CONFLICT'
          ? 'CATALOG_STALE'
          : isKitError(err)
            ? err.code
            : 'INTERNAL';
      this.refuseCatalog(code, (err as Error).message);
      return;
    }
    this.catalog = { eventId, version: verified.version, acceptedAt: new Date().toISOString() };
    log.info({ eventId, version: verified.version }, 'catalog from hub accepted');
  }

  private refuseCatalog(code: string, message: string): void {
    log.warn({ code, message }, 'catalog refused, the current one stays');
    this.catalogRefusals.push({ code, message, at: new Date().toISOString() });
    if (this.catalogRefusals.length > 20) this.catalogRefusals.shift();
  }

  private async queueHealth(): Promise<void> {
    const services: Record<string, unknown> = {};
    for (const name of ['kitd', 'checkout', 'media']) {
      const s = readServiceStatus(this.opts.dataDir, name);
      if (!s) continue;
      const text = JSON.stringify(s);
      // a status that grew large is summarized rather than let it eat the lane's quota
      services[name] = text.length > 16_384 ? { updatedAt: s.updatedAt, truncated: true } : s;
    }
    await this.lanes.enqueue('health', 'health', { services });
  }

  private async queueTelemetry(): Promise<void> {
    const mem = process.memoryUsage();
    await this.lanes.enqueue('telemetry', 'telemetry', {
      sync: {
        published: this.published,
        drained: this.drained,
        resent: this.resent,
        reconnects: this.reconnects,
        rssBytes: mem.rss,
        uptimeS: Math.round(process.uptime()),
      },
      dropped: { ...this.lanes.dropped },
    });
  }

  private kitStatus(): KitStatusT {
    const cat = readCatalogStamp(this.store);
    return kitStatusPayload({
      kitId: this.opts.kitId,
      eventId: this.activeEventId(),
      lanes: this.lanes.stats(),
      lastAckAt: this.lastAckAt,
      catalogVersion: cat?.version ?? null,
      kitd: readServiceStatus(this.opts.dataDir, 'kitd'),
    });
  }

  private statusTick = 0;

  private tick(): void {
    // follow the live event's catalog when the host starts an event with another id
    const active = this.activeEventId();
    if (this.connected && this.subscribedEvent && active !== this.subscribedEvent) {
      this.client!.unsubscribe(topics.catalog(this.subscribedEvent));
      this.subscribedEvent = active;
      this.client!.subscribe(topics.catalog(active), { qos: 1 });
    }
    this.writeStatus();
    if (this.connected && ++this.statusTick % 10 === 0) {
      this.client!.publish(topics.status(this.opts.kitId), JSON.stringify(this.kitStatus()), {
        qos: 1,
        retain: true,
      });
    }
  }

  status() {
    const { backlog, oldestAgeMs } = this.lanes.stats();
    const cat = readCatalogStamp(this.store);
    return {
      link: this.link,
      hubUrl: redactUrl(this.opts.hubUrl),
      kitId: this.opts.kitId,
      backlog,
      oldestAgeMs,
      inflight: this.inflight.size,
      lastAckAt: this.lastAckAt ? new Date(this.lastAckAt).toISOString() : null,
      drained: this.drained,
      published: this.published,
      resent: this.resent,
      reconnects: this.reconnects,
      dropped: { ...this.lanes.dropped },
      catalogVersion: cat?.version ?? null,
      catalogEventId: cat?.eventId ?? null,
      catalogSubscribed: this.subscribedEvent ?? null,
      catalogRefusals: this.catalogRefusals.slice(-5),
    };
  }

  private writeStatus(): void {
    try {
      writeServiceStatus(this.opts.dataDir, 'sync', this.status());
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'status not written');
    }
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
    })),
    payment:
      o.payment.method === 'token' ? { method: 'token', tokenHint: o.payment.tokenHint } : { method: 'cash' },
    createdAt: o.createdAt,
  };
}

/**
 * The retained status a kit shows the hub's fleet view. kitd reports power as a list of readings; the hub
 * gets the battery that says most (the first one with a state of charge).
 */
export function kitStatusPayload(o: {
  kitId: string;
  eventId: string;
  lanes: { backlog: Record<string, number>; oldestAgeMs: Record<string, number> };
  lastAckAt: number | null;
  catalogVersion: number | null;
  kitd: Record<string, unknown> | undefined;
  now?: number;
}): KitStatusT {
  const power = Array.isArray(o.kitd?.['power']) ? (o.kitd['power'] as Array<Record<string, unknown>>) : [];
  const main = power.find((r) => typeof r['socPct'] === 'number') ?? power[0];
  const battery = main
    ? Object.fromEntries(
        ['device', 'socPct', 'batteryV', 'chargeState', 'stale']
          .filter((k) => main[k] !== undefined)
          .map((k) => [k, main[k]]),
      )
    : undefined;
  return {
    v: 1,
    kitId: o.kitId,
    online: true,
    at: o.now ?? Date.now(),
    eventId: o.eventId,
    backlog: o.lanes.backlog,
    oldestAgeMs: Object.fromEntries(
      Object.entries(o.lanes.oldestAgeMs).map(([k, v]) => [k, Math.max(0, Math.round(v))]),
    ),
    lastAckAt: o.lastAckAt,
    catalogVersion: o.catalogVersion,
    ...(typeof o.kitd?.['state'] === 'string' ? { state: o.kitd['state'] as string } : {}),
    ...(battery ? { battery } : {}),
  };
}
