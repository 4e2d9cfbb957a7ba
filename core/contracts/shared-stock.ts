// Shared stock across the kits of an event (docs/shared-stock.md): the hub grants each kit units of
// the event's stock, asks a kit to release units for a transfer, and a kit releases them in its own
// LMDB transaction. Declared once here for the hub (services/hub/shared-stock.ts) and the kit
// (core/store/shared-stock.ts, services/sync/allocation-intake.ts).
import { type Static, Type } from '@sinclair/typebox';
import { CATALOG_LIMITS } from './catalog.ts';
import { CATALOG_VERSION_MAX, contract, ID_LEVEL, IdLevel, IsoTime, SignedEnvelope, Sku } from './common.ts';
import { LAN_LIMITS, LanPeer, SignedLanMessage } from './lan-stock.ts';

/** A grant, release or transfer id: one topic level, as order ids. */
export const MoveId = Type.String({ minLength: 1, maxLength: 64, pattern: ID_LEVEL });
const Units = Type.Integer({ minimum: 0, maximum: CATALOG_LIMITS.stock });
const PositiveUnits = Type.Integer({ minimum: 1, maximum: CATALOG_LIMITS.stock });

/** Bounds of one statement: how many grants and pending release requests it lists. */
export const SHARED_STOCK_LIMITS = { grants: 5000, requests: 1000, skus: CATALOG_LIMITS.items } as const;

/** Units of one SKU moved once: a grant (hub → kit) or a request to release (hub → kit). */
export const StockMove = Type.Object(
  { id: MoveId, sku: Sku, qty: PositiveUnits },
  { additionalProperties: false },
);
export type StockMoveT = Static<typeof StockMove>;

/** sku → units, as arrays of pairs (no object keys: `__proto__` cannot be a SKU, Sku forbids it anyway) */
const SkuUnits = Type.Array(Type.Tuple([Sku, Units]), { maxItems: SHARED_STOCK_LIMITS.skus });

/**
 * What the hub tells one kit about its share of an event's stock, signed with the catalog key. Every
 * grant the kit ever got for the event is listed (the kit applies each id once), and the release
 * requests it has not answered yet. `use` keeps it from being taken for a catalog or a seal key.
 */
export const AllocationPayload = Type.Object(
  {
    v: Type.Literal(1),
    use: Type.Literal('stock-allocation'),
    kitId: IdLevel,
    eventId: IdLevel,
    /** per (event, kit), rises with every statement: an older one is refused (ALLOCATION_STALE) */
    version: Type.Integer({ minimum: 1, maximum: CATALOG_VERSION_MAX }),
    issuedAt: IsoTime,
    grants: Type.Array(StockMove, { maxItems: SHARED_STOCK_LIMITS.grants }),
    releaseRequests: Type.Array(StockMove, { maxItems: SHARED_STOCK_LIMITS.requests }),
    /** the event's stock per SKU (its latest catalog) and what the hub counts as this kit's allocation */
    eventStock: SkuUnits,
    allocated: SkuUnits,
    /**
     * the event's kits and their identity keys (from each kit's status), so that kits can move units
     * between themselves over the venue LAN while the uplink is down (lan-stock.ts); absent: older hub
     */
    peers: Type.Optional(Type.Array(LanPeer, { maxItems: LAN_LIMITS.peers })),
  },
  { additionalProperties: false },
);
export type AllocationPayloadT = Static<typeof AllocationPayload>;

/** Hub → kit on `kits/{kitId}/allocations`, retained: the payload's exact bytes and their signature. */
export const SignedAllocation = SignedEnvelope(1_000_000);
export type SignedAllocationT = Static<typeof SignedAllocation>;

/**
 * Kit → hub on the orders lane (entry id = the request's id): the units the kit released in answer to
 * a release request, 0 when it had none left. Written in the kit's own LMDB transaction with the
 * stock decrement, acked `stored` like an order event.
 */
export const StockRelease = Type.Object(
  {
    id: MoveId,
    eventId: IdLevel,
    sku: Sku,
    requested: PositiveUnits,
    released: Units,
    at: IsoTime,
    /**
     * a release to another kit over the venue LAN (lan-stock.ts), not in answer to a hub request: the
     * receiving kit and its signed request, which the hub checks against that kit's identity key
     */
    lan: Type.Optional(
      Type.Object({ to: IdLevel, request: SignedLanMessage }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);
export type StockReleaseT = Static<typeof StockRelease>;

/** Creator → hub `PUT /v1/events/:eventId/allocations`: units per kit and SKU, or an even split. */
export const AllocationsBody = Type.Union([
  Type.Object(
    {
      allocations: Type.Array(
        Type.Object({ kitId: IdLevel, sku: Sku, qty: Units }, { additionalProperties: false }),
        { minItems: 1, maxItems: 10_000 },
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    { split: Type.Literal('even'), kits: Type.Array(IdLevel, { minItems: 1, maxItems: 1000 }) },
    { additionalProperties: false },
  ),
]);
export type AllocationsBodyT = Static<typeof AllocationsBody>;

/** Creator → hub `POST /v1/events/:eventId/transfers`: move units of a SKU from one kit to another. */
export const TransferBody = Type.Object(
  { from: IdLevel, to: IdLevel, sku: Sku, qty: PositiveUnits },
  { additionalProperties: false },
);
export type TransferBodyT = Static<typeof TransferBody>;

/** Creator → hub `POST /v1/events/:eventId/rebalance`: the automatic rule, once. */
export const RebalanceBody = Type.Object(
  {
    /** a kit with less than this percentage of its allocation left gets units (default 20) */
    belowPercent: Type.Optional(Type.Integer({ minimum: 1, maximum: 99 })),
  },
  { additionalProperties: false },
);
export type RebalanceBodyT = Static<typeof RebalanceBody>;

export const sharedStockWire = {
  signedAllocation: contract(SignedAllocation),
  allocationPayload: contract(AllocationPayload),
  stockRelease: contract(StockRelease),
};
