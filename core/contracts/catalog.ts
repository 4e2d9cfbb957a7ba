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
import { ProductImage } from './product-media.ts';

export const CATALOG_LIMITS = {
  items: 5000,
  bundles: 500,
  skusPerBundle: 50,
  stock: 10_000_000,
  maxPerOrder: 1000,
  nameLength: 200,
  textLength: 2000,
  pickupSlots: 200,
  slotCapacity: 100_000,
} as const;

/**
 * When a SKU or bundle may be sold: from `startsAt` (inclusive) to `endsAt` (exclusive), both ISO 8601
 * with a zone. Every kit of the event opens and closes it at the same instant, by its trusted clock
 * (docs/drops.md#sale-windows).
 */
export const SaleWindow = Type.Object(
  { startsAt: IsoTime, endsAt: IsoTime },
  { additionalProperties: false },
);
export type SaleWindowT = Static<typeof SaleWindow>;

/** A component of a bundle: a SKU of the catalog and how many of it one bundle holds. */
export const BundleComponent = Type.Object(
  { sku: Sku, qty: Type.Integer({ minimum: 1, maximum: CATALOG_LIMITS.maxPerOrder }) },
  { additionalProperties: false },
);
export type BundleComponentT = Static<typeof BundleComponent>;

/** A pickup window with a capacity (orders), e.g. 15 minutes: an order may take one (docs/drops.md#pickup). */
export const PickupSlotIn = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 64, pattern: ID_LEVEL }),
    startsAt: IsoTime,
    endsAt: IsoTime,
    capacity: Type.Integer({ minimum: 1, maximum: CATALOG_LIMITS.slotCapacity }),
    label: Type.Optional(SafeText({ maxLength: CATALOG_LIMITS.nameLength })),
  },
  { additionalProperties: false },
);
export type PickupSlotT = Static<typeof PickupSlotIn>;

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
    /** renditions the hub stores by sha256 (docs/contracts.md#product-media); kits show only their local copies */
    image: Type.Optional(ProductImage),
    saleWindow: Type.Optional(SaleWindow),
    /** scarce: a buyer without credentials cannot drain it with unverifiable payments (docs/security.md) */
    scarce: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/**
 * A prebuilt bundle, sold atomically (every component's stock or none). `components` gives quantities;
 * `skus` is the older form (one of each) and is stored as components. Its id shares the SKU namespace:
 * an order line names it as `{ "bundle": id }`.
 */
export const BundleIn = Type.Object(
  {
    id: Sku,
    name: SafeText({ minLength: 1, maxLength: CATALOG_LIMITS.nameLength }),
    skus: Type.Optional(Type.Array(Sku, { minItems: 1, maxItems: CATALOG_LIMITS.skusPerBundle })),
    components: Type.Optional(
      Type.Array(BundleComponent, { minItems: 1, maxItems: CATALOG_LIMITS.skusPerBundle }),
    ),
    priceCents: Cents,
    saleWindow: Type.Optional(SaleWindow),
    maxPerOrder: Type.Optional(Type.Integer({ minimum: 1, maximum: CATALOG_LIMITS.maxPerOrder })),
    hero: Type.Optional(Type.Boolean()),
    scarce: Type.Optional(Type.Boolean()),
    description: Type.Optional(SafeMultiline({ maxLength: CATALOG_LIMITS.textLength })),
  },
  { additionalProperties: false },
);
export type BundleInT = Static<typeof BundleIn>;

const catalogProperties = {
  version: Type.Integer({ minimum: 1, maximum: CATALOG_VERSION_MAX }),
  eventId: Type.String({ minLength: 1, maxLength: 64, pattern: ID_LEVEL }),
  currency: Type.Optional(Currency),
  items: Type.Array(CatalogItemIn, { minItems: 1, maxItems: CATALOG_LIMITS.items }),
  bundles: Type.Optional(Type.Array(BundleIn, { maxItems: CATALOG_LIMITS.bundles })),
  pickupSlots: Type.Optional(Type.Array(PickupSlotIn, { maxItems: CATALOG_LIMITS.pickupSlots })),
  /** the creator whose event this is: loyalty passes scoped to a creator apply here (docs/drops.md#loyalty) */
  creatorId: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: ID_LEVEL })),
  /**
   * the items' stock is the event's, shared by its kits: a kit sells only the units the hub granted it
   * (docs/shared-stock.md). The hub sets it on every catalog of an event with allocations.
   */
  sharedStock: Type.Optional(Type.Boolean()),
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

/** Epoch ms of an ISO 8601 time with a zone (`Z` or `±hh:mm`), or NaN when it is not one. */
export function parseIsoTime(s: string): number {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(s)) return Number.NaN;
  return Date.parse(s);
}

