// The hub's alerts (docs/alerts.md): every POPKIT_HUB_ALERT_INTERVAL_S each worker reads the fleet's
// facts (kits' retained status and health, declined and rejected orders, the drops of their events) for
// /metrics, and the one worker that wins a PostgreSQL advisory lock reconciles them with the alerts
// table: a condition without an unresolved alert raises one, an unresolved alert whose condition is
// gone is resolved. Every change is queued for delivery (MQTT topic, webhook) in the same transaction
// and sent after it, retried with backoff until delivered or out of attempts; the queue is in the
// database, so a restart or another worker carries on.
import { backoffDelay } from '../../core/backoff.ts';
import {
  ALERT_WEBHOOK_HEADERS,
  type AlertChange,
  type AlertKind,
  type AlertMessageT,
  type AlertsQueryT,
  type AlertT,
  alertSignature,
} from '../../core/contracts/alerts.ts';
import { ID_LEVEL } from '../../core/contracts/common.ts';
import type { KitStatusT } from '../../core/contracts/hub-wire.ts';
import { KitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import { type PollLoop, pollLoop } from '../../core/poll-loop.ts';
import type { SqlDb } from './db.ts';

const log = moduleLogger('hub-alerts');

/** the advisory lock of the one evaluating worker (migrations hold 727274) */
const EVALUATOR_LOCK = 727275;
const EVENT_ID = new RegExp(ID_LEVEL);

export interface AlertThresholds {
  silentS: number;
  batteryPct: number;
  backlogAgeS: number;
  spikeWindowS: number;
  declines: number;
  rejects: number;
  dropWindowS: number;
}

export interface AlertWebhook {
  url: string;
  secret: string;
  attempts: number;
  backoffMs: number;
  timeoutMs: number;
}

export interface HubAlertsOptions {
  intervalMs: number;
  thresholds: AlertThresholds;
  /** publish one alert message on the alerts topic (QoS 1, resolves on PUBACK); unset: no MQTT */
  publish?: (payload: string) => Promise<void>;
  webhook?: AlertWebhook;
  /** attempts of an MQTT delivery (the broker away) */
  mqttAttempts?: number;
}

/** One kit as the evaluator sees it (also what /metrics shows per kit). */
export interface KitFacts {
  kitId: string;
  eventId: string | null;
  online: boolean;
  live: boolean;
  /** seconds since the hub last heard from the kit (status or batch) */
  seenAgeS: number;
  /** the main battery's charge, when a fresh reading says it */
  socPct: number | undefined;
  powerLevel: string | null;
  /** the oldest unsynced order's age: as last reported plus the time since the kit was heard (0: none) */
  backlogAgeS: number;
  declined: number;
  rejected: number;
  /** undefined: the kit does not say (an older kit) */
  clockTrusted: boolean | undefined;
  clockReason: string | undefined;
  /** seconds between now and the nearest sale window opening of its event (undefined: none) */
  dropOpeningS: number | undefined;
  dropOpensAt: string | undefined;
}

interface Condition {
  kind: AlertKind;
  kitId: string;
  eventId: string | null;
  key: string;
  detail: Record<string, unknown>;
}

interface AlertRow {
  id: string | number;
  kind: AlertKind;
  kit_id: string;
  event_id: string | null;
  state: AlertT['state'];
  raised_at: Date | string;
  acked_at: Date | string | null;
  acked_by: string | null;
  resolved_at: Date | string | null;
  detail: Record<string, unknown>;
}

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

function toAlert(r: AlertRow): AlertT {
  return {
    id: String(r.id),
    kind: r.kind,
    kitId: r.kit_id,
    eventId: r.event_id,
    state: r.state,
    raisedAt: iso(r.raised_at)!,
    ackedAt: iso(r.acked_at),
    ackedBy: r.acked_by,
    resolvedAt: iso(r.resolved_at),
    detail: r.detail,
  };
}

const ALERT_COLS = 'id, kind, kit_id, event_id, state, raised_at, acked_at, acked_by, resolved_at, detail';

/** The conditions that hold for these kits, one per kind and kit (and its event). */
export function conditionsOf(facts: KitFacts[], t: AlertThresholds): Condition[] {
  const out: Condition[] = [];
  const add = (kind: AlertKind, f: KitFacts, detail: Record<string, unknown>) =>
    out.push({
      kind,
      kitId: f.kitId,
      eventId: f.eventId,
      key: `${kind}:${f.kitId}:${f.eventId ?? ''}`,
      detail,
    });
  for (const f of facts) {
    if (f.live && f.seenAgeS >= t.silentS)
      add('kit_silent', f, { silentS: Math.round(f.seenAgeS), thresholdS: t.silentS, online: f.online });
    if (f.powerLevel === 'critical' || (f.socPct !== undefined && f.socPct <= t.batteryPct))
      add('battery_critical', f, {
        ...(f.socPct !== undefined ? { socPct: f.socPct } : {}),
        powerLevel: f.powerLevel,
        thresholdPct: t.batteryPct,
      });
    if (f.backlogAgeS >= t.backlogAgeS)
      add('backlog_age', f, { oldestAgeS: Math.round(f.backlogAgeS), thresholdS: t.backlogAgeS });
    if (f.declined >= t.declines)
      add('decline_spike', f, { declined: f.declined, windowS: t.spikeWindowS, threshold: t.declines });
    if (f.rejected >= t.rejects)
      add('reject_spike', f, { rejected: f.rejected, windowS: t.spikeWindowS, threshold: t.rejects });
    if (f.clockTrusted === false && f.dropOpeningS !== undefined && f.dropOpeningS <= t.dropWindowS)
      add('clock_untrusted', f, {
        reason: f.clockReason ?? null,
        opensAt: f.dropOpensAt,
        windowS: t.dropWindowS,
      });
  }
  return out;
}

/** Every sale window opening (ms) of a signed catalog as the hub stored it; [] when unreadable. */
export function saleOpenings(signed: unknown): number[] {
  try {
    const payload = JSON.parse((signed as { payload: string }).payload) as {
      catalog?: {
        items?: { saleWindow?: { startsAt?: unknown } }[];
        bundles?: { saleWindow?: { startsAt?: unknown } }[];
      };
    };
    const out: number[] = [];
    for (const x of [...(payload.catalog?.items ?? []), ...(payload.catalog?.bundles ?? [])]) {
      const s = x?.saleWindow?.startsAt;
      const t = typeof s === 'string' ? Date.parse(s) : Number.NaN;
      if (Number.isFinite(t)) out.push(t);
    }
    return out;
  } catch {
    return [];
  }
}

export interface DeliveryStats {
  delivered: Record<'mqtt' | 'webhook', number>;
  failed: Record<'mqtt' | 'webhook', number>;
  gaveUp: Record<'mqtt' | 'webhook', number>;
}

export class HubAlerts {
  private evalLoop: PollLoop | undefined;
  private deliverLoop: PollLoop | undefined;
  private delivering: Promise<void> | undefined;
  private stopped = false;
  /** the facts of the last evaluation (every worker), for /metrics */
  lastFacts: KitFacts[] = [];
  /** unresolved alerts by kind at the last evaluation */
  openByKind: Partial<Record<AlertKind, number>> = {};
  readonly stats: DeliveryStats = {
    delivered: { mqtt: 0, webhook: 0 },
    failed: { mqtt: 0, webhook: 0 },
    gaveUp: { mqtt: 0, webhook: 0 },
  };
  private readonly openings = new Map<string, { version: number; at: number[] }>();

  constructor(
    private readonly db: SqlDb,
    private readonly opts: HubAlertsOptions,
  ) {}

  get thresholds(): AlertThresholds {
    return this.opts.thresholds;
  }

  start(): void {
    this.evalLoop = pollLoop(this.opts.intervalMs, () => this.evaluate(), {
      unref: true,
      immediate: true,
      onError: (err) => log.warn({ err: (err as Error).message }, 'alert evaluation failed'),
    });
    const tick = Math.max(10, Math.min(1000, this.opts.webhook?.backoffMs ?? 1000));
    this.deliverLoop = pollLoop(tick, () => this.deliverDue(), {
      unref: true,
      onError: (err) => log.warn({ err: (err as Error).message }, 'alert delivery failed'),
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.evalLoop?.stop();
    this.deliverLoop?.stop();
    await this.delivering?.catch(() => undefined);
  }

  /** The fleet's facts now (read-only; every worker). */
  async facts(): Promise<KitFacts[]> {
    const t = this.opts.thresholds;
    const res = await this.db.query<{
      kit_id: string;
      online: boolean;
      status: KitStatusT | null;
      seen_age_s: number | string;
      power_level: string | null;
      declined: number | string;
      rejected: number | string;
    }>(
      `SELECT k.kit_id, k.online, k.status,
         extract(epoch FROM now() - k.last_seen)::float8 AS seen_age_s,
         k.health->'services'->'kitd'->'powerPolicy'->>'level' AS power_level,
         (SELECT count(*) FROM orders o WHERE o.kit_id = k.kit_id AND o.state = 'declined'
            AND COALESCE(o.settled_at, o.received_at) > now() - make_interval(secs => $1)) AS declined,
         (SELECT count(*) FROM dead_letters d WHERE d.kit_id = k.kit_id AND d.lane = 'orders'
            AND d.received_at > now() - make_interval(secs => $1)) AS rejected
       FROM kits k ORDER BY k.kit_id`,
      [t.spikeWindowS],
    );
    const events = [
      ...new Set(res.rows.map((r) => r.status?.eventId).filter((e): e is string => typeof e === 'string')),
    ];
    const openings = await this.dropOpenings(events);
    const now = Date.now();
    return res.rows.map((r) => {
      const s = r.status;
      const seenAgeS = Math.max(0, Number(r.seen_age_s));
      const b = s?.battery;
      const socPct = b && b.stale !== true && typeof b.socPct === 'number' ? b.socPct : undefined;
      const backlog = s?.backlog?.['orders'] ?? 0;
      const reportedAgeMs = s?.oldestAgeMs?.['orders'] ?? 0;
      let dropOpeningS: number | undefined;
      let dropOpensAt: string | undefined;
      for (const at of (s?.eventId && openings.get(s.eventId)) || []) {
        const d = Math.abs(at - now) / 1000;
        if (dropOpeningS === undefined || d < dropOpeningS) {
          dropOpeningS = d;
          dropOpensAt = new Date(at).toISOString();
        }
      }
      return {
        kitId: r.kit_id,
        // a topic level or nothing: an alert's event id is one (core/contracts/alerts.ts)
        eventId: typeof s?.eventId === 'string' && EVENT_ID.test(s.eventId) ? s.eventId : null,
        online: r.online,
        live: s?.state === 'live',
        seenAgeS,
        socPct,
        powerLevel: r.power_level,
        backlogAgeS: backlog > 0 ? reportedAgeMs / 1000 + seenAgeS : 0,
        declined: Number(r.declined),
        rejected: Number(r.rejected),
        clockTrusted: s?.clock?.trusted,
        clockReason: s?.clock?.reason,
        dropOpeningS,
        dropOpensAt,
      };
    });
  }

  /** The sale window openings of each event's latest catalog (cached per version). */
  private async dropOpenings(events: string[]): Promise<Map<string, number[]>> {
    const out = new Map<string, number[]>();
    if (events.length === 0) return out;
    const versions = await this.db.query<{ event_id: string; v: number }>(
      'SELECT event_id, max(version) AS v FROM catalogs WHERE event_id = ANY($1) GROUP BY event_id',
      [events],
    );
    for (const { event_id, v } of versions.rows) {
      const cached = this.openings.get(event_id);
      if (cached?.version === Number(v)) {
        out.set(event_id, cached.at);
        continue;
      }
      const row = await this.db.query<{ signed: unknown }>(
        'SELECT signed FROM catalogs WHERE event_id = $1 AND version = $2',
        [event_id, v],
      );
      const at = saleOpenings(row.rows[0]?.signed);
      this.openings.set(event_id, { version: Number(v), at });
      out.set(event_id, at);
    }
    return out;
  }

  /**
   * One evaluation: the facts (kept for /metrics), then, on the worker holding the evaluator's lock,
   * raise and resolve. Returns the changes it made (none on a worker that did not get the lock).
   */
  async evaluate(): Promise<{ evaluated: boolean; raised: AlertT[]; resolved: AlertT[] }> {
    const facts = await this.facts();
    this.lastFacts = facts;
    const conds = conditionsOf(facts, this.opts.thresholds);
    const out = await this.db.transaction(async (tx) => {
      const lock = await tx.query<{ got: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS got', [
        EVALUATOR_LOCK,
      ]);
      if (!lock.rows[0]?.got) return { evaluated: false, raised: [], resolved: [] };
      const open = await tx.query<{ id: string | number; dedupe_key: string }>(
        'SELECT id, dedupe_key FROM alerts WHERE resolved_at IS NULL FOR UPDATE',
      );
      const openKeys = new Map(open.rows.map((r) => [r.dedupe_key, String(r.id)]));
      const want = new Set(conds.map((c) => c.key));
      const raised: AlertT[] = [];
      const resolved: AlertT[] = [];
      for (const c of conds) {
        if (openKeys.has(c.key)) continue;
        const res = await tx.query<AlertRow>(
          `INSERT INTO alerts (kind, kit_id, event_id, dedupe_key, detail) VALUES ($1, $2, $3, $4, $5::jsonb)
           RETURNING ${ALERT_COLS}`,
          [c.kind, c.kitId, c.eventId, c.key, JSON.stringify(c.detail)],
        );
        const a = toAlert(res.rows[0]!);
        raised.push(a);
        await this.queue(tx, a, 'raised');
      }
      for (const [key, id] of openKeys) {
        if (want.has(key)) continue;
        const res = await tx.query<AlertRow>(
          `UPDATE alerts SET state = 'resolved', resolved_at = now() WHERE id = $1 RETURNING ${ALERT_COLS}`,
          [id],
        );
        const a = toAlert(res.rows[0]!);
        resolved.push(a);
        await this.queue(tx, a, 'resolved');
      }
      const byKind = await tx.query<{ kind: AlertKind; n: number | string }>(
        'SELECT kind, count(*) AS n FROM alerts WHERE resolved_at IS NULL GROUP BY kind',
      );
      this.openByKind = Object.fromEntries(byKind.rows.map((r) => [r.kind, Number(r.n)]));
      return { evaluated: true, raised, resolved };
    });
    for (const a of out.raised)
      log.warn({ alert: a.id, kind: a.kind, kitId: a.kitId, detail: a.detail }, 'alert raised');
    for (const a of out.resolved) log.info({ alert: a.id, kind: a.kind, kitId: a.kitId }, 'alert resolved');
    if (out.raised.length + out.resolved.length > 0) this.kick();
    return out;
  }

  private async queue(tx: Pick<SqlDb, 'query'>, alert: AlertT, change: AlertChange): Promise<void> {
    const msg: AlertMessageT = { v: 1, change, at: new Date().toISOString(), alert };
    const channels = [...(this.opts.publish ? ['mqtt'] : []), ...(this.opts.webhook ? ['webhook'] : [])];
    for (const channel of channels)
      await tx.query(
        'INSERT INTO alert_deliveries (alert_id, channel, change, body) VALUES ($1, $2, $3, $4::jsonb)',
        [alert.id, channel, change, JSON.stringify(msg)],
      );
  }

  /** GET /v1/alerts: newest first. */
  async list(q: AlertsQueryT): Promise<AlertT[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const eq = (col: string, v: unknown) => {
      params.push(v);
      where.push(`${col} = $${params.length}`);
    };
    if (q.state) eq('state', q.state);
    if (q.kitId) eq('kit_id', q.kitId);
    if (q.eventId) eq('event_id', q.eventId);
    if (q.kind) eq('kind', q.kind);
    params.push(q.limit);
    const res = await this.db.query<AlertRow>(
      `SELECT ${ALERT_COLS} FROM alerts ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY id DESC LIMIT $${params.length}`,
      params,
    );
    return res.rows.map(toAlert);
  }

  /** A person acknowledges an alert, once: NOT_FOUND, or CONFLICT when it already was. */
  async ack(id: string, by: string): Promise<AlertT> {
    const alert = await this.db.transaction(async (tx) => {
      const res = await tx.query<AlertRow>(
        `UPDATE alerts SET acked_at = now(), acked_by = $2,
           state = CASE WHEN state = 'open' THEN 'acked' ELSE state END
         WHERE id = $1 AND acked_at IS NULL RETURNING ${ALERT_COLS}`,
        [id, by],
      );
      const row = res.rows[0];
      if (!row) {
        const had = await tx.query<AlertRow>(`SELECT ${ALERT_COLS} FROM alerts WHERE id = $1`, [id]);
        const prev = had.rows[0];
        if (!prev) throw new KitError('NOT_FOUND', `no alert ${id}`);
        throw new KitError('CONFLICT', `alert ${id} was already acknowledged by ${prev.acked_by}`, {
          ackedBy: prev.acked_by,
          ackedAt: iso(prev.acked_at),
        });
      }
      const a = toAlert(row);
      await this.queue(tx, a, 'acked');
      return a;
    });
    log.info({ alert: alert.id, kind: alert.kind, kitId: alert.kitId }, 'alert acknowledged');
    this.kick();
    return alert;
  }

  /** deliver now rather than at the next tick */
  private kick(): void {
    if (!this.stopped) void this.deliverDue().catch(() => undefined);
  }

  /** Send the deliveries that are due (any worker: each row is leased before it is tried). */
  deliverDue(): Promise<void> {
    this.delivering ??= (async () => {
      try {
        for (;;) {
          if (this.stopped) return;
          const n = await this.deliverBatch();
          if (n === 0) return;
        }
      } finally {
        this.delivering = undefined;
      }
    })();
    return this.delivering;
  }

  private async deliverBatch(): Promise<number> {
    const leaseMs = (this.opts.webhook?.timeoutMs ?? 10_000) + 5_000;
    const res = await this.db.query<{
      id: string | number;
      channel: 'mqtt' | 'webhook';
      change: AlertChange;
      body: AlertMessageT;
      attempts: number;
    }>(
      `UPDATE alert_deliveries SET next_at = now() + make_interval(secs => $1)
       WHERE id IN (SELECT id FROM alert_deliveries
                    WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_at <= now()
                    ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED)
       RETURNING id, channel, change, body, attempts`,
      [leaseMs / 1000],
    );
    const rows = [...res.rows].sort((a, b) => Number(a.id) - Number(b.id));
    for (const d of rows) {
      let error: string | undefined;
      try {
        if (d.channel === 'mqtt') {
          if (!this.opts.publish) throw new Error('no MQTT publisher');
          await this.opts.publish(JSON.stringify(d.body));
        } else await this.post(String(d.id), d.change, JSON.stringify(d.body));
      } catch (err) {
        error = (err as Error).message.slice(0, 500);
      }
      const attempts = d.attempts + 1;
      if (error === undefined) {
        this.stats.delivered[d.channel]++;
        await this.db.query(
          'UPDATE alert_deliveries SET delivered_at = now(), attempts = $2, last_error = NULL WHERE id = $1',
          [d.id, attempts],
        );
        continue;
      }
      this.stats.failed[d.channel]++;
      const max = d.channel === 'webhook' ? this.opts.webhook!.attempts : (this.opts.mqttAttempts ?? 20);
      const giveUp = attempts >= max;
      if (giveUp) this.stats.gaveUp[d.channel]++;
      const backoffMs = backoffDelay(attempts - 1, {
        initialMs: this.opts.webhook?.backoffMs ?? 1000,
        maxMs: 3_600_000,
      });
      await this.db.query(
        `UPDATE alert_deliveries SET attempts = $2, last_error = $3,
           next_at = now() + make_interval(secs => $4), gave_up_at = CASE WHEN $5 THEN now() END
         WHERE id = $1`,
        [d.id, attempts, error, backoffMs / 1000, giveUp],
      );
      (giveUp ? log.error : log.warn).call(
        log,
        { delivery: String(d.id), channel: d.channel, attempts, err: error },
        giveUp ? 'alert delivery given up' : 'alert delivery failed, will retry',
      );
    }
    return rows.length;
  }

  private async post(deliveryId: string, change: AlertChange, body: string): Promise<void> {
    const wh = this.opts.webhook;
    if (!wh) throw new Error('no webhook configured');
    const ts = String(Math.floor(Date.now() / 1000));
    const res = await fetch(wh.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [ALERT_WEBHOOK_HEADERS.timestamp]: ts,
        [ALERT_WEBHOOK_HEADERS.signature]: alertSignature(wh.secret, ts, body),
        [ALERT_WEBHOOK_HEADERS.delivery]: deliveryId,
        [ALERT_WEBHOOK_HEADERS.change]: change,
      },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(wh.timeoutMs),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status < 200 || res.status > 299) throw new Error(`webhook answered ${res.status}`);
  }
}
