// HTTP shapes of the kit API that stay inside checkout (docs/contracts.md#kit-http-api): one TypeBox
// schema per shape, giving both the route validation and the TypeScript types. The catalog's shapes
// are the one declaration in core/contracts/catalog.ts.
import { type Static, Type } from '@sinclair/typebox';
import { IdLevel, Sku } from '../../core/contracts/common.ts';
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

export const OrderLineIn = Type.Object(
  { sku: Sku, qty: Type.Integer({ minimum: 1, maximum: 1000 }) },
  { additionalProperties: false },
);

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
    lines: Type.Array(OrderLineIn, { minItems: 1, maxItems: 100 }),
    payment: PaymentIn,
  },
  { additionalProperties: false },
);
export type OrderBodyT = Static<typeof OrderBody>;

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' }),
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
});

export const OrderIdParams = Type.Object({ id: Type.String({ pattern: ID_PATTERN }) });

export const EventStartBody = Type.Optional(
  Type.Object({ eventId: Type.Optional(IdLevel) }, { additionalProperties: false }),
);