function windowProblem(where: string, w: SaleWindowT | undefined): string | undefined {
  if (!w) return undefined;
  const a = parseIsoTime(w.startsAt);
  const b = parseIsoTime(w.endsAt);
  if (Number.isNaN(a)) return `${where}: saleWindow.startsAt is not an ISO 8601 time with a zone`;
  if (Number.isNaN(b)) return `${where}: saleWindow.endsAt is not an ISO 8601 time with a zone`;
  if (b <= a) return `${where}: saleWindow.endsAt is not after startsAt`;
  return undefined;
}

/** A bundle's components, whichever form the catalog gave them in. */
export function bundleComponents(b: {
  skus?: string[];
  components?: BundleComponentT[];
}): BundleComponentT[] {
  if (b.components) return b.components;
  const qty = new Map<string, number>();
  for (const sku of b.skus ?? []) qty.set(sku, (qty.get(sku) ?? 0) + 1);
  return [...qty].map(([sku, n]) => ({ sku, qty: n }));
}

/**
 * Shape, then the rules a schema cannot say: SKUs and bundle ids are unique together, bundles name
 * only SKUs of the catalog (in exactly one of `skus` or `components`, each SKU once), sale windows and
 * pickup slots end after they start, slot ids are unique. Throws VALIDATION naming the first problem.
 */
export function validateCatalog(input: unknown): CatalogInputT {
  if (!catalogInput.check(input)) {
    throw new KitError('VALIDATION', `invalid catalog: ${catalogInput.errors(input).join('; ')}`);
  }
  const bad = (why: string) => new KitError('VALIDATION', `invalid catalog: ${why}`);
  const seen = new Set<string>();
  for (const item of input.items) {
    if (seen.has(item.sku)) throw bad(`duplicate sku ${item.sku}`);
    seen.add(item.sku);
    const w = windowProblem(`item ${item.sku}`, item.saleWindow);
    if (w) throw bad(w);
  }
  const skus = new Set(seen);
  for (const b of input.bundles ?? []) {
    if (seen.has(b.id)) throw bad(`bundle id ${b.id} is already a sku or bundle id`);
    seen.add(b.id);
    if ((b.skus === undefined) === (b.components === undefined))
      throw bad(`bundle ${b.id} needs exactly one of skus or components`);
    const named = new Set<string>();
    for (const c of b.components ?? []) {
      if (named.has(c.sku)) throw bad(`bundle ${b.id} names sku ${c.sku} twice in components`);
      named.add(c.sku);
    }
    for (const c of bundleComponents(b)) {
      if (!skus.has(c.sku)) throw bad(`bundle ${b.id} names unknown sku ${c.sku}`);
    }
    const w = windowProblem(`bundle ${b.id}`, b.saleWindow);
    if (w) throw bad(w);
  }
  const slots = new Set<string>();
  for (const slot of input.pickupSlots ?? []) {
    if (slots.has(slot.id)) throw bad(`duplicate pickup slot ${slot.id}`);
    slots.add(slot.id);
    const w = windowProblem(`pickup slot ${slot.id}`, slot);
    if (w) throw bad(w.replace('saleWindow.', ''));
  }
  return input;
}

/** A sale window's state, as catalog answers show it. */
export const SaleStateOut = Type.Union([
  Type.Literal('open'),
  Type.Literal('upcoming'),
  Type.Literal('ended'),
  /** the kit's clock is not trusted, so a time-boxed SKU cannot be sold (docs/drops.md#trusted-time) */
  Type.Literal('clock_untrusted'),
]);

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
  /** served by this kit at /media/<sha256> once sync has fetched it (docs/contracts.md#product-media) */
  image: Type.Optional(Type.Object({ phone: Type.String(), screen: Type.String() })),
  saleWindow: Type.Optional(SaleWindow),
  scarce: Type.Optional(Type.Boolean()),
  /** where the sale window stands by the kit's trusted clock: `open` when there is none */
  saleState: Type.Optional(SaleStateOut),
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
      /** each component SKU once (the older form, kept for readers of it) */
      skus: Type.Array(Type.String()),
      components: Type.Array(Type.Object({ sku: Type.String(), qty: Type.Integer() })),
      priceCents: Type.Integer(),
      saleWindow: Type.Optional(SaleWindow),
      maxPerOrder: Type.Optional(Type.Integer()),
      hero: Type.Optional(Type.Boolean()),
      scarce: Type.Optional(Type.Boolean()),
      description: Type.Optional(Type.String()),
      /** whole bundles the components' live stock makes */
      available: Type.Integer(),
      saleState: Type.Optional(SaleStateOut),
    }),
  ),
  pickupSlots: Type.Optional(
    Type.Array(
      Type.Object({
        id: Type.String(),
        startsAt: Type.String(),
        endsAt: Type.String(),
        capacity: Type.Integer(),
        label: Type.Optional(Type.String()),
        /** orders the slot can still take */
        remaining: Type.Integer(),
      }),
    ),
  ),
});
export type CatalogOutT = Static<typeof CatalogOut>;
