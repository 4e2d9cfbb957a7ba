// A hub worker's MQTT side: consumes the kits' batches through a shared subscription, commits them to
// the ledger, and only then acks, both at the MQTT level (PUBACK after commit, so a crash redelivers)
// and at the application level on the kit's ack topic. Also publishes signed catalogs, retained.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { retryWithBackoff } from '../../core/backoff.ts';
import { isSafeText } from '../../core/contracts/common.ts';
import {
  type AckT,
  type BatchEntryT,
  entryProblems,
  kitIdFromTopic,
  type MqttVersion,
  mqttProtocolLevel,
  type SignedCatalogT,
  type SignedSealKeyT,
  safeReason,
  topics,
  wire,
} from '../../core/contracts/hub-wire.ts';
import { lanStockWire } from '../../core/contracts/lan-stock.ts';
import { LANE_NAMES, type LaneName } from '../../core/contracts/lanes.ts';
import type { SeriesBatchT } from '../../core/contracts/series.ts';
import { KitError } from '../../core/errors.ts';
import { moduleLogger, redactUrl } from '../../core/logger.ts';
import { type PollLoop, pollLoop } from '../../core/poll-loop.ts';
import type { SealOpener } from '../../core/telemetry-seal.ts';
import { brokerTarget } from './broker-urls.ts';
import { isTransientDbError } from './failures.ts';
import type { DeadLetter, Ledger } from './ledger.ts';
import { isSealedBody, openSeriesEntry } from './series.ts';
import type { SharedStock } from './shared-stock.ts';

const log = moduleLogger('hub-ingest');

export interface HubIngestOptions {
  brokerUrl: string;
  username?: string | undefined;
  password?: string | undefined;
  caFile?: string | undefined;
  workerId: string;
  /** POPKIT_HUB_MQTT_VERSION; absent: 5 (nothing here needs 5: PUBACK after commit is QoS 1's own) */
  mqttVersion?: MqttVersion | undefined;
  shareGroup: string;
  shared: 'auto' | 'on' | 'off';
  retryDeferredMs: number;
  /** resend confirmed verdicts not receipted for this long */
  verdictResendMs: number;
  /** per-kit limits: entries per batch, messages per second and burst (a token bucket per kit) */
  kitQuota: { batchMax: number; ratePerS: number; burst: number };
  /** the telemetry seal key (services/hub/keys.ts) and its signed public half, published retained */
  seal?: { opener: SealOpener; signed: SignedSealKeyT } | undefined;
  /**
   * where the kits' orders, telemetry and receipts come from: `mqtt` (absent) a subscription of this
   * connection; `external` the JetStream consumer (services/hub/jetstream.ts), which hands each to
   * handleExternal. Either way the kits' statuses come over MQTT (retained) and every answer goes out on it.
   */
  batches?: 'mqtt' | 'external' | undefined;
}

export interface IngestStats {
  batches: number;
  entries: number;
  refused: Record<string, number>;
  acksSent: number;
  dbRetries: number;
  /** confirmed verdicts sent again (kit back online, or not receipted in time) */
  verdictsResent: number;
  /** confirmed verdicts the kits receipted */
  receipts: number;
  /** sealed telemetry entries opened and stored as series */
  seriesOpened: number;
  /** sealed telemetry entries dead-lettered, per code (SEAL_OPEN_FAILED…) */
  seriesRefused: Record<string, number>;
}

const ACKS_PER_MESSAGE = 2000;
/** waiting out a database that is away: 100 ms doubling to 5 s, no jitter (one worker, no herd) */
const DB_RETRY = { initialMs: 100, maxMs: 5000 } as const;

export class HubIngest {
  private client: MqttClient | undefined;
  private stopping = false;
  private retryLoop: PollLoop | undefined;
  private resendLoop: PollLoop | undefined;
  private retrying = false;
  sharedSubscription: boolean | undefined;
  private readonly buckets: KitBuckets;
  private readonly batchMax: number;
  readonly stats: IngestStats = {
    batches: 0,
    entries: 0,
    refused: {},
    acksSent: 0,
    dbRetries: 0,
    verdictsResent: 0,
    receipts: 0,
    seriesOpened: 0,
    seriesRefused: {},
  };

  constructor(
    private readonly ledger: Ledger,
    private readonly opts: HubIngestOptions,
  ) {
    this.buckets = new KitBuckets(opts.kitQuota.ratePerS, opts.kitQuota.burst);
    this.batchMax = opts.kitQuota.batchMax;
  }

  /** the external source's own link (the NATS connection), when there is one */
  externalConnected: (() => boolean) | undefined;

