// Stock moved between the kits of an event over the venue LAN while their uplink is down
// (docs/shared-stock.md#lan-transfers). Kit → kit: a receiving kit asks a giving kit for units with a
// request signed by its own identity key (core/enroll-kit.ts kitIdentity); the giver answers with a
// receipt signed by its key. Each kit knows the others' keys only from the hub's signed allocation
// statement (`peers`), so a kit that is not in the event, or a forged request, gets nothing. Both
// sides then report the move to the hub on the orders lane, which records it once by its id. Declared
// once here for the kits (services/sync/lan-stock.ts, core/store/shared-stock.ts) and the hub
// (services/hub/shared-stock.ts).
import { type Static, Type } from '@sinclair/typebox';
import { CATALOG_LIMITS } from './catalog.ts';
import { contract, IdLevel, IsoTime, SignedEnvelope, Sku } from './common.ts';

/** A kit's identity public key: the raw ed25519 key, base64url without padding (JWK `x`). */
export const IdentityKey = Type.String({ minLength: 43, maxLength: 43, pattern: '^[A-Za-z0-9_-]{43}$' });

/** One kit of the event and its identity key, as the hub lists them in a signed statement. */
export const LanPeer = Type.Object({ kitId: IdLevel, key: IdentityKey }, { additionalProperties: false });
export type LanPeerT = Static<typeof LanPeer>;
export const LAN_LIMITS = { peers: 1000, moves: 2000 } as const;

/** A LAN transfer's id: `l-` and a UUID, one topic level, distinct from the hub's `a-`, `r-`, `t-` moves. */
export const LanMoveId = Type.String({
  pattern: '^l-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
});

const Units = Type.Integer({ minimum: 0, maximum: CATALOG_LIMITS.stock });
const PositiveUnits = Type.Integer({ minimum: 1, maximum: CATALOG_LIMITS.stock });

/** Receiver → giver, signed by the receiver (`to`): "release up to `qty` units of `sku` to me". */
export const LanRequestPayload = Type.Object(
  {
    v: Type.Literal(1),
    use: Type.Literal('lan-stock-request'),
    id: LanMoveId,
    eventId: IdLevel,
    from: IdLevel,
    to: IdLevel,
    sku: Sku,
    qty: PositiveUnits,
    at: IsoTime,
  },
  { additionalProperties: false },
);
export type LanRequestPayloadT = Static<typeof LanRequestPayload>;

/** Giver → receiver, signed by the giver (`from`): the units it released for request `id` (0: none). */
export const LanReceiptPayload = Type.Object(
  {
    v: Type.Literal(1),
    use: Type.Literal('lan-stock-receipt'),
    id: LanMoveId,
    eventId: IdLevel,
    from: IdLevel,
    to: IdLevel,
    sku: Sku,
    requested: PositiveUnits,
    released: Units,
    at: IsoTime,
  },
  { additionalProperties: false },
);
export type LanReceiptPayloadT = Static<typeof LanReceiptPayload>;

/** Either, on the wire: the exact payload bytes and the ed25519 signature over them (as catalogs). */
export const SignedLanMessage = SignedEnvelope(4096);
export type SignedLanMessageT = Static<typeof SignedLanMessage>;

/** Giver's answer to `GET /v1/lan/stock/:eventId`: what it could spare, a hint only (the giver decides). */
export const LanOffer = Type.Object(
  {
    v: Type.Literal(1),
    kitId: IdLevel,
    eventId: IdLevel,
    skus: Type.Array(Type.Tuple([Sku, Units]), { maxItems: CATALOG_LIMITS.items }),
  },
  { additionalProperties: false },
);
export type LanOfferT = Static<typeof LanOffer>;

/** Kit → hub on the orders lane: the receipt of units this kit received over the LAN (entry id = its id). */
export const LanGrantReport = Type.Object({ receipt: SignedLanMessage }, { additionalProperties: false });
export type LanGrantReportT = Static<typeof LanGrantReport>;

export const lanStockWire = {
  request: contract(LanRequestPayload),
  receipt: contract(LanReceiptPayload),
  signed: contract(SignedLanMessage),
  offer: contract(LanOffer),
};
