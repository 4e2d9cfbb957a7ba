// The run-status board: each process writes its own status into <dataDir>/run/<service>.json
// (atomically: write, then rename) and others read it (checkout's /v1/status, kitd's watchdog, sync's
// health lane, media's load signal, `popkit status`). It needs no broker, so the status page still
// works when the local bus is down. Every file's shape is declared here; writers are checked against it
// under NODE_ENV=test, readers parse what they read and treat a file of the wrong shape as absent
// (docs/contracts.md#run-status-files).
import fs from 'node:fs';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { dataLayout } from '../data-dir.ts';
import { mkdirDurable, writeFileDurable } from '../durable-file.ts';
import { KitError } from '../errors.ts';
import { type Contract, contract, IsoTime, Nullable } from './common.ts';
import { LinksViewSchema } from './links.ts';
import { MediaStatsSchema } from './media.ts';
import { BatterySummarySchema, PowerReadingSchema } from './power.ts';

const Counts = Type.Record(Type.String(), Type.Integer({ minimum: 0 }));

// --- checkout -------------------------------------------------------------------------------------
export const CheckoutRunStatus = Type.Object({
  state: Type.Literal('up'),
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  /** accepted orders per second over the last few seconds: media yields CPU above a threshold */
  ordersPerSec: Type.Optional(Type.Number({ minimum: 0 })),
});

// --- sync -----------------------------------------------------------------------------------------
export const LINK_STATES = ['connecting', 'up', 'down'] as const;
export type LinkState = (typeof LINK_STATES)[number];

export const CatalogRefusal = Type.Object({ code: Type.String(), message: Type.String(), at: IsoTime });

/** The series shipper (services/sync/series-ship.ts): sealed telemetry to the hub (#12). */
/** `held`: the primary link is metered and POPKIT_SYNC_METERED=essential (services/sync/metered.ts) */
export const SERIES_SHIP_STATES = ['off', 'waiting_for_key', 'idle', 'shipping', 'paced', 'held'] as const;
export const SeriesShipStatus = Type.Object({
  state: Type.Union(SERIES_SHIP_STATES.map((s) => Type.Literal(s))),
  /** why it is not shipping, in words (no seal key yet, no hub public key to verify it with) */
  message: Type.Optional(Type.String()),
  /** the hub seal key in use */
  kid: Nullable(Type.String()),
  /** the last unix second queued */
  cursor: Nullable(Type.Integer()),
  /** sealed batches queued since start */
  batches: Type.Integer({ minimum: 0 }),
  lastQueuedAt: Nullable(IsoTime),
  /** seal keys refused since start, per code */
  keyRefused: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
});

/** POPKIT_SYNC_METERED: on a metered primary link send only orders and stock, or everything (#17) */
export const SYNC_METERED_MODES = ['essential', 'all'] as const;
export type SyncMeteredMode = (typeof SYNC_METERED_MODES)[number];
/**
 * How sync judged the primary link from kitd's run status (services/sync/metered.ts): `metered` and
 * `unmetered` from a fresh status with a good links view; every other basis counts as not metered.
 */
export const UPLINK_BASES = [
  'metered',
  'unmetered',
  'metered-unknown',
  'links-unavailable',
  'links-off',
  'kitd-stale',
  'kitd-absent',
] as const;
export type UplinkBasis = (typeof UPLINK_BASES)[number];
/** What sync holds back for an unmetered link: lanes by name, `series` (sealed series), `product-media`. */
export const UPLINK_HELD = ['health', 'telemetry', 'series', 'product-media'] as const;
export const SyncUplinkStatus = Type.Object({
  mode: Type.Union(SYNC_METERED_MODES.map((m) => Type.Literal(m))),
  /** the primary link is metered (kitd's fresh verdict); false when not known to be */
  metered: Type.Boolean(),
  basis: Type.Union(UPLINK_BASES.map((b) => Type.Literal(b))),
  /** the primary link's interface as kitd named it, null when not known */
  primary: Nullable(Type.String({ maxLength: 15 })),
  /**
   * the link sync's hub connection is bound to (POPKIT_SYNC_BIND_LINKS, services/sync/uplinks.ts); when
   * it is, `metered` and `basis` are that link's. null or absent: not bound (the kernel's routing)
   */
  via: Type.Optional(Nullable(Type.String({ maxLength: 15 }))),
  /** what waits for an unmetered link; empty when nothing does */
  held: Type.Array(Type.Union(UPLINK_HELD.map((h) => Type.Literal(h)))),
  /** since when it has been held; null when nothing is */
  heldSince: Nullable(IsoTime),
});
export type SyncUplinkStatusT = Static<typeof SyncUplinkStatus>;