  /** shared stock (services/hub/shared-stock.ts): statements after releases, and on reconnect */
  sharedStock: Pick<SharedStock, 'publishEvent' | 'republishAll'> | undefined;

  get connected(): boolean {
    return (this.client?.connected ?? false) && (this.externalConnected?.() ?? true);
  }

  async start(): Promise<void> {
    const clientOpts: IClientOptions = {
      protocolVersion: mqttProtocolLevel(this.opts.mqttVersion ?? '5'),
      clientId: `popkit-hub-${this.opts.workerId}`,
      // a clean session: a dead worker's persistent session would stay in the shared group and the
      // broker would keep queueing kits' batches to it; with clean sessions whatever a worker held
      // unacked when it died is resent by the kits (ack timeout) and lands on a live worker
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      // subscribing again after a reconnect is ours (subscribeAgain): mqtt.js's own drops a refusal
      // silently, and a NATS node that just lost a peer may refuse a QoS 1 filter (SUBACK 0x80) while
      // its JetStream elects new leaders: the worker would stay connected and deaf
      resubscribe: false,
      ...(this.opts.username ? { username: this.opts.username } : {}),
      ...(this.opts.password ? { password: this.opts.password } : {}),
      ...(this.opts.caFile ? { ca: fs.readFileSync(this.opts.caFile) } : {}),
    };
    const target = brokerTarget(this.opts.brokerUrl);
    const client = mqtt.connect(target.url, {
      ...clientOpts,
      ...(target.servers ? { servers: target.servers } : {}),
    });
    this.client = client;
    client.on('error', (err) => log.warn({ err: err.message }, 'broker error'));
    client.on('offline', () => log.warn('broker offline'));
    // PUBACK only after the ledger committed: mqtt.js sends it when this callback runs
    client.handleMessage = (packet, done) => {
      // stopping: what is still queued is not processed nor acked (the kits resend it to a live worker)
      if (this.stopping) return;
      this.onMessage(packet.topic, packet.payload as Buffer).then(
        () => done(),
        (err) => {
          // not retryable (a value the database rejects, a bug): acking at the MQTT level keeps the
          // worker moving; no application ack went out, so the kit resends later and the entry is
          // refused again, visibly, instead of stalling every kit behind it
          this.refuse('unprocessable', packet.topic, (err as Error).message);
          done();
        },
      );
    };
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: Error) => reject(err);
      client.once('connect', () => {
        client.off('error', onErr);
        resolve();
      });
      client.once('error', onErr);
    });
    const external = this.opts.batches === 'external';
    // the batches come from elsewhere: nothing to share here, one plain status subscription per worker
    if (external) this.sharedSubscription = false;
    if (this.sharedSubscription === undefined) {
      this.sharedSubscription =
        this.opts.shared === 'auto' ? await this.probeShared() : this.opts.shared === 'on';
      if (!this.sharedSubscription) {
        log.warn('broker without shared subscriptions: plain subscription, run exactly one hub worker');
      }
    }
    const share = (t: string) => (this.sharedSubscription ? `$share/${this.opts.shareGroup}/${t}` : t);
    const subscriptions: Record<string, { qos: 1 }> = external
      ? { [topics.allStatus]: { qos: 1 } }
      : {
          [share(topics.allOrders)]: { qos: 1 },
          [share(topics.allTelemetry)]: { qos: 1 },
          [share(topics.allReceipts)]: { qos: 1 },
          [topics.allStatus]: { qos: 1 },
        };
    await client.subscribeAsync(subscriptions);
    client.on('connect', () => {
      this.subscribeAgain(client, subscriptions);
      // a broker without persistence lost the retained catalogs: put the latest back
      this.republishCatalogs().catch((err) => log.warn({ err: (err as Error).message }, 'catalog republish'));
      this.sharedStock
        ?.republishAll()
        .catch((err) => log.warn({ err: (err as Error).message }, 'allocation republish'));
      this.publishSealKey().catch((err) => log.warn({ err: (err as Error).message }, 'seal key publish'));
    });
    await this.republishCatalogs();
    await this.publishSealKey();
    this.retryLoop = pollLoop(this.opts.retryDeferredMs, () => this.retryDeferred(), {
      unref: true,
      onError: (err) => log.warn({ err: (err as Error).message }, 'deferred retry'),
    });
    this.resendLoop = pollLoop(
      this.opts.verdictResendMs,
      () => this.resendVerdicts({ staleMs: this.opts.verdictResendMs }),
      {
        unref: true,
        onError: (err) => log.warn({ err: (err as Error).message }, 'verdict resend'),
      },
    );
    log.info(
      { broker: redactUrl(this.opts.brokerUrl), shared: this.sharedSubscription },
      'hub ingest started',
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.retryLoop?.stop();
    this.resendLoop?.stop();
    // forced: a backlog of incoming messages (a flood) must not hold the stop up; nothing unacked is lost
    await this.client?.endAsync(true);
  }

  /**
   * After a reconnect (a clean session: the broker forgot the subscriptions), subscribe again; a refused
   * filter is logged and retried every second while connected.
   */
  private subscribeAgain(client: MqttClient, subscriptions: Record<string, { qos: 1 }>): void {
    if (this.stopping || !client.connected) return;
    client.subscribeAsync(subscriptions).catch((err: Error) => {
      log.warn({ err: err.message }, 'broker refused the subscriptions after a reconnect: trying again');
      setTimeout(() => this.subscribeAgain(client, subscriptions), 1000).unref();
    });
  }

  /** Does the broker deliver `$share/…` subscriptions? (Mosquitto, EMQX, HiveMQ do; aedes 1.x does not.) */
  private async probeShared(): Promise<boolean> {
    const client = this.client!;
    const nonce = randomBytes(6).toString('hex');
    const topic = `popkit/v1/hub-probe/${nonce}`;
    const filter = `$share/${this.opts.shareGroup}-probe/${topic}`;
    const got = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 2000);
      const onMsg = (t: string) => {
        if (t === topic) {
          clearTimeout(timer);
          client.off('message', onMsg);
          resolve(true);
        }
      };
      client.on('message', onMsg);
    });
    try {
      await client.subscribeAsync(filter, { qos: 1 });
      await client.publishAsync(topic, 'probe', { qos: 1 });
    } catch {
      return false;
    }
    const ok = await got;
    await client.unsubscribeAsync(filter).catch(() => undefined);
    return ok;
  }

  private refuse(reason: string, topic: string, detail?: unknown): void {
    const n = (this.stats.refused[reason] ?? 0) + 1;
    this.stats.refused[reason] = n;
    // a flood must not become a flood of log lines: quota refusals are logged at the 1st, 2nd, 4th, 8th…
    if (reason.startsWith('quota_') && (n & (n - 1)) !== 0) return;
    log.warn({ topic, reason, detail, count: n }, 'kit message refused');
  }

  /**
   * A kit's message from the external source (the JetStream consumer), as if it came off this
   * connection's subscription: the same checks, commit and acks. Resolves once committed and acked to
   * the kit; rejects on an error that is not retryable (the caller refuses it with refuseExternal).
   */
  handleExternal(topic: string, payload: Buffer): Promise<void> {
    if (this.stopping) return Promise.reject(new KitError('NOT_READY', 'stopping'));
    return this.onMessage(topic, payload);
  }

  /** A message the external source refuses on its own (a subject off the kits' shape, not retryable). */
  refuseExternal(reason: string, topic: string, detail?: unknown): void {
    this.refuse(reason, topic, detail);
  }

  private async onMessage(topic: string, payload: Buffer): Promise<void> {
    if (topic.startsWith('popkit/v1/hub-probe/')) return;
    const t = kitIdFromTopic(topic);
    if (!t) return this.refuse('topic', topic);
    // over its quota a kit's message is dropped before any parsing or database work, and not acked:
    // the kit's ack timeout makes it back off and resend, and other kits are not held up behind it
    if (!this.buckets.take(t.kitId)) return this.refuse('quota_rate', topic);
    if (t.leaf === 'status') {
      if (payload.length === 0) return; // a cleared retained status
      const s = wire.kitStatus.parse(payload);
      if (!s) return this.refuse('malformed', topic);
      if (s.kitId !== t.kitId) return this.refuse('kit_mismatch', topic, { claimed: s.kitId });
      const { cameOnline, keyEvents } = await this.withDbRetry(() => this.ledger.recordStatus(s));
      // back online: whatever verdicts it has not confirmed yet, now (the periodic resend covers a
      // last will the broker never delivered)
      if (cameOnline) await this.resendVerdicts({ kitId: s.kitId });
      // a new or changed identity key: the kit's peers in each of its events learn it from their statements
      this.publishStatements(keyEvents);
      return;
    }
    if (t.leaf === 'receipts') {
      const r = wire.receipt.parse(payload);
      if (!r) return this.refuse('malformed', topic);
      if (r.kitId !== t.kitId) return this.refuse('kit_mismatch', topic, { claimed: r.kitId });
      this.stats.receipts += await this.withDbRetry(() => this.ledger.confirmReceipt(t.kitId, r.orders));
      return;
    }
    if (t.leaf !== 'orders' && t.leaf !== 'telemetry') return;
    const batch = wire.batch.parse(payload);
    if (!batch) return this.refuse('malformed', topic, batchProblems(payload));
    // the broker's ACL binds a kit to its own topics; the hub checks the claim inside matches too
    if (batch.kitId !== t.kitId) return this.refuse('kit_mismatch', topic, { claimed: batch.kitId });
    if (batch.entries.length > this.batchMax)
      return this.refuse('quota_entries', topic, { entries: batch.entries.length });
    // each entry on its own: a bad one is dead-lettered and acked 'rejected', the rest go on
    const entries: BatchEntryT[] = [];
    const rejects: DeadLetter[] = [];
    const series = new Map<string, SeriesBatchT>();
    for (const raw of batch.entries) {
      const problems = entryProblems(raw, t.kitId);
      if (problems.length === 0) {
        const e = raw as BatchEntryT;
        // sealed telemetry: opened here, refused with its code when it does not open or check
        if (e.lane === 'telemetry' && 'body' in e && isSealedBody(e.body)) {
          const opened = openSeriesEntry(this.opts.seal?.opener, t.kitId, e);
          if ('code' in opened) {
            this.stats.seriesRefused[opened.code] = (this.stats.seriesRefused[opened.code] ?? 0) + 1;
            const reason = safeReason([`${opened.code}: ${opened.message}`]);
            this.refuse('dead_letter', topic, reason);
            rejects.push({ lane: 'telemetry', id: e.id, reason, raw: Buffer.from(JSON.stringify(raw)) });
            continue;
          }
          series.set(e.id, opened.batch);
          this.stats.seriesOpened++;
        }
        entries.push(e);
        continue;
      }
      const reason = safeReason(problems);
      if (problems.some((p) => p.includes('kit_mismatch'))) this.refuse('kit_mismatch', topic, reason);
      this.refuse('dead_letter', topic, reason);
      rejects.push({ ...entryKey(raw), reason, raw: Buffer.from(JSON.stringify(raw) ?? 'null') });
    }
    const t0 = performance.now();
    const acks = await this.withDbRetry(() => this.ledger.recordBatch(t.kitId, entries, rejects, series));
    if (log.isLevelEnabled('debug')) {
      log.debug(
        {
          kitId: t.kitId,
          entries: batch.entries.length,
          ms: Math.round(performance.now() - t0),
          lagMs: Date.now() - batch.sentAt,
        },
        'batch committed',
      );
    }
    this.stats.batches++;
    this.stats.entries += batch.entries.length;
    this.sendAcks(t.kitId, acks);
    // committed stock releases and LAN receipts: the statements of the event's kits change (a
    // transfer's grant); a dead-lettered one changed nothing
    const stored = new Set(acks.filter((a) => a.state === 'stored').map((a) => `${a.lane}\u0000${a.id}`));
    this.publishStatements(
      entries.flatMap((e) =>
        !stored.has(`${e.lane}\u0000${e.id}`)
          ? []
          : 'release' in e
            ? [e.release.eventId]
            : 'lanGrant' in e
              ? lanGrantEvent(e.lanGrant.receipt.payload)
              : [],
      ),
    );
  }

  /** The statements of every kit of these events, not awaited (as acks: their PUBACKs arrive on the
   * stream this handler holds up). */
  private publishStatements(eventIds: Iterable<string>): void {
    for (const eventId of new Set(eventIds)) {
      void this.sharedStock
        ?.publishEvent(eventId)
        .catch((err) =>
          log.warn({ err: (err as Error).message, eventId }, 'allocation statements not published'),
        );
    }
  }

  private sendAcks(kitId: string, acks: AckT['acks']): void {
    for (let i = 0; i < acks.length; i += ACKS_PER_MESSAGE) {
      const msg: AckT = { v: 1, kitId, acks: acks.slice(i, i + ACKS_PER_MESSAGE) };
      // not awaited: the PUBACK for it arrives on the same stream this handler holds up; a lost ack
      // is repaired by the kit resending, which the ledger answers from what it already has
      this.client?.publish(topics.acks(kitId), JSON.stringify(msg), { qos: 1 }, (err) => {
        if (err) log.warn({ err: err.message, kitId }, 'ack publish failed');
      });
      this.stats.acksSent += msg.acks.length;
    }
  }

  private withDbRetry<T>(fn: () => Promise<T>): Promise<T> {
    return retryWithBackoff(fn, {
      policy: DB_RETRY,
      retryable: isTransientDbError,
      shouldStop: () => this.stopping,
      onRetry: (err, retryInMs) => {
        this.stats.dbRetries++;
        log.warn({ err: (err as Error).message, retryInMs }, 'ledger write failed, retrying');
      },
    });
  }

  private async resendVerdicts(opts: { kitId?: string; staleMs?: number }): Promise<void> {
    if (!this.connected) return;
    const pending = await this.withDbRetry(() => this.ledger.pendingVerdicts(opts));
    this.sendAcksByKit(pending);
    this.stats.verdictsResent += pending.length;
  }

  /** Acks for several kits, one message (or a few) per kit. */
  private sendAcksByKit(items: { kitId: string; ack: AckT['acks'][number] }[]): void {
    const byKit = new Map<string, AckT['acks']>();
    for (const d of items) {
      const acks = byKit.get(d.kitId);
      if (acks) acks.push(d.ack);
      else byKit.set(d.kitId, [d.ack]);
    }
    for (const [kitId, acks] of byKit) this.sendAcks(kitId, acks);
  }

  private async retryDeferred(): Promise<void> {
    if (this.retrying || !this.connected) return;
    this.retrying = true;
    try {
      this.sendAcksByKit(await this.ledger.retryDeferred());
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'deferred exchange retry failed');
    } finally {
      this.retrying = false;
    }
  }

  async publishCatalog(eventId: string, signed: SignedCatalogT): Promise<void> {
    if (!this.client?.connected) throw new KitError('NOT_READY', 'broker not connected');
    await this.client.publishAsync(topics.catalog(eventId), JSON.stringify(signed), { qos: 1, retain: true });
  }

  /** Publish retained, QoS 1 (a kit's allocation statement, services/hub/shared-stock.ts). */
  async publishRetained(topic: string, payload: string): Promise<void> {
    if (!this.client?.connected) throw new KitError('NOT_READY', 'broker not connected');
    await this.client.publishAsync(topic, payload, { qos: 1, retain: true });
  }

  /** The hub's telemetry seal key, signed, retained: kits seal their series to it. */
  private async publishSealKey(): Promise<void> {
    if (!this.client?.connected || !this.opts.seal) return;
    await this.client.publishAsync(topics.sealKey, JSON.stringify(this.opts.seal.signed), {
      qos: 1,
      retain: true,
    });
  }

  /** Publish a hub message (QoS 1, resolves on the broker's PUBACK): the alerts topic (services/hub/alerts.ts). */
  async publish(topic: string, payload: string): Promise<void> {
    if (!this.client?.connected) throw new KitError('NOT_READY', 'broker not connected');
    await this.client.publishAsync(topic, payload, { qos: 1 });
  }

  private async republishCatalogs(): Promise<void> {
    if (!this.client?.connected) return;
    for (const c of await this.ledger.latestCatalogs()) {
      await this.client.publishAsync(topics.catalog(c.eventId), JSON.stringify(c.signed), {
        qos: 1,
        retain: true,
      });
    }
  }
}

