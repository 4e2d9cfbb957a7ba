// Ledger reads, admin only: GET /v1/kits/:kitId/orders, one kit's orders as the hub holds them, paged.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ID_LEVEL } from '../../../core/contracts/common.ts';
import type { Ledger } from '../ledger.ts';
import { adminGuard } from './admin.ts';

const KitParams = Type.Object({ kitId: Type.String({ pattern: ID_LEVEL }) });
const OrdersQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
  after: Type.Optional(Type.String({ maxLength: 64 })),
});

export interface OrderRoutesOptions {
  ledger: Pick<Ledger, 'kitOrders'>;
  adminToken: string;
}

export const orderRoutes: FastifyPluginAsyncTypebox<OrderRoutesOptions> = async (app, opts) => {
  app.get(
    '/v1/kits/:kitId/orders',
    { onRequest: adminGuard(opts.adminToken), schema: { params: KitParams, querystring: OrdersQuery } },
    async (req) => opts.ledger.kitOrders(req.params.kitId, req.query),
  );
};
