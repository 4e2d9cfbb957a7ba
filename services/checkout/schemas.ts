// HTTP shapes of the kit API that stay inside checkout (docs/contracts.md#kit-http-api): one TypeBox
// schema per shape, giving both the route validation and the TypeScript types. The catalog's shapes
// are the one declaration in core/contracts/catalog.ts.
import { type Static, Type } from '@sinclair/typebox';
import { ID_LEVEL, IdLevel, SafeText, Sku } from '../../core/contracts/common.ts';
import { ID_PATTERN } from '../../core/ids.ts';

export const ErrorEnvelope = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
});

/** The coded errors most routes can answer with (documentation and serialization). */
export const errorResponses = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  404: ErrorEnvelope,
  409: ErrorEnvelope,
};

const LineQty = Type.Integer({ minimum: 1, maximum: 1000 });
/** An order or reservation line: a SKU, or a bundle of the catalog by its id. */
export const OrderLineIn = Type.Union([
  Type.Object({ sku: Sku, qty: LineQty }, { additionalProperties: false }),
  Type.Object({ bundle: Sku, qty: LineQty }, { additionalProperties: false }),
]);
export type OrderLineInT = Static<typeof OrderLineIn>;
export const OrderLines = Type.Array(OrderLineIn, { minItems: 1, maxItems: 100 });

/** A reservation id (the same shape as an order id). */
export const ReservationId = Type.String({ pattern: ID_PATTERN });
/** A loyalty pass as a phone shows it (core/contracts/loyalty.ts): `pk1.<payload>.<signature>`, base64url. */
export const LoyaltyPassText = Type.String({ minLength: 8, maxLength: 1024, pattern: '^[A-Za-z0-9_.-]+$' });

export const PaymentIn = Type.Union([
  Type.Object({ method: Type.Literal('cash') }, { additionalProperties: false }),
  Type.Object(
    {
      method: Type.Literal('token'),
      token: Type.String({ minLength: 8, maxLength: 512, pattern: '^[\\x21-\\x7e]+$' }),
    },
    { additionalProperties: false },
  ),
]);

export const OrderBody = Type.Object(
  {
    lines: OrderLines,
    payment: PaymentIn,
    /** converts this reservation: the lines must be the reservation's (docs/drops.md#reservations) */
    reservationId: Type.Optional(ReservationId),
    /** takes a place in this pickup slot of the catalog (docs/drops.md#pickup) */
    pickupSlotId: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: ID_LEVEL })),
    /** a loyalty pass to apply (docs/drops.md#loyalty) */
    loyaltyPass: Type.Optional(LoyaltyPassText),
  },
  { additionalProperties: false },
);
export type OrderBodyT = Static<typeof OrderBody>;

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' }),
  ),
  /** the buyer page's signed device token (docs/security.md#drain-proofing) */
  'x-popkit-device': Type.Optional(
    Type.String({ minLength: 1, maxLength: 512, pattern: '^[\\x21-\\x7e]+$' }),
  ),
});

export const OrderOut = Type.Object({
  id: Type.String(),
  status: Type.String(),
  syncState: Type.String(),
  totalCents: Type.Integer(),
  currency: Type.String(),
  eventId: Type.String(),
  catalogVersion: Type.Integer(),
  lines: Type.Array(
    Type.Object({
      sku: Type.String(),
      name: Type.String(),
      qty: Type.Integer(),
      unitPriceCents: Type.Integer(),
      lineCents: Type.Integer(),
      /** a bundle line: what one bundle holds */
      components: Type.Optional(Type.Array(Type.Object({ sku: Type.String(), qty: Type.Integer() }))),
    }),
  ),
  payment: Type.Object({
    method: Type.String(),
    tokenHint: Type.Optional(Type.String()),
    expiresAt: Type.Optional(Type.String()),
  }),
  createdAt: Type.String(),
  forwardedAt: Type.Optional(Type.String()),
  settledAt: Type.Optional(Type.String()),
  declineReason: Type.Optional(Type.String()),
  subtotalCents: Type.Optional(Type.Integer()),
  discount: Type.Optional(
    Type.Object({ passId: Type.String(), holder: Type.String(), cents: Type.Integer() }),
  ),
  reservationId: Type.Optional(Type.String()),
  pickup: Type.Optional(
    Type.Object({
      slotId: Type.String(),
      code: Type.String(),
      pickedUpAt: Type.Optional(Type.String()),
      startsAt: Type.Optional(Type.String()),
      endsAt: Type.Optional(Type.String()),
    }),
  ),
  hold: Type.Optional(
    Type.Object({
      reason: Type.String(),
      until: Type.Optional(Type.String()),
      releasedAt: Type.Optional(Type.String()),
      releaseReason: Type.Optional(Type.String()),
    }),
  ),
});

export const OrderIdParams = Type.Object({ id: Type.String({ pattern: ID_PATTERN }) });

export const EventStartBody = Type.Optional(
  Type.Object({ eventId: Type.Optional(IdLevel) }, { additionalProperties: false }),
);

// ---- reservations (docs/drops.md#reservations) ----

// ---- pickup (docs/drops.md#pickup) ----

// ---- loyalty (docs/drops.md#loyalty) ----

// ---- buyer devices and drain-proofing (docs/security.md#drain-proofing) ----

/** `POST /v1/devices` takes `{}`: a device token says nothing about its phone (no fingerprinting). */
export const DeviceIn = Type.Object({}, { additionalProperties: false });

/** A buyer device token as issued (services/checkout/devices.ts DEVICE_TOKEN_PATTERN). */
export const DeviceOut = Type.Object({
  /** the token the buyer page keeps and sends in `x-popkit-device` */
  device: Type.String(),
  id: Type.String(),
  issuedAt: Type.String(),
});

/** Staff confirm a held order: how it was paid (docs/security.md#drain-proofing). */
export const ConfirmHeldBody = Type.Object(
  {
    /** `cash`: paid at pickup (the card token is never charged); `token`: staff vouch for the card */
    paidWith: Type.Union([Type.Literal('cash'), Type.Literal('token')]),
  },
  { additionalProperties: false },
);
export type ConfirmHeldBodyT = Static<typeof ConfirmHeldBody>;

export const ReleaseHeldBody = Type.Optional(
  Type.Object(
    { reason: Type.Optional(SafeText({ minLength: 1, maxLength: 200 })) },
    { additionalProperties: false },
  ),
);

const DropSkuOut = Type.Object({
  sku: Type.String(),
  startStock: Type.Integer(),
  remaining: Type.Integer(),
  sold: Type.Integer(),
  unpaid: Type.Integer(),
  held: Type.Integer(),
  reserved: Type.Integer(),
  released: Type.Integer(),
  balanced: Type.Boolean(),
  devices: Type.Object({
    count: Type.Integer(),
    maxUnits: Type.Integer(),
    withoutDevice: Type.Integer(),
  }),
  refundDue: Type.Integer(),
});

/** `GET /v1/drops/report`: where every unit of each scarce SKU is. */
export const DropReportOut = Type.Object({
  eventId: Type.String(),
  at: Type.String(),
  balanced: Type.Boolean(),
  skus: Type.Array(DropSkuOut),
  devicesIssued: Type.Integer(),
});

// ---- trusted time (docs/drops.md#trusted-time) ----