/** A token bucket per kit: `burst` messages at once, refilled at `ratePerS`. */
export class KitBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** true when `kitId` may send one more message now (and takes its token) */
  take(kitId: string): boolean {
    const now = this.now();
    const b = this.buckets.get(kitId) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerS);
    b.at = now;
    if (!this.buckets.has(kitId)) {
      // bounded memory: full buckets carry no state worth keeping
      if (this.buckets.size >= 10_000) this.sweep(now);
      this.buckets.set(kitId, b);
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets)
      if (b.tokens + ((now - b.at) / 1000) * this.ratePerS >= this.burst) this.buckets.delete(k);
  }
}

/** The lane and id of an entry the hub refused, when they can be read (to ack it). */
function entryKey(raw: unknown): { lane: LaneName | undefined; id: string | undefined } {
  const e = (raw && typeof raw === 'object' ? raw : {}) as { lane?: unknown; id?: unknown };
  const lane = LANE_NAMES.find((l) => l === e.lane);
  const id =
    typeof e.id === 'string' && e.id.length >= 1 && e.id.length <= 64 && isSafeText(e.id) ? e.id : undefined;
  return { lane, id };
}

/** The event of a LAN receipt the ledger stored (it verified it: the payload is a receipt). */
function lanGrantEvent(payload: string): string[] {
  try {
    const p = JSON.parse(payload) as unknown;
    return lanStockWire.receipt.check(p) ? [p.eventId] : [];
  } catch {
    return [];
  }
}

/** What was wrong with a batch the hub refused, for the log line. */
function batchProblems(payload: Buffer): string | string[] {
  try {
    return wire.batch.errors(JSON.parse(payload.toString('utf8')));
  } catch {
    return 'not JSON';
  }
}