/** A kit's share of its event's stock (docs/shared-stock.md, core/store/shared-stock.ts sharedStockView). */
export const SharedStockView = Type.Object({
  eventId: Type.String(),
  version: Type.Integer({ minimum: 1 }),
  issuedAt: Type.String(),
  /** the kit sells this event with shared stock now (its catalog says so) */
  active: Type.Boolean(),
  grants: Type.Integer({ minimum: 0 }),
  releases: Type.Integer({ minimum: 0 }),
  /** units received from and given to the event's other kits over the venue LAN, and requests unanswered */
  lan: Type.Optional(
    Type.Object({
      in: Type.Integer({ minimum: 0 }),
      out: Type.Integer({ minimum: 0 }),
      pending: Type.Integer({ minimum: 0 }),
    }),
  ),
  skus: Type.Array(
    Type.Object({
      sku: Type.String(),
      /** both from the hub's last statement */
      eventStock: Nullable(Type.Integer()),
      allocated: Nullable(Type.Integer()),
      /** granted − released */
      held: Type.Integer(),
      sellable: Type.Integer({ minimum: 0 }),
    }),
  ),
});

export const SyncRunStatus = Type.Object({
  link: Type.Union(LINK_STATES.map((l) => Type.Literal(l))),
  hubUrl: Type.String(),
  kitId: Type.String(),
  backlog: Counts,
  oldestAgeMs: Type.Record(Type.String(), Type.Number({ minimum: 0 })),
  inflight: Type.Integer({ minimum: 0 }),
  lastAckAt: Nullable(IsoTime),
  drained: Type.Integer({ minimum: 0 }),
  published: Type.Integer({ minimum: 0 }),
  resent: Type.Integer({ minimum: 0 }),
  reconnects: Type.Integer({ minimum: 0 }),
  dropped: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
  catalogVersion: Nullable(Type.Integer()),
  catalogEventId: Nullable(Type.String()),
  catalogSubscribed: Nullable(Type.String()),
  catalogRefusals: Type.Array(CatalogRefusal),
  /** refusals since sync started, per code (CATALOG_REPLAY counts replayed old catalogs) */
  catalogRefused: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }))),
  /**
   * this kit's share of its event's stock as the hub last stated it (docs/shared-stock.md): per SKU the
   * event's stock, this kit's allocation, what it holds (granted − released) and can still sell
   */
  sharedStock: Type.Optional(Nullable(SharedStockView)),
  allocationRefusals: Type.Optional(Type.Array(CatalogRefusal)),
  allocationRefused: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }))),
  /** sealed series to the hub (#12) */
  series: Type.Optional(SeriesShipStatus),
  /** the primary link as sync judges it, and what it holds back on a metered one (#17) */
  uplink: Type.Optional(SyncUplinkStatus),
  /** units moved with the event's other kits over the venue LAN (services/sync/lan-stock.ts) */
  lanStock: Type.Optional(
    Type.Object({
      listening: Nullable(Type.Integer({ minimum: 0 })),
      found: Type.Array(Type.String()),
      hubDownSince: Nullable(Type.String()),
      asked: Type.Integer({ minimum: 0 }),
      received: Type.Integer({ minimum: 0 }),
      given: Type.Integer({ minimum: 0 }),
      lastError: Nullable(Type.String()),
    }),
  ),
});

// --- kitd -----------------------------------------------------------------------------------------
export const LIFECYCLE_STATES = ['booting', 'preflight', 'ready', 'live', 'draining', 'off'] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];
export const LedViewSchema = Type.Object({
  green: Type.Object({ pattern: Type.String(), on: Type.Boolean() }),
  red: Type.Object({ pattern: Type.String(), on: Type.Boolean() }),
  identifyUntil: Type.Optional(IsoTime),
});
export type LedViewT = Static<typeof LedViewSchema>;

