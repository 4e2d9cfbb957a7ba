// Ledger reads, admin only: GET /v1/kits/:kitId/orders, one kit's orders as the hub holds them, paged;
// GET /v1/events/:eventId/units, units sold per SKU for an event, bundle components counted.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ID_LEVEL, IdLevel } from '../../../core/contracts/common.ts';
import type { Ledger } from '../ledger.ts';
import { adminGuard } from './admin.ts';

const KitParams = Type.Object({ kitId: Type.String({ pattern: ID_LEVEL }) });
const EventParams = Type.Object({ eventId: IdLevel });
const UnitsOut = Type.Object({
  eventId: Type.String(),
  /** per SKU: units sold in all (own lines and bundles), and of them in bundles */
  skus: Type.Array(Type.Object({ sku: Type.String(), units: Type.Integer(), inBundles: Type.Integer() })),
  bundles: Type.Array(Type.Object({ bundleId: Type.String(), units: Type.Integer() })),
});
const OrdersQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
  after: Type.Optional(Type.String({ maxLength: 64 })),
});

export interface OrderRoutesOptions {
  ledger: Pick<Ledger, 'kitOrders' | 'unitsSold'>;
  adminToken: string;
}

export const orderRoutes: FastifyPluginAsyncTypebox<OrderRoutesOptions> = async (app, opts) => {
  app.get(
    '/v1/kits/:kitId/orders',
    { onRequest: adminGuard(opts.adminToken), schema: { params: KitParams, querystring: OrdersQuery } },
    async (req) => opts.ledger.kitOrders(req.params.kitId, req.query),
  );

  app.get(
    '/v1/events/:eventId/units',
    {
      onRequest: adminGuard(opts.adminToken),
      schema: { params: EventParams, response: { 200: UnitsOut } },
    },
    async (req) => opts.ledger.unitsSold(req.params.eventId),
  );
};
