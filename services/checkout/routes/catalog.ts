// The catalog: GET /v1/catalog (with live stock, serialized once per catalog and stock change, and
// again at each sale window boundary and trust change) and the staff's PUT /v1/catalog.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { TSchema } from '@sinclair/typebox';
import fastJson from 'fast-json-stringify';
import { CatalogInput, CatalogOut } from '../../../core/contracts/catalog.ts';
import { KitError } from '../../../core/errors.ts';
import {
  catalogView,
  type KitStore,
  readStoredCatalog,
  replaceCatalog,
  type StoredCatalog,
} from '../../../core/store/index.ts';
import type { OrderService } from '../orders.ts';
import { nextWindowBoundary } from '../sale-windows.ts';
import { ErrorEnvelope, errorResponses } from '../schemas.ts';
import type { StoreGuard } from '../store-guard.ts';
import { adminSecurity, type Credentials } from './staff.ts';

export interface CatalogRoutesOptions {
  store: KitStore;
  orders: OrderService;
  guard: StoreGuard;
  creds: Credentials;
}

function serializer(schema: TSchema): (v: unknown) => string {
  return fastJson(schema as unknown as Parameters<typeof fastJson>[0]);
}

/** The stored catalog as the API answers it: live stock, no starting stock. */
function catalogOut(store: KitStore, c: StoredCatalog, orders: OrderService, clock = orders.saleClock()) {
  return catalogView(store, c, clock);
}

export const catalogRoutes: FastifyPluginAsyncTypebox<CatalogRoutesOptions> = async (app, opts) => {
  const { store, orders, guard } = opts;
  const serializeCatalog = serializer(CatalogOut);
  // the serialized catalog is kept until the catalog or the stock changes: reads during a drop are
  // many times the orders, and each order changes the answer at most once. A window's state changes
  // with time alone: the body also expires at the next window boundary (a countdown turns `open` on
  // the instant) and whenever the clock's trust changes (the key carries it)
  let catalogBody: { key: string; json: string; expiresAt: number } | undefined;

  app.get(
    '/v1/catalog',
    { schema: { response: { 200: CatalogOut, 404: ErrorEnvelope } } },
    async (_req, reply) => {
      const cat = orders.catalog();
      if (!cat)
        throw new KitError(
          'NOT_FOUND',
          'no catalog loaded yet: PUT /v1/catalog or `popkit catalog load FILE`',
        );
      const clock = orders.saleClock();
      const key = `${cat.stamp}#${orders.stockEpoch}#${clock.trusted}`;
      if (catalogBody?.key !== key || clock.now >= catalogBody.expiresAt)
        catalogBody = {
          key,
          json: serializeCatalog(catalogOut(store, cat.catalog, orders, clock)),
          expiresAt: (clock.trusted && nextWindowBoundary(cat, clock.now)) || Number.POSITIVE_INFINITY,
        };
      return reply
        .header('content-type', 'application/json; charset=utf-8')
        .serializer((p: string) => p)
        .send(catalogBody.json as never);
    },
  );

  app.put(
    '/v1/catalog',
    {
      onRequest: opts.creds.require('admin'),
      schema: {
        body: CatalogInput,
        response: { 200: CatalogOut, ...errorResponses },
        security: adminSecurity,
      },
    },
    async (req) => {
      guard.assertWritable();
      await replaceCatalog(store, req.body, { source: 'local' });
      const c = readStoredCatalog(store);
      if (!c) throw new KitError('INTERNAL', 'catalog vanished after write');
      return catalogOut(store, c, orders);
    },
  );
};
