// GET /healthz (database and broker) and GET /metrics (Prometheus) of a hub worker. /healthz is public
// and minimal (`{ok}` and the status code: load balancers and kits' network probes); what is down and
// why (a database error's text) only with the admin token.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { ALERT_KINDS } from '../../../core/contracts/alerts.ts';
import type { HubAlerts } from '../alerts.ts';
import type { HubAuthorize } from '../authorize.ts';
import type { HubIngest } from '../ingest.ts';
import type { Ledger } from '../ledger.ts';
import type { ReplicaReads } from '../read-replica.ts';
import { adminGuard } from './admin.ts';

export interface HealthRoutesOptions {
  ledger: Pick<Ledger, 'ping' | 'counters' | 'heldTokenKey'>;
  ingest: Pick<HubIngest, 'connected' | 'stats'>;
  /** the online card checks (docs/security.md#online-authorization) */
  authorize?: Pick<HubAuthorize, 'stats'> | undefined;
  /** the alert evaluator's last facts per kit (deploy/hub/alerts.rules.yml reads these gauges) */
  alerts?: Pick<HubAlerts, 'lastFacts' | 'openByKind' | 'stats'> | undefined;
  adminToken: string;
  /** the read replica (POPKIT_HUB_READ_DATABASE_URL); unset: the primary answers every read */
  readReplica?: Pick<ReplicaReads, 'status' | 'stats'> | undefined;
}

/**
 * The gauges of the fleet's alert conditions, per kit (label kit_id), from the alert evaluator's last
 * pass on this worker (every worker evaluates the facts; rules take the max over workers). A gauge is
 * absent for a kit that does not report the value. Names are the contract of deploy/hub/alerts.rules.yml.
 */
export const KIT_ALERT_GAUGES = {
  popkit_hub_kit_live: 'kit_silent: 1 while the kit last said its event is live',
  popkit_hub_kit_seen_age_seconds: 'kit_silent: seconds since the hub last heard from the kit',
  popkit_hub_kit_battery_percent: "battery_critical: the kit's main battery charge (a fresh reading only)",
  popkit_hub_kit_power_critical: "battery_critical: 1 while kitd's power policy is at critical",
  popkit_hub_kit_orders_backlog_age_seconds:
    "backlog_age: the kit's oldest unsynced order's age (as reported, plus the time since it was heard)",
  popkit_hub_kit_orders_declined_window: 'decline_spike: orders declined in the trailing spike window',
  popkit_hub_kit_orders_rejected_window:
    'reject_spike: orders the hub rejected (dead letters) in the trailing spike window',
  popkit_hub_kit_clock_trusted: "clock_untrusted: 1 while the kit's clock is trusted, 0 while not",
  popkit_hub_kit_drop_opening_seconds:
    "clock_untrusted: seconds between now and the nearest sale window opening of the kit's event",
} as const;

function alertMetrics(registry: Registry, alerts: NonNullable<HealthRoutesOptions['alerts']>): void {
  type Facts = (typeof alerts.lastFacts)[number];
  const values: Record<keyof typeof KIT_ALERT_GAUGES, (f: Facts) => number | undefined> = {
    popkit_hub_kit_live: (f) => (f.live ? 1 : 0),
    popkit_hub_kit_seen_age_seconds: (f) => Math.round(f.seenAgeS),
    popkit_hub_kit_battery_percent: (f) => f.socPct,
    popkit_hub_kit_power_critical: (f) => (f.powerLevel === 'critical' ? 1 : 0),
    popkit_hub_kit_orders_backlog_age_seconds: (f) => Math.round(f.backlogAgeS),
    popkit_hub_kit_orders_declined_window: (f) => f.declined,
    popkit_hub_kit_orders_rejected_window: (f) => f.rejected,
    popkit_hub_kit_clock_trusted: (f) => (f.clockTrusted === undefined ? undefined : f.clockTrusted ? 1 : 0),
    popkit_hub_kit_drop_opening_seconds: (f) =>
      f.dropOpeningS === undefined ? undefined : Math.round(f.dropOpeningS),
  };
  for (const [name, help] of Object.entries(KIT_ALERT_GAUGES) as [keyof typeof KIT_ALERT_GAUGES, string][]) {
    new Gauge({
      name,
      help,
      labelNames: ['kit_id'],
      registers: [registry],
      collect() {
        this.reset();
        for (const f of alerts.lastFacts) {
          const v = values[name](f);
          if (v !== undefined) this.set({ kit_id: f.kitId }, v);
        }
      },
    });
  }
  new Gauge({
    name: 'popkit_hub_alerts_open',
    help: 'unresolved alerts by kind (as of the last evaluation this worker ran)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const kind of ALERT_KINDS) this.set({ kind }, alerts.openByKind[kind] ?? 0);
    },
  });
  new Counter({
    name: 'popkit_hub_alert_deliveries_total',
    help: 'alert delivery attempts by channel (mqtt, webhook) and result (delivered, failed, gave_up)',
    labelNames: ['channel', 'result'],
    registers: [registry],
    collect() {
      this.reset();
      for (const channel of ['mqtt', 'webhook'] as const) {
        this.inc({ channel, result: 'delivered' }, alerts.stats.delivered[channel]);
        this.inc({ channel, result: 'failed' }, alerts.stats.failed[channel]);
        this.inc({ channel, result: 'gave_up' }, alerts.stats.gaveUp[channel]);
      }
    },
  });
}

