// Store-and-forward from the kit's LMDB outbox to the hub. The outbox is the only source of truth:
// an entry leaves it only in the LMDB transaction that applies the hub's application-level ack, so a
// crash of sync, of the hub or of the link at any moment at worst resends entries, which the hub's
// ledger (keyed by the kit's ids) absorbs. SyncService wires the parts together: the hub link
// (link.ts), the outbox pump (pump.ts), acks (acks.ts), catalogs from the hub (catalog-intake.ts),
// its lanes (lanes.ts) and what it reports (sync-status.ts, reports.ts).
import type { KeyObject } from 'node:crypto';
import { type ClockSources, systemClockSources } from '../../core/clock-trust.ts';
import { CheckoutConfig } from '../../core/config.ts';
import { authorizeSocketPath } from '../../core/contracts/authorize-relay.ts';
import { type KitStatusT, type MqttVersion, type ReceiptT, topics } from '../../core/contracts/hub-wire.ts';
import { type LinkState, readRunStatus, type SyncMeteredMode } from '../../core/contracts/run-status.ts';
import { kitIdentity } from '../../core/enroll-kit.ts';
import { moduleLogger, redactUrl } from '../../core/logger.ts';
import { type PollLoop, pollLoop } from '../../core/poll-loop.ts';
import { clockTrustNow } from '../../core/store/clock.ts';
import {
  type KitStore,
  readCatalogStamp,
  reanchorSealedTokens,
  sharedStockView,
} from '../../core/store/index.ts';
import type { TokenVault } from '../../core/token-vault.ts';
import type { BindLinksMode } from '../../core/uplinks.ts';
import { applyAckMessage } from './acks.ts';
import { AllocationIntake } from './allocation-intake.ts';
import { AuthorizeRelay } from './authorize-relay.ts';
import { CatalogIntake } from './catalog-intake.ts';
import { LanStock, type LanStockOptions } from './lan-stock.ts';
import type { LaneKeeper } from './lanes.ts';
import { HubLink } from './link.ts';
import { type BusyLimits, CheckoutLoad, type LoadSignal, pause } from './load.ts';
import { UplinkGate } from './metered.ts';
import { OutboxPump } from './pump.ts';
import { healthBody, telemetryBody } from './reports.ts';
import { SeriesShipper } from './series-ship.ts';
import { kitStatusPayload, type SyncRunStatusT, writeSyncStatus } from './sync-status.ts';

const log = moduleLogger('sync');

export interface SyncOptions {
  kitId: string;
  dataDir: string;
  hubUrl: string;
  /** POPKIT_HUB_ALLOW_PLAINTEXT (link.ts refuses a plaintext hub URL to another machine otherwise) */
  allowPlaintext?: boolean | undefined;
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
  /** POPKIT_SYNC_METERED (metered.ts); absent: essential */
  metered?: SyncMeteredMode | undefined;
  /** what may be sent now (tests inject one); default: judged from kitd's run status in dataDir */
  uplink?: UplinkGate | undefined;
  /** POPKIT_SYNC_MQTT_VERSION (link.ts); absent: 5 */
  mqttVersion?: MqttVersion | undefined;
  /** POPKIT_SYNC_BIND_LINKS (link.ts, uplinks.ts); absent: off */
  bindLinks?: BindLinksMode | undefined;
  /** POPKIT_SYNC_KEEPALIVE_S (link.ts); absent: 60 */
  keepaliveS?: number | undefined;
  /** sealed series to the hub (series-ship.ts); absent: on, with the defaults */
  series?: { enabled: boolean; intervalMs: number; settleS: number; minGroup: number } | undefined;
  /** the clocks KitStatus.clock is judged with (tests inject them); default: this machine's */
  clock?: Pick<ClockSources, 'wall' | 'mono' | 'bootId'> & { jumpToleranceMs?: number };
  /** checkout first (load.ts): the limits while orders arrive and how long "arriving" lasts after the
   *  last one; undefined: sync always drains at full size */
  busy?: (BusyLimits & { holdMs: number }) | undefined;
  /** POPKIT_LAN_STOCK_* (lan-stock.ts): units moved between the event's kits over the venue LAN; absent: off */
  lan?: Omit<LanStockOptions, 'kitId' | 'identity'> | undefined;
}

/** the retained kit status goes to the hub every this many status ticks */
const HUB_STATUS_EVERY = 10;
const TRIM_EVERY_MS = 30_000;
const REANCHOR_EVERY_MS = 60_000;

