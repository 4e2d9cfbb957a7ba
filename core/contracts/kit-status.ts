// `GET /v1/status`: checkout's own view plus what kitd, sync and media last wrote to their run-status
// files (docs/contracts.md#get-v1status). Checkout builds it (services/checkout/status.ts); kitd, the
// CLI and the dashboard read it. A run-status file older than 10 s is passed with `stale: true` and
// its fields are not used for state, leds, power, health and updateLock.
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { contract, IsoTime, Nullable } from './common.ts';
import { KitdRunStatus, MediaRunStatus, SharedStockView, SyncRunStatus } from './run-status.ts';

const Stamp = Type.Object({ updatedAt: IsoTime, pid: Type.Integer({ minimum: 0 }) });
const Stale = Type.Object({ stale: Type.Boolean() });
const withStamp = <T extends TSchema>(t: T) => Type.Intersect([t, Stamp]);

export const EventStateSchema = Type.Object({
  live: Type.Boolean(),
  eventId: Nullable(Type.String()),
  startedAt: Nullable(IsoTime),
  stoppedAt: Nullable(IsoTime),
});

/** Ratios are `null` in JSON when a limit is 0 and usage is not (JSON has no Infinity). */
const Ratio = Nullable(Type.Number({ minimum: 0 }));
export const RiskViewSchema = Type.Object({
  limits: Type.Object({
    maxOrderCents: Type.Number(),
    maxUnsyncedCents: Type.Number(),
    maxUnsyncedOrders: Type.Number(),
    maxUnsyncedAgeS: Type.Number(),
  }),
  usage: Type.Object({
    unsyncedCents: Type.Integer({ minimum: 0 }),
    unsyncedOrders: Type.Integer({ minimum: 0 }),
    oldestUnsyncedAgeS: Type.Integer({ minimum: 0 }),
  }),
  ratio: Type.Object({ unsyncedCents: Ratio, unsyncedOrders: Ratio, oldestUnsyncedAgeS: Ratio }),
  blocking: Type.Array(Type.String()),
});

export const DeclineNoticeSchema = Type.Object({
  orderId: Type.String(),
  totalCents: Type.Integer({ minimum: 0 }),
  currency: Type.String(),
  reason: Nullable(Type.String()),
  at: IsoTime,
  /** 'rejected': the hub could not store the order (its dead letters); else a gateway decline */
  state: Type.Optional(Type.Union([Type.Literal('declined'), Type.Literal('rejected')])),
});

/** The device token key as checkout found it at start (core/token-key.ts); card sales need it whole. */
export const TokenKeyStatusSchema = Type.Object({
  state: Type.Union([
    Type.Literal('ok'),
    Type.Literal('missing'),
    Type.Literal('empty'),
    Type.Literal('torn'),
  ]),
  cardSales: Type.Boolean(),
  message: Type.Optional(Type.String()),
});
export type TokenKeyStatusT = Static<typeof TokenKeyStatusSchema>;

/**
 * One secret file of the kit as checkout found it at start (docs/power-cuts.md): whole, or missing,
 * empty or torn and then NOT replaced because data depends on it (`refused` names what stops), or
 * found damaged with nothing depending on it and replaced (`replaced`).
 */
export const SecretStatusSchema = Type.Object({
  /** relative to the data dir: keys/token.key, keys/device.key, keys/admin.token */
  file: Type.String(),
  state: Type.Union([
    Type.Literal('ok'),
    Type.Literal('missing'),
    Type.Literal('empty'),
    Type.Literal('torn'),
  ]),
  /** found empty or torn at start and replaced by a new one (the damaged file kept beside it) */
  replaced: Type.Optional(Type.Union([Type.Literal('empty'), Type.Literal('torn')])),
  /** what the kit refuses while this secret is lost, e.g. 'card sales' */
  refused: Type.Optional(Type.String()),
  message: Type.Optional(Type.String()),
});
export type SecretStatusT = Static<typeof SecretStatusSchema>;

/**
 * What the drop features report (docs/drops.md): one optional field per feature, each declared by the
 * feature beside its code and named here.
 */