function hubMetrics({ ledger, ingest, authorize, alerts, readReplica }: HealthRoutesOptions): Registry {
  const registry = new Registry();
  if (alerts) alertMetrics(registry, alerts);
  collectDefaultMetrics({ register: registry, prefix: 'popkit_hub_' });
  new Gauge({
    name: 'popkit_hub_broker_connected',
    help: '1 while the worker is connected to the broker',
    registers: [registry],
    collect() {
      this.set(ingest.connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'popkit_hub_held_token_key_ok',
    help: '0 while the held-token key is missing, empty or torn and held tokens depend on it (card work waits)',
    registers: [registry],
    collect() {
      this.set(ledger.heldTokenKey.state === 'ok' ? 1 : 0);
    },
  });
  new Counter({
    name: 'popkit_hub_entries_total',
    help: 'kit entries committed (each delivery counts)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ingest.stats.entries);
    },
  });
  new Counter({
    name: 'popkit_hub_orders_total',
    help: 'orders by outcome at the ledger: new, or a duplicate delivery that changed nothing',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'new' }, ledger.counters.ordersNew);
      this.inc({ result: 'duplicate' }, ledger.counters.ordersDuplicate);
    },
  });
  new Counter({
    name: 'popkit_hub_dead_letters_total',
    help: 'entries the hub could not store, kept in its dead letters and acked rejected',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ledger.counters.deadLetters);
    },
  });
  new Counter({
    name: 'popkit_hub_order_conflicts_total',
    help: "orders resent with other content than the ledger's (the ledger's row stands; the copy is kept)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ledger.counters.orderConflicts);
    },
  });
  new Counter({
    name: 'popkit_hub_series_batches_total',
    help: 'sealed telemetry batches: opened and stored, or dead-lettered by code (docs/contracts.md#sealed-telemetry)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'opened' }, ingest.stats.seriesOpened);
      for (const [code, n] of Object.entries(ingest.stats.seriesRefused)) this.inc({ result: code }, n);
    },
  });
  new Counter({
    name: 'popkit_hub_refused_total',
    help: 'kit messages refused, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(ingest.stats.refused)) this.inc({ reason }, n);
    },
  });
  if (readReplica) replicaMetrics(registry, readReplica);
  if (authorize) {
    new Counter({
      name: 'popkit_hub_authorizations_total',
      help: "kits' online card checks answered, by verdict (unavailable: gateway down or over the kit's check quota)",
      labelNames: ['verdict'],
      registers: [registry],
      collect() {
        this.reset();
        for (const verdict of ['approved', 'declined', 'unavailable'] as const)
          this.inc({ verdict }, authorize.stats[verdict]);
      },
    });
    new Counter({
      name: 'popkit_hub_authorize_refused_total',
      help: 'online card checks refused unanswered, by reason (malformed, kit_mismatch, response_topic, reply_form, expired, replay, …)',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(authorize.stats.refused)) this.inc({ reason }, n);
      },
    });
  }
  return registry;
}

/** The read replica's gauges and where this worker's reads went (docs/scaling.md#a-read-replica). */
function replicaMetrics(registry: Registry, replica: NonNullable<HealthRoutesOptions['readReplica']>): void {
  new Gauge({
    name: 'popkit_hub_read_replica_up',
    help: '1 while the read replica answers (it may still be lagging), 0 while it is down',
    registers: [registry],
    collect() {
      this.set(replica.status().state === 'down' ? 0 : 1);
    },
  });
  new Gauge({
    name: 'popkit_hub_read_replica_lag_seconds',
    help: "how far the read replica's data is behind the primary, to a second's sample (absent while down)",
    registers: [registry],
    collect() {
      this.reset();
      const { lagS } = replica.status();
      if (lagS !== null) this.set(lagS);
    },
  });
  new Gauge({
    name: 'popkit_hub_read_replica_behind_bytes',
    help: 'WAL the primary wrote that the read replica has not replayed (absent while down)',
    registers: [registry],
    collect() {
      this.reset();
      const { behindBytes } = replica.status();
      if (behindBytes !== null) this.set(behindBytes);
    },
  });
  new Counter({
    name: 'popkit_hub_reads_total',
    help: 'read-only queries by who answered: the replica, or the primary while the replica was down or lagging, or after it failed one (a replay conflict)',
    labelNames: ['served_by'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ served_by: 'replica' }, replica.stats.replica);
      this.inc({ served_by: 'primary_replica_down' }, replica.stats.primaryDown);
      this.inc({ served_by: 'primary_replica_lagging' }, replica.stats.primaryLagging);
      this.inc({ served_by: 'primary_replica_failed' }, replica.stats.primaryRetried);
    },
  });
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, opts) => {
  const registry = hubMetrics(opts);

  const isAdmin = adminGuard(opts.adminToken);
  app.get('/healthz', async (req, reply) => {
    // a wrong token is refused rather than answered as if none was sent
    const details = req.headers.authorization !== undefined;
    if (details) await isAdmin(req);
    let db = 'ok';
    try {
      await opts.ledger.ping();
    } catch (err) {
      db = `down: ${(err as Error).message}`;
    }
    const broker = opts.ingest.connected ? 'ok' : 'down';
    const ok = db === 'ok' && broker === 'ok';
    // a lost held-token key stops only card work: the hub still takes orders, so it stays in service
    const key = opts.ledger.heldTokenKey;
    const heldTokenKey =
      key.state === 'ok'
        ? 'ok'
        : { code: key.code, state: key.state, file: key.file, heldTokens: key.heldTokens };
    // a replica down or lagging costs the primary its reads, not the hub its service: 200 still
    // (only with a replica configured: without one the primary answers every read)
    const readReplica = opts.readReplica?.status();
    reply.status(ok ? 200 : 503);
    const whole = ok && key.state === 'ok' && (!readReplica || readReplica.state === 'ok');
    return details
      ? {
          ok,
          status: whole ? 'ok' : 'degraded',
          db,
          broker,
          heldTokenKey,
          ...(readReplica ? { readReplica } : {}),
        }
      : { ok };
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
};
