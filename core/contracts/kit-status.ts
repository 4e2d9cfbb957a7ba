// GET /v1/status: checkout's own view of the kit merged with what kitd, sync and media last wrote to
// their run-status files (docs/contracts.md#get-v1status). kitd, `popkit preflight` and `popkit status`
// read it. The parts those readers act on are declared field by field; the views that are only shown
// (catalog summary, media, risk, declines, store guard) pass through as they come.
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { contract, IsoTime, Nullable } from './common.ts';
import { PowerReadingSchema } from './power.ts';
import { PowerPolicyViewSchema } from './run-status.ts';

const Open = <T extends TSchema>(t: T) => t; // documents a deliberately open (pass-through) shape

export const KitEventStateSchema = Type.Object({
  live: Type.Boolean(),
  eventId: Nullable(Type.String()),
  startedAt: Nullable(IsoTime),
  stoppedAt: Type.Optional(Nullable(IsoTime)),
});

export const KitStatusView = Type.Object({
  kitId: Type.String(),
  board: Type.String(),
  /** kitd's lifecycle state, else live / ready / booting from the event and the catalog */
  state: Type.String(),
  event: KitEventStateSchema,
  catalog: Open(Type.Unknown()),
  leds: Open(Type.Unknown()),
  power: Nullable(Type.Array(PowerReadingSchema)),
  health: Open(Type.Unknown()),
  updateLock: Open(Type.Unknown()),
  /** the whole kitd.json plus `stale`; only its power policy is read here */
  kitd: Nullable(
    Type.Object(
      { stale: Type.Boolean(), powerPolicy: Type.Optional(PowerPolicyViewSchema) },
      { additionalProperties: true },
    ),
  ),
  sync: Type.Object(
    {
      /** a LinkState from sync.json, `not-running` without one, `unknown` when stale */
      link: Type.String(),
      /** outbox entries per lane, counted in LMDB */
      backlog: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
      stale: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: true },
  ),
  media: Open(Type.Unknown()),
  risk: Open(Type.Unknown()),
  declines: Open(Type.Unknown()),
  store: Open(Type.Unknown()),
});
export type KitStatusViewT = Static<typeof KitStatusView>;
export const kitStatusView = contract(KitStatusView);
