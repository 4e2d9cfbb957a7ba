// GET /v1/status: checkout's own view merged with the run-status files of kitd, sync and media; read by
// `popkit status`, the dashboard and tests (docs/contracts.md#get-v1status). The parts that come from a
// run-status file reuse that file's schema (core/contracts/run-status.ts).
import { type Static, Type } from '@sinclair/typebox';
import { Cents, Currency, contract, IsoTime, Nullable } from './common.ts';
import { PowerReadingSchema } from './power.ts';
import { HealthViewSchema, LedViewSchema, MediaRunStatus } from './run-status.ts';

const Stamp = { updatedAt: IsoTime, pid: Type.Integer({ minimum: 0 }) };
const Stale = { stale: Type.Boolean() };
const Open = Type.Record(Type.String(), Type.Unknown());

export const KitEventStateSchema = Type.Object({
  live: Type.Boolean(),
  eventId: Nullable(Type.String()),
  startedAt: Nullable(IsoTime),
  stoppedAt: Nullable(IsoTime),
});

const RiskFigures = Type.Object({
  unsyncedCents: Type.Number(),
  unsyncedOrders: Type.Number(),
  oldestUnsyncedAgeS: Type.Number(),
});

export const KitStatusViewSchema = Type.Object({
  kitId: Type.String(),
  board: Type.String(),
  /** kitd's lifecycle state, else `live` / `ready` / `booting` from the event and the catalog */
  state: Type.String(),
  event: KitEventStateSchema,
  catalog: Nullable(
    Type.Object({
      version: Type.Integer(),
      eventId: Type.String(),
      source: Type.String(),
      /** how many items */
      items: Type.Integer({ minimum: 0 }),
    }),
  ),
  // from a fresh kitd.json, else null
  leds: Nullable(LedViewSchema),
  power: Nullable(Type.Array(PowerReadingSchema)),
  health: Nullable(HealthViewSchema),
  updateLock: Nullable(Open),
  /** the whole kitd.json plus `stale` */
  kitd: Nullable(Type.Intersect([Open, Type.Object(Stale)])),
  sync: Type.Object({
    /** sync.json's link; `not-running` without one, `unknown` when it is stale */
    link: Type.String(),
    /** counted in LMDB, per lane */
    backlog: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
    detail: Type.Optional(Open),
    stale: Type.Optional(Type.Boolean()),
  }),
  media: Nullable(Type.Intersect([MediaRunStatus, Type.Object({ ...Stamp, ...Stale })])),
  risk: Type.Object({
    limits: Type.Object({
      maxOrderCents: Type.Number(),
      maxUnsyncedCents: Type.Number(),
      maxUnsyncedOrders: Type.Number(),
      maxUnsyncedAgeS: Type.Number(),
    }),
    usage: RiskFigures,
    ratio: RiskFigures,
    /** the limits now refusing card orders */
    blocking: Type.Array(Type.String()),
  }),
  /** the last declined card payments, newest first */
  declines: Type.Array(
    Type.Object({
      orderId: Type.String(),
      totalCents: Cents,
      currency: Currency,
      reason: Nullable(Type.String()),
      at: IsoTime,
    }),
  ),
  store: Type.Object({
    freeBytes: Nullable(Type.Number()),
    reserveBytes: Type.Number(),
    full: Type.Boolean(),
  }),
});
export type KitStatusViewT = Static<typeof KitStatusViewSchema>;
export const kitStatusView = contract(KitStatusViewSchema);