/** order ids per receipt message (the Receipt contract's bound) */
const RECEIPT_MAX = 5000;
export class SyncService {
  private readonly hubLink: HubLink;
  private readonly batches: OutboxPump;
  private readonly catalogs: CatalogIntake;
  private readonly allocations: AllocationIntake;
  /** the kit's series, sealed to the hub (#12) */
  readonly series: SeriesShipper;
  /** checkout's online card checks, relayed to the hub (authorize-relay.ts) */
  readonly authorizeRelay: AuthorizeRelay;
  /** what may travel on the primary link now (metered.ts): the image fetcher asks it too */
  readonly uplink: UplinkGate;
  private loops: PollLoop[] = [];
  private statusTick = 0;
  /** acks are applied one message after the other, in arrival order, even while one is paced */
  private ackChain: Promise<void> = Promise.resolve();
  private stopping = false;
  private readonly load: LoadSignal | undefined;
  /** the kit's identity key (core/enroll-kit.ts): its public half goes to the hub in the kit status */
  private readonly identity: { privateKey: KeyObject; publicKey: string } | undefined;
  /** units moved with the event's other kits over the venue LAN while the hub is out of reach */
  readonly lanStock: LanStock | undefined;
  /** ack transactions committed (a paced message takes several) */
  ackTxns = 0;
  drained = 0;
  lastAckAt: number | null = null;

