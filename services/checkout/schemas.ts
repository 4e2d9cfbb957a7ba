// HTTP shapes of the kit API (CONTRACT.md): one TypeBox schema per shape, giving both the route
// validation and the TypeScript types.
import { type Static, Type } from '@sinclair/typebox';
import { ID_PATTERN } from '../../core/ids.ts';

export const Sku = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]*$' });
export const Currency = Type.String({ pattern: '^[A-Z]{3}$' });
export const Cents = Type.Integer({ minimum: 0, maximum: 100_000_000 });

export const ErrorEnvelope = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
});

export const CatalogItemIn = Type.Object(
  {
    sku: Sku,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    priceCents: Cents,
    currency: Type.Optional(Currency),
    stock: Type.Integer({ minimum: 0, maximum: 10_000_000 }),
    hero: Type.Optional(Type.Boolean()),
    maxPerOrder: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    imageUrl: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);

export const BundleIn = Type.Object(
  {
    id: Sku,
    name: Type.String({ minLength: 1, maxLength: 200 }),
    skus: Type.Array(Sku, { minItems: 1, maxItems: 50 }),
    priceCents: Cents,
  },
  { additionalProperties: false },
);

/** PUT /v1/catalog, `popkit catalog load`, and the hub's signed catalog body. */
export const CatalogInput = Type.Object(
  {
    version: Type.Integer({ minimum: 1 }),
    eventId: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' }),
    currency: Type.Optional(Currency),
    items: Type.Array(CatalogItemIn, { minItems: 1, maxItems: 5000 }),
    bundles: Type.Optional(Type.Array(BundleIn, { maxItems: 500 })),
  },
  { additionalProperties: false },
);
export type CatalogInputT = Static<typeof CatalogInput>;

export const CatalogItemOut = Type.Object({
  sku: Type.String(),
  name: Type.String(),
  priceCents: Type.Integer(),
  currency: Type.String(),
  stock: Type.Integer(),
  hero: Type.Optional(Type.Boolean()),
  maxPerOrder: Type.Optional(Type.Integer()),
  description: Type.Optional(Type.String()),
  imageUrl: Type.Optional(Type.String()),
});

export const CatalogOut = Type.Object({
  version: Type.Integer(),
  eventId: Type.String(),
  currency: Type.String(),
  source: Type.String(),
  updatedAt: Type.String(),
  items: Type.Array(CatalogItemOut),
  bundles: Type.Array(
    Type.Object({
      id: Type.String(),
      name: Type.String(),
      skus: Type.Array(Type.String()),
      priceCents: Type.Integer(),
    }),
  ),
});

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
  Type.Object(
    { eventId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })) },
    { additionalProperties: false },
  ),
);