export const HealthComponentSchema = Type.Object(
  { score: Type.Number(), weight: Type.Number(), detail: Type.String() },
  { additionalProperties: true },
);
export const HealthViewSchema = Type.Object({
  score: Type.Number({ minimum: 0, maximum: 100 }),
  components: Type.Record(Type.String(), HealthComponentSchema),
  at: IsoTime,
});
export type HealthViewT = Static<typeof HealthViewSchema>;
/** one scored part of the health view; probes add their own measurements beside the score */
export type HealthComponent = Static<typeof HealthComponentSchema> & { [k: string]: unknown };

export const POWER_LEVELS = ['unknown', 'normal', 'low', 'critical'] as const;
export const PowerPolicyViewSchema = Type.Object({
  level: Type.Union(POWER_LEVELS.map((l) => Type.Literal(l))),
  since: IsoTime,
  battery: BatterySummarySchema,
  neededMin: Type.Number(),
  mediaSteps: Type.Integer({ minimum: 0 }),
  thresholds: Type.Object({
    lowSocPct: Type.Number(),
    criticalSocPct: Type.Number(),
    criticalTtgMin: Type.Number(),
    hysteresisPct: Type.Number(),
  }),
  shutdown: Type.Optional(
    Type.Object({
      phase: Type.Union([
        Type.Literal('flushing'),
        Type.Literal('shutting-down'),
        Type.Literal('done'),
        Type.Literal('failed'),
      ]),
      remaining: Type.Optional(Type.Integer({ minimum: 0 })),
      error: Type.Optional(Type.String()),
    }),
  ),
});
export type PowerPolicyViewT = Static<typeof PowerPolicyViewSchema>;

export const UPDATE_POLICIES = ['after-event', 'when-idle', 'immediate'] as const;
export type UpdatePolicy = (typeof UPDATE_POLICIES)[number];
/** why kitd holds the update lock (firmware/update-control.ts lockReason) */
export const UPDATE_LOCK_REASONS = ['event-live', 'unsynced-orders', 'metered-link'] as const;
export type UpdateLockReason = (typeof UPDATE_LOCK_REASONS)[number];
export const UpdateLockViewSchema = Type.Object({
  held: Type.Boolean(),
  reason: Nullable(Type.String()),
  since: Nullable(IsoTime),
  expiresAt: Nullable(IsoTime),
  /** the lease ran out while its reason still stood: released, and not retaken until the reason clears */
  leaseExpired: Type.Boolean(),
  /** a lock this kitd did not create is present (another service, or the supervisor mid-update) */
  foreign: Type.Boolean(),
  healedAtBoot: Type.Boolean(),
  path: Type.String(),
});
export type UpdateLockViewT = Static<typeof UpdateLockViewSchema>;

export const ServiceWatchSchema = Type.Object({
  state: Type.Union(['starting', 'up', 'down', 'restarting'].map((s) => Type.Literal(s))),
  lastSeen: Type.Optional(IsoTime),
  restarts: Type.Integer({ minimum: 0 }),
  consecutive: Type.Integer({ minimum: 0 }),
  nextRestartAt: Type.Optional(IsoTime),
  lastRestartAt: Type.Optional(IsoTime),
  lastError: Type.Optional(Type.String()),
});
export type ServiceWatch = Static<typeof ServiceWatchSchema>;

export const KitdRunStatus = Type.Object({
  state: Type.Union(LIFECYCLE_STATES.map((s) => Type.Literal(s))),
  since: IsoTime,
  overlays: Type.Array(Type.Object({ kind: Type.String(), reason: Type.String(), since: IsoTime })),
  leds: Nullable(LedViewSchema),
  power: Type.Array(PowerReadingSchema),
  health: Nullable(HealthViewSchema),
  powerPolicy: PowerPolicyViewSchema,
  updateLock: Type.Intersect([
    UpdateLockViewSchema,
    Type.Object({ policy: Type.Union(UPDATE_POLICIES.map((p) => Type.Literal(p))) }),
  ]),
  /** the balena supervisor's /v1/device answer, passed through as it comes */
  pendingUpdate: Nullable(Type.Record(Type.String(), Type.Unknown())),
  services: Type.Record(Type.String(), ServiceWatchSchema),
  buttons: Type.Record(Type.String(), Type.String()),
  moments: Type.Integer({ minimum: 0 }),
  bus: Nullable(Type.Object({ connected: Type.Boolean() })),
  supervisor: Type.Union([Type.Literal('balena'), Type.Literal('none')]),
  /** the kit's network links (firmware/links.ts); optional so a status of an older kitd still reads */
  links: Type.Optional(LinksViewSchema),
});
export type KitdRunStatusT = Static<typeof KitdRunStatus>;