  constructor(
    private readonly store: KitStore,
    private readonly vault: TokenVault,
    private readonly lanes: LaneKeeper,
    private readonly opts: SyncOptions,
    load?: LoadSignal,
  ) {
    this.load = opts.busy ? (load ?? new CheckoutLoad(store, opts.busy.holdMs)) : undefined;
    this.uplink = opts.uplink ?? new UplinkGate(opts.dataDir, opts.metered ?? 'essential');
    this.hubLink = new HubLink(
      opts,
      {
        up: () => this.onLinkUp(),
        down: () => this.batches.reset(),
        message: (topic, payload, props) => this.onMessage(topic, payload, props?.correlationData),
        changed: () => {
          this.writeStatus();
          this.authorizeRelay.linkChanged();
        },
      },
      this.uplink,
    );
    this.authorizeRelay = new AuthorizeRelay(opts.kitId, authorizeSocketPath(opts.dataDir), {
      state: () => this.hubLink.state,
      mqttVersion: () => this.hubLink.mqttVersion,
      request: (topic, body, reply) => this.hubLink.request(topic, body, reply),
    });
    this.batches = new OutboxPump(
      store,
      vault,
      {
        ready: () => this.hubLink.connected && !this.hubLink.closed,
        send: (topic, payload, entries) =>
          this.hubLink.publish(topic, payload, false, (err) =>
            log.warn({ err: err.message, entries }, 'publish failed'),
          ),
      },
      opts,
      this.load,
      () => this.uplink.lanes(),
    );
    this.catalogs = new CatalogIntake(store, opts);
    this.allocations = new AllocationIntake(store, opts);
    try {
      this.identity = kitIdentity(opts.dataDir);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'no identity key: no LAN stock transfers');
    }
    if (opts.lan && opts.lan.mode !== 'off' && this.identity) {
      this.lanStock = new LanStock(
        store,
        { ...opts.lan, kitId: opts.kitId, identity: this.identity },
        {
          eventId: () => this.catalogs.activeEventId(),
          hubConnected: () => this.hubLink.connected,
          queued: () => this.pump(),
        },
      );
    }
    const s = opts.series ?? { enabled: true, intervalMs: 10_000, settleS: 10, minGroup: 5 };
    this.series = new SeriesShipper(
      store,
      lanes,
      {
        kitId: opts.kitId,
        enabled: s.enabled,
        hubPublicKey: opts.hubPublicKey,
        minGroup: s.minGroup,
        settleS: s.settleS,
        audienceEveryMs: 60_000,
        maxDeferMs: 60_000,
      },
      () => this.catalogs.activeEventId(),
      this.load,
      undefined,
      () => this.uplink.holds(),
    );
  }

  get connected(): boolean {
    return this.hubLink.connected;
  }

  get link(): LinkState {
    return this.hubLink.state;
  }

  get inflightCount(): number {
    return this.batches.inflightCount;
  }

  get published(): number {
    return this.batches.published;
  }

  /** batches sent while checkout was busy, and at full size */
  get batchesBy(): Readonly<{ busy: number; idle: number }> {
    return this.batches.batchesBy;
  }

  /** the most entries one batch held, while checkout was busy and while idle */
  get largestBatch(): Readonly<{ busy: number; idle: number }> {
    return this.batches.largestBatch;
  }

  get resent(): number {
    return this.batches.resent;
  }

  get reconnects(): number {
    return this.hubLink.reconnects;
  }

  get catalog() {
    return this.catalogs.accepted;
  }

  get catalogRefusals() {
    return this.catalogs.refusals;
  }

  /** catalog refusals since start, per code */
  get catalogRefused(): Readonly<Record<string, number>> {
    return this.catalogs.refusedCount;
  }

  start(): void {
    this.hubLink.open();
    this.authorizeRelay
      .listen()
      .catch((err) => log.error({ err: (err as Error).message }, 'authorize relay not listening'));
    const onError = (err: unknown) => log.warn({ err: (err as Error).message }, 'periodic task');
    const every = (ms: number, task: () => unknown, immediate = false) =>
      this.loops.push(pollLoop(ms, task, { onError, immediate }));
    every(this.opts.pollMs, () => this.pump());
    every(Math.min(1000, this.opts.ackTimeoutMs), () => this.batches.expire() && this.pump());
    every(this.opts.statusIntervalMs ?? 1000, () => this.tick(), true);
    every(this.opts.stockIntervalMs, () =>
      this.lanes.snapshotStock().then((queued) => queued && this.pump()),
    );
    every(this.opts.healthIntervalMs, () =>
      this.lanes.enqueue('health', 'health', healthBody(this.opts.dataDir)),
    );
    every(this.opts.telemetryIntervalMs, () =>
      this.lanes.enqueue('telemetry', 'telemetry', telemetryBody(this.counters(), this.lanes.dropped)),
    );
    if (this.opts.series?.enabled !== false)
      every(this.opts.series?.intervalMs ?? 10_000, () =>
        this.series.tick().then((n) => n > 0 && this.pump()),
      );
    every(TRIM_EVERY_MS, () => this.lanes.trimAll());
    if (this.lanStock) every(1000, () => this.lanStock?.tick());
    // a wall-clock correction since sealing is written into the seals (core/token-vault.ts)
    every(REANCHOR_EVERY_MS, () => reanchorSealedTokens(this.store, this.vault), true);
  }

  async stop(): Promise<void> {
    for (const l of this.loops) l.stop();
    this.loops = [];
    // a paced ack still applying finishes before the store closes (its receipts still go out)
    this.stopping = true;
    await this.authorizeRelay.close();
    await this.lanStock?.close();
    await this.ackChain;
    const bye: KitStatusT = { ...this.kitStatus(), online: false };
    await this.hubLink.close({ topic: topics.status(this.opts.kitId), payload: JSON.stringify(bye) });
    // and any that came in while the link closed
    await this.ackChain;
    this.writeStatus();
  }

  /**
   * kitd's "flush" (critical power, safe shutdown): don't sit out a reconnect backoff, try the link now,
   * and push what the window takes.
   */
  flushNow(): void {
    if (this.hubLink.closed) return;
    this.hubLink.reconnectNow();
    this.pump();
  }

  /** Fill the window of unacked messages from the outbox, highest lane first, oldest first. */
  pump(): void {
    this.batches.pump();
  }

  status(): SyncRunStatusT {
    const { backlog, oldestAgeMs } = this.lanes.stats();
    const cat = readCatalogStamp(this.store);
    return {
      link: this.hubLink.state,
      hubUrl: redactUrl(this.hubLink.currentUrl),
      kitId: this.opts.kitId,
      backlog,
      oldestAgeMs,
      inflight: this.batches.inflightCount,
      lastAckAt: this.lastAckAt ? new Date(this.lastAckAt).toISOString() : null,
      ...this.counters(),
      dropped: { ...this.lanes.dropped },
      catalogVersion: cat?.version ?? null,
      catalogEventId: cat?.eventId ?? null,
      catalogSubscribed: this.catalogs.subscribed ?? null,
      catalogRefusals: this.catalogs.refusals.slice(-5),
      catalogRefused: { ...this.catalogs.refusedCount },
      sharedStock: sharedStockView(this.store, this.catalogs.activeEventId()) ?? null,
      allocationRefusals: this.allocations.refusals.slice(-5),
      allocationRefused: { ...this.allocations.refusedCount },
      ...(this.lanStock ? { lanStock: this.lanStock.status() } : {}),
      series: this.series.status(),
      uplink: this.uplink.status(),
    };
  }

  private counters() {
    return {
      published: this.batches.published,
      drained: this.drained,
      resent: this.batches.resent,
      reconnects: this.hubLink.reconnects,
    };
  }

  private onLinkUp(): void {
    this.hubLink.subscribe([
      topics.acks(this.opts.kitId),
      topics.authorizations(this.opts.kitId),
      this.catalogs.topicOnConnect(),
      topics.kitAllocations(this.opts.kitId),
      ...(this.opts.series?.enabled === false ? [] : [topics.sealKey]),
    ]);
    this.publishKitStatus();
    this.pump();
  }

  private onMessage(topic: string, payload: Buffer, correlationData?: Buffer): void {
    if (topic === topics.authorizations(this.opts.kitId)) {
      this.authorizeRelay.onAnswer(payload, correlationData);
    } else if (topic === topics.acks(this.opts.kitId)) {
      this.ackChain = this.ackChain.then(() => this.ackInTurn(payload));
    } else if (topic === topics.sealKey) {
      this.series
        .receiveKey(payload)
        .catch((err) => log.error({ err: (err as Error).message }, 'seal key handling failed'));
    } else if (topic.startsWith(topics.kitAllocations(this.opts.kitId).slice(0, -1))) {
      this.allocations
        .receive(topic, payload)
        .then((queued) => queued && this.pump())
        .catch((err) => log.error({ err: (err as Error).message }, 'allocation handling failed'));
    } else if (topic.endsWith('/catalog')) {
      this.catalogs
        .receive(topic, payload)
        .catch((err) => log.error({ err: (err as Error).message }, 'catalog handling failed'));
    }
  }

  /** One ack message after the other; while checkout is busy, the pause between two ack transactions
   *  holds across messages too. */
  private async ackInTurn(payload: Buffer): Promise<void> {
    try {
      await this.onAck(payload);
      if (!this.stopping && this.opts.busy && this.load?.busy()) await pause(this.opts.busy.yieldMs);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'ack not applied');
    }
  }

  private async onAck(payload: Buffer): Promise<void> {
    const pacing = this.load && this.opts.busy ? { load: this.load, limits: this.opts.busy } : undefined;
    const applied = await applyAckMessage(this.store, this.opts.kitId, payload, pacing);
    if (!applied) return;
    const { acked, confirmed } = applied;
    this.ackTxns += applied.txns;
    // after the LMDB commit: the hub stops resending these verdicts (a lost receipt means one more resend)
    for (let i = 0; i < confirmed.length; i += RECEIPT_MAX) {
      const receipt: ReceiptT = { v: 1, kitId: this.opts.kitId, orders: confirmed.slice(i, i + RECEIPT_MAX) };
      this.hubLink.publish(topics.receipts(this.opts.kitId), JSON.stringify(receipt));
    }
    this.batches.settle(acked);
    this.drained += acked.length;
    this.lastAckAt = Date.now();
    this.pump();
  }

  private tick(): void {
    this.catalogs.follow(this.hubLink);
    this.writeStatus();
    if (this.hubLink.connected && ++this.statusTick % HUB_STATUS_EVERY === 0) this.publishKitStatus();
  }

  private kitStatus(): KitStatusT {
    return kitStatusPayload({
      kitId: this.opts.kitId,
      eventId: this.catalogs.activeEventId(),
      lanes: this.lanes.stats(),
      lastAckAt: this.lastAckAt,
      catalogVersion: readCatalogStamp(this.store)?.version ?? null,
      kitd: readRunStatus(this.opts.dataDir, 'kitd'),
      clock: this.clockTrust(),
      identityKey: this.identity?.publicKey,
    });
  }

  private clockSources: Pick<ClockSources, 'wall' | 'mono' | 'bootId'> | undefined;
  /** what checkout recorded of the clock's trust this boot (for the hub's clock_untrusted alert) */
  private clockTrust() {
    this.clockSources ??= this.opts.clock ?? systemClockSources();
    const src = this.clockSources;
    return clockTrustNow(this.store, {
      wall: src.wall(),
      mono: src.mono(),
      bootId: src.bootId(),
      jumpToleranceMs:
        this.opts.clock?.jumpToleranceMs ?? CheckoutConfig.properties.POPKIT_CLOCK_JUMP_TOLERANCE_MS.default,
    });
  }

  private publishKitStatus(): void {
    this.hubLink.publish(topics.status(this.opts.kitId), JSON.stringify(this.kitStatus()), true);
  }

  private writeStatus(): void {
    writeSyncStatus(this.opts.dataDir, this.status());
  }
}