export const DropsStatus = Type.Object({
  // sale windows, trusted time, admission
  /** core/clock-trust.ts ClockTrustView: is the clock trusted for time-boxed sales, and why */
  clock: Type.Optional(
    Type.Object({
      trusted: Type.Boolean(),
      source: Nullable(Type.String()),
      reason: Nullable(Type.String()),
      now: IsoTime,
      since: Nullable(IsoTime),
      hubFloor: Nullable(IsoTime),
      jumpMs: Type.Optional(Type.Number()),
      sources: Type.Object({
        ntp: Nullable(Type.Boolean()),
        rtc: Type.Boolean(),
        hub: Type.Boolean(),
        override: Type.Boolean(),
      }),
    }),
  ),
  /** services/checkout/admission.ts: the line for orders and reservations */
  admission: Type.Optional(
    Type.Object({
      enabled: Type.Boolean(),
      inFlight: Type.Integer({ minimum: 0 }),
      waiting: Type.Integer({ minimum: 0 }),
      concurrency: Type.Integer({ minimum: 0 }),
      queueMax: Type.Integer({ minimum: 0 }),
      maxWaitMs: Type.Integer({ minimum: 0 }),
      admitted: Type.Integer({ minimum: 0 }),
      refused: Type.Integer({ minimum: 0 }),
      shortCircuited: Type.Integer({ minimum: 0 }),
    }),
  ),
  // reservations
  reservations: Type.Optional(
    Type.Object({
      /** the current catalog's event (the counters are per event) */
      eventId: Nullable(Type.String()),
      created: Type.Integer({ minimum: 0 }),
      converted: Type.Integer({ minimum: 0 }),
      /** abandoned: ran out without an order */
      expired: Type.Integer({ minimum: 0 }),
      /** abandoned: released early by the buyer */
      released: Type.Integer({ minimum: 0 }),
      abandoned: Type.Integer({ minimum: 0 }),
      held: Type.Integer({ minimum: 0 }),
      ttlS: Type.Integer({ minimum: 0 }),
    }),
  ),
  // loyalty
  loyalty: Type.Optional(
    Type.Object({
      /** the hub's public key is known: passes can be verified */
      verifying: Type.Boolean(),
      /** passes used here (per event), their uses, and the discount they gave */
      passes: Type.Integer({ minimum: 0 }),
      redemptions: Type.Integer({ minimum: 0 }),
      discountCents: Type.Integer({ minimum: 0 }),
      kitUsesMax: Nullable(Type.Integer()),
    }),
  ),
  // drain-proofing
  drain: Type.Optional(
    Type.Object({
      /** whether scarce buyer card orders are authorized through the hub now */
      authorizer: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
      /** orders held now, waiting for payment */
      heldNow: Type.Integer({ minimum: 0 }),
      /** buyer devices this kit issued */
      devices: Type.Integer({ minimum: 0 }),
      allowance: Type.Integer({ minimum: 0 }),
      holdTtlS: Type.Integer({ minimum: 0 }),
      authBudgetMs: Type.Integer({ minimum: 0 }),
      /** since start: scarce buyer card orders by outcome, and holds released by expiry */
      outcomes: Type.Object({
        authorized: Type.Integer({ minimum: 0 }),
        declined: Type.Integer({ minimum: 0 }),
        unavailable: Type.Integer({ minimum: 0 }),
        allowance: Type.Integer({ minimum: 0 }),
        held: Type.Integer({ minimum: 0 }),
        expired: Type.Integer({ minimum: 0 }),
      }),
    }),
  ),
  // pickup
  /** per slot of the current catalog: places taken of capacity, handed over, waiting, overdue */
  pickup: Type.Optional(
    Type.Object({
      slots: Type.Array(
        Type.Object({
          slotId: Type.String(),
          label: Type.Optional(Type.String()),
          startsAt: Type.String(),
          endsAt: Type.String(),
          capacity: Type.Integer({ minimum: 0 }),
          taken: Type.Integer({ minimum: 0 }),
          pickedUp: Type.Integer({ minimum: 0 }),
          waiting: Type.Integer({ minimum: 0 }),
          overdue: Type.Integer({ minimum: 0 }),
        }),
      ),
    }),
  ),
});

export const KitStatusView = Type.Object({
  kitId: Type.String(),
  board: Type.String(),
  /** kitd's lifecycle state when fresh, else `live` / `ready` / `booting` from event and catalog */
  state: Type.String(),
  event: EventStateSchema,
  catalog: Nullable(
    Type.Object({
      version: Type.Integer(),
      eventId: Type.String(),
      source: Type.String(),
      items: Type.Integer({ minimum: 0 }),
    }),
  ),
  leds: Nullable(KitdRunStatus.properties.leds),
  power: Nullable(KitdRunStatus.properties.power),
  health: Nullable(KitdRunStatus.properties.health),
  updateLock: Nullable(KitdRunStatus.properties.updateLock),
  kitd: Nullable(Type.Intersect([withStamp(KitdRunStatus), Stale])),
  sync: Type.Object({
    /** sync's link state; `not-running` without a status file, `unknown` when it is stale */
    link: Type.String(),
    backlog: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
    detail: Type.Optional(withStamp(SyncRunStatus)),
    stale: Type.Optional(Type.Boolean()),
  }),
  media: Nullable(Type.Intersect([withStamp(MediaRunStatus), Stale])),
  risk: RiskViewSchema,
  declines: Type.Array(DeclineNoticeSchema),
  store: Type.Object({
    freeBytes: Nullable(Type.Number({ minimum: 0 })),
    reserveBytes: Type.Number({ minimum: 0 }),
    full: Type.Boolean(),
  }),
  tokenKey: Type.Optional(TokenKeyStatusSchema),
  /** every secret file as found at start: a lost or replaced one says so (docs/power-cuts.md) */
  secrets: Type.Optional(Type.Array(SecretStatusSchema)),
  drops: Type.Optional(DropsStatus),
  /** this kit's share of its catalog's event's stock, from the hub's last statement (docs/shared-stock.md) */
  sharedStock: Type.Optional(Nullable(SharedStockView)),
});
export type KitStatusViewT = Static<typeof KitStatusView>;

export const kitStatusView = contract(KitStatusView);
