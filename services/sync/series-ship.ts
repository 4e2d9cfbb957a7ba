// The series shipper (#12): the kit's per-second samples and markers (written by checkout's recorder
// into LMDB), the audience aggregate (only segments of at least POPKIT_AUDIENCE_MIN_GROUP people) and
// the kit's order count for the event, sealed to the hub's X25519 key (core/telemetry-seal.ts) and
// queued on the telemetry lane: the lowest, dropped first by TTL, quota and a filling disk
// (services/sync/lanes.ts, core/priorities.ts).
//
// One SeriesBatch per minute of samples (≤ 60 seconds, ≤ 1000 markers): small, and each stands alone,
// so a dropped entry loses a minute, not the rest. Entries and the cursor (the last second queued)
// move in one write transaction; the hub stores a resent second once. Seconds ship once they are
// `settleS` old, so the recorder (which writes a few seconds per transaction) has written them.
//
// Nothing is ever sent in clear: without the hub's seal key (retained on `popkit/v1/hub/seal-key`,
// verified with POPKIT_HUB_PUBLIC_KEY) the shipper waits and says so in run/sync.json. While checkout
// sells (load.ts) a tick is skipped, up to `maxDeferMs`: reads cost checkout nothing, but the queueing
// transaction takes LMDB's writer lock. While the primary link is metered (services/sync/metered.ts)
// nothing is sealed or queued: the cursor stays where it is and the seconds ship once the link is not.
import type { KeyObject } from 'node:crypto';
import type { SeriesBatchT, SeriesMarkerT, SeriesSampleT } from '../../core/contracts/series.ts';
import { isKitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import {
  audienceAggregate,
  eventOrderCount,
  type KitStore,
  markersAfter,
  oldestSeriesSecond,
  readSealKey,
  readSeriesCursor,
  samplesAfter,
  writeSealKey,
} from '../../core/store/index.ts';
import { seal, telemetryAad, verifySealKey } from '../../core/telemetry-seal.ts';
import type { LaneKeeper } from './lanes.ts';
import type { LoadSignal } from './load.ts';

const log = moduleLogger('sync-series');

export interface SeriesShipOptions {
  kitId: string;
  enabled: boolean;
  /** the hub's ed25519 catalog key: verifies the seal key */
  hubPublicKey?: KeyObject | undefined;
  /** k of the audience aggregate */
  minGroup: number;
  /** seconds a sample waits before it ships */
  settleS: number;
  /** the audience aggregate and order count go at most this often */
  audienceEveryMs: number;
  /** while checkout is busy a tick is skipped, but never for longer than this */
  maxDeferMs: number;
}

/** Minutes per tick at most (a kit back after hours catches up over a few ticks, transactions small). */
const MAX_MINUTES_PER_TICK = 30;
const MAX_MARKERS = 1000;

type State = 'off' | 'waiting_for_key' | 'idle' | 'shipping' | 'paced' | 'held';

export class SeriesShipper {
  batches = 0;
  private lastQueuedAt: number | null = null;
  private lastShipAt = 0;
  private lastAudienceAt = Number.NEGATIVE_INFINITY;
  private lastAudienceEvent: string | undefined;
  private state: State;
  private message: string | undefined;
  readonly keyRefused: Record<string, number> = Object.create(null);
  private running = false;

  constructor(
    private readonly store: KitStore,
    private readonly lanes: LaneKeeper,
    private readonly opts: SeriesShipOptions,
    private readonly eventId: () => string,
    private readonly load?: LoadSignal,
    private readonly now: () => number = Date.now,
    /** the primary link is metered (metered.ts): nothing is sealed, the cursor stays, the range ships later */
    private readonly held: () => boolean = () => false,
  ) {
    this.state = opts.enabled ? 'waiting_for_key' : 'off';
    if (!opts.enabled) this.message = 'POPKIT_SYNC_SERIES=0: series are not sent to the hub';
  }

  /** A retained seal-key message from the hub: verified, then kept in LMDB (it survives restarts). */
  async receiveKey(payload: Buffer): Promise<void> {
    if (payload.length === 0) return;
    if (!this.opts.hubPublicKey) {
      this.refuseKey('SEAL_KEY_UNVERIFIABLE', 'no hub public key configured (POPKIT_HUB_PUBLIC_KEY)');
      return;
    }
    try {
      const k = verifySealKey(this.opts.hubPublicKey, payload);
      const stored = await writeSealKey(this.store, {
        kid: k.kid,
        publicKey: k.publicKey.toString('base64url'),
        issuedAt: k.issuedAt,
        receivedAt: new Date(this.now()).toISOString(),
      });
      if (stored) log.info({ kid: k.kid }, 'hub telemetry seal key accepted');
    } catch (err) {
      this.refuseKey(isKitError(err) ? err.code : 'SEAL_KEY_MALFORMED', (err as Error).message);
    }
  }

  private refuseKey(code: string, message: string): void {
    this.keyRefused[code] = (this.keyRefused[code] ?? 0) + 1;
    log.warn({ code, message }, 'hub seal key refused');
    if (!readSealKey(this.store)) this.message = `seal key refused (${code}): ${message}`;
  }

  /** One pass: queue what is due. Returns the entries queued. */
  async tick(): Promise<number> {
    if (!this.opts.enabled || this.running) return 0;
    this.running = true;
    try {
      return await this.ship();
    } finally {
      this.running = false;
    }
  }

  private async ship(): Promise<number> {
    const key = readSealKey(this.store);
    if (!key) {
      this.state = 'waiting_for_key';
      this.message ??=
        'waiting for the hub seal key (retained on popkit/v1/hub/seal-key): nothing is sent in clear';
      return 0;
    }
    this.message = undefined;
    if (this.held()) {
      this.state = 'held';
      this.message =
        'primary link metered: series wait for an unmetered link (POPKIT_SYNC_METERED=essential)';
      return 0;
    }
    const now = this.now();
    if (this.load?.busy() && now - this.lastShipAt < this.opts.maxDeferMs) {
      this.state = 'paced';
      return 0;
    }
    const upTo = Math.floor(now / 1000) - this.opts.settleS;
    const cursor = readSeriesCursor(this.store) ?? (oldestSeriesSecond(this.store) ?? upTo + 1) - 1;
    const eventId = this.eventId();
    const samples = samplesAfter(this.store, cursor, upTo, MAX_MINUTES_PER_TICK * 60);
    // a full read may end inside a minute: ship up to the last whole one, the rest next tick
    let end = upTo;
    if (samples.length === MAX_MINUTES_PER_TICK * 60) {
      const last = samples[samples.length - 1]!.t;
      end = Math.max(cursor + 1, Math.floor(last / 60) * 60 - 1);
    }
    const markers = markersAfter(this.store, cursor, end, MAX_MARKERS * MAX_MINUTES_PER_TICK);
    const minutes = new Map<number, { samples: SeriesSampleT[]; markers: SeriesMarkerT[] }>();
    const bucket = (t: number) => {
      const m = Math.floor(t / 60);
      let b = minutes.get(m);
      if (!b) {
        b = { samples: [], markers: [] };
        minutes.set(m, b);
      }
      return b;
    };
    for (const s of samples) if (s.t <= end) bucket(s.t).samples.push(s);
    for (const m of markers) {
      const b = bucket(m.t);
      if (b.markers.length < MAX_MARKERS) b.markers.push(m);
    }
    const batches: SeriesBatchT[] = [...minutes.keys()]
      .sort((a, b) => a - b)
      .map((m) => ({ v: 1, kitId: this.opts.kitId, eventId, ...minutes.get(m)! }));
    const audienceDue =
      now - this.lastAudienceAt >= this.opts.audienceEveryMs || eventId !== this.lastAudienceEvent;
    if (audienceDue) {
      const audience = audienceAggregate(this.store, eventId, {
        k: this.opts.minGroup,
        now: Math.floor(now / 1000),
      });
      // alone (no seconds to carry it) it goes only when there is an audience to tell of
      const anyone = audience.segments.length > 0 || audience.suppressed.length > 0;
      if (batches.length > 0 || anyone) {
        const last = batches[batches.length - 1] ?? {
          v: 1 as const,
          kitId: this.opts.kitId,
          eventId,
          samples: [],
          markers: [],
        };
        if (batches.length === 0) batches.push(last);
        last.audience = audience;
        last.kitOrders = eventOrderCount(this.store, eventId);
      }
    }
    if (batches.length === 0 && end <= cursor) {
      this.state = 'idle';
      return 0;
    }
    const target = { kid: key.kid, publicKey: Buffer.from(key.publicKey, 'base64url') };
    const makers = batches.map(
      (b) => (id: string) =>
        seal(
          target,
          Buffer.from(JSON.stringify(b), 'utf8'),
          telemetryAad({ kitId: this.opts.kitId, entryId: id }),
          { deflate: true },
        ),
    );
    const ids = await this.lanes.enqueueSealed(makers, Math.max(cursor, end));
    this.lastShipAt = now;
    if (!ids) {
      this.state = 'paced';
      this.message = 'data volume low: telemetry gives way (core/priorities.ts)';
      return 0;
    }
    if (audienceDue) {
      this.lastAudienceAt = now;
      this.lastAudienceEvent = eventId;
    }
    this.batches += ids.length;
    if (ids.length > 0) this.lastQueuedAt = now;
    this.state = ids.length > 0 ? 'shipping' : 'idle';
    return ids.length;
  }

  status() {
    const key = readSealKey(this.store);
    return {
      state: this.state,
      ...(this.message ? { message: this.message } : {}),
      kid: key?.kid ?? null,
      cursor: readSeriesCursor(this.store) ?? null,
      batches: this.batches,
      lastQueuedAt: this.lastQueuedAt === null ? null : new Date(this.lastQueuedAt).toISOString(),
      keyRefused: { ...this.keyRefused },
    };
  }
}
