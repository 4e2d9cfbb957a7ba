// The catalog, declared once for every place it enters: the kit's `PUT /v1/catalog`, `popkit catalog
// load`, the hub's catalog PUT and the catalog inside a signed catalog message. One schema, one set of
// limits: a catalog the hub signs is a catalog every kit accepts (docs/contracts.md#catalog).
import { type Static, Type } from '@sinclair/typebox';
import { KitError } from '../errors.ts';
import {
  CATALOG_VERSION_MAX,
  Cents,
  Currency,
  contract,
  ID_LEVEL,
  IsoTime,
  SafeMultiline,
  SafeText,
  Sku,
} from './common.ts';

export const CATALOG_LIMITS = {
  items: 5000,
  bundles: 500,
  skusPerBundle: 50,
  stock: 10_000_000,
  maxPerOrder: 1000,
  nameLength: 200,
  textLength: 2000,
} as const;

export const CatalogItemIn = Type.Object(
  {
    sku: Sku,
    name: SafeText({ minLength: 1, maxLength: CATALOG_LIMITS.nameLength }),
    priceCents: Cents,
    currency: Type.Optional(Currency),
    stock: Type.Integer({ minimum: 0, maximum: CATALOG_LIMITS.stock }),
    hero: Type.Optional(Type.Boolean()),
    maxPerOrder: Type.Optional(Type.Integer({ minimum: 1, maximum: CATALOG_LIMITS.maxPerOrder })),
    description: Type.Optional(SafeMultiline({ maxLength: CATALOG_LIMITS.textLength })),
    imageUrl: Type.Optional(SafeText({ maxLength: CATALOG_LIMITS.textLength })),
  },
  { additionalProperties: false },
);

export const BundleIn = Type.Object(
  {
    id: Sku,
    name: SafeText({ minLength: 1, maxLength: CATALOG_LIMITS.nameLength }),
    skus: Type.Array(Sku, { minItems: 1, maxItems: CATALOG_LIMITS.skusPerBundle }),
    priceCents: Cents,
  },
  { additionalProperties: false },
);

const catalogProperties = {
  version: Type.Integer({ minimum: 1, maximum: CATALOG_VERSION_MAX }),
  eventId: Type.String({ minLength: 1, maxLength: 64, pattern: ID_LEVEL }),
  currency: Type.Optional(Currency),
  items: Type.Array(CatalogItemIn, { minItems: 1, maxItems: CATALOG_LIMITS.items }),
  bundles: Type.Optional(Type.Array(BundleIn, { maxItems: CATALOG_LIMITS.bundles })),
};

/** The catalog as it enters a kit or the hub (starting stock per SKU included). */
export const CatalogInput = Type.Object(catalogProperties, { additionalProperties: false });
export type CatalogInputT = Static<typeof CatalogInput>;

/** The hub's `PUT /v1/events/:eventId/catalog` body: the event comes from the path, the version may be left to the hub. */
export const HubCatalogBody = Type.Object(
  {
    ...catalogProperties,
    eventId: Type.Optional(catalogProperties.eventId),
    version: Type.Optional(catalogProperties.version),
  },
  { additionalProperties: false },
);
export type HubCatalogBodyT = Static<typeof HubCatalogBody>;

export const catalogInput = contract(CatalogInput);

/**
 * Shape, then the rules a schema cannot say: SKUs are unique and bundles name only SKUs of the
 * catalog. Throws VALIDATION naming the first problems.
 */
export function validateCatalog(input: unknown): CatalogInputT {
  if (!catalogInput.check(input)) {
    throw new KitError('VALIDATION', `invalid catalog: ${catalogInput.errors(input).join('; ')}`);
  }
  const seen = new Set<string>();
  for (const item of input.items) {
    if (seen.has(item.sku)) throw new KitError('VALIDATION', `invalid catalog: duplicate sku ${item.sku}`);
    seen.add(item.sku);
  }
  for (const b of input.bundles ?? []) {
    for (const sku of b.skus) {
      if (!seen.has(sku))
        throw new KitError('VALIDATION', `invalid catalog: bundle ${b.id} names unknown sku ${sku}`);
    }
  }
  return input;
}

/** `GET /v1/catalog` and the catalog answer of `PUT /v1/catalog`: the stored catalog with live stock. */
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
  updatedAt: IsoTime,
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
export type CatalogOutT = Static<typeof CatalogOut>;