// --- media ----------------------------------------------------------------------------------------
export const MediaRunStatus = MediaStatsSchema;

// --- popkit up's process supervisor ---------------------------------------------------------------
export const SupervisorRunStatus = Type.Object({
  children: Type.Array(
    Type.Object({
      name: Type.String(),
      pid: Nullable(Type.Integer()),
      running: Type.Boolean(),
      restarts: Type.Integer({ minimum: 0 }),
      lastExit: Type.Unknown(), // passed through as the supervisor records it
      /** a part running as a thread of another child (the combined kit process): that child's name */
      in: Type.Optional(Type.String()),
    }),
  ),
});

// --- the combined kit process of a small board (`popkit kit`): its parts' worker threads ---------------
export const KitRunStatus = Type.Object({
  parts: Type.Array(
    Type.Object({
      name: Type.String(),
      threadId: Nullable(Type.Integer()),
      running: Type.Boolean(),
      restarts: Type.Integer({ minimum: 0 }),
      lastExit: Type.Unknown(), // passed through as the worker supervisor records it
    }),
  ),
});

// --- the board ------------------------------------------------------------------------------------
export const RUN_STATUS = {
  checkout: CheckoutRunStatus,
  sync: SyncRunStatus,
  kitd: KitdRunStatus,
  media: MediaRunStatus,
  supervisor: SupervisorRunStatus,
  kit: KitRunStatus,
} as const;
export type RunService = keyof typeof RUN_STATUS;
export const RUN_SERVICES = Object.keys(RUN_STATUS) as RunService[];

/** What a writer provides for `service`. */
export type RunStatusBody<S extends RunService> = Static<(typeof RUN_STATUS)[S]>;
/** What a reader gets: the body plus when and by whom it was written. */
export type RunStatus<S extends RunService> = RunStatusBody<S> & { updatedAt: string; pid: number };

const stamp = Type.Object({ updatedAt: IsoTime, pid: Type.Integer({ minimum: 0 }) });
const checkers = Object.fromEntries(
  RUN_SERVICES.map((s) => [s, contract(Type.Intersect([RUN_STATUS[s] as TSchema, stamp]))]),
) as unknown as { [S in RunService]: Contract<TSchema> };

/** The checker of one service's file (stamp included), for tests and tools. */
export function runStatusContract(service: RunService): Contract<TSchema> {
  return checkers[service];
}

/** Write `service`'s status atomically. Under NODE_ENV=test a body of the wrong shape throws INTERNAL. */
export function writeRunStatus<S extends RunService>(
  dataDir: string,
  service: S,
  body: RunStatusBody<S>,
): void {
  const layout = dataLayout(dataDir);
  const full = { ...body, updatedAt: new Date().toISOString(), pid: process.pid };
  if (process.env['NODE_ENV'] === 'test' && !checkers[service].check(full)) {
    throw new KitError(
      'INTERNAL',
      `run/${service}.json does not match its contract: ${checkers[service].errors(full).join('; ')}`,
    );
  }
  mkdirDurable(layout.run);
  // whole or the previous one after a power cut (a torn file would read as "never wrote one")
  writeFileDurable(layout.runStatus(service), JSON.stringify(full), { mode: 0o600 });
}

/** `service`'s last status, or undefined when it never wrote one, or the file is unreadable or of the wrong shape. */
export function readRunStatus<S extends RunService>(dataDir: string, service: S): RunStatus<S> | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(dataLayout(dataDir).runStatus(service), 'utf8');
  } catch {
    return undefined;
  }
  return checkers[service].parse(raw) as RunStatus<S> | undefined;
}

/**
 * A status older than this is stale: its fields no longer describe the process (checkout's /v1/status
 * marks it so, sync does not act on kitd's links view of that age).
 */
export const RUN_STATUS_STALE_MS = 10_000;

/** Age in ms of a status, for staleness checks (Infinity when unknown). */
export function statusAgeMs(status: { updatedAt?: string } | undefined, now = Date.now()): number {
  const t = status?.updatedAt ? Date.parse(status.updatedAt) : Number.NaN;
  return Number.isFinite(t) ? now - t : Number.POSITIVE_INFINITY;
}
