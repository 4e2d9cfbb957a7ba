// The creator's shared stock (docs/shared-stock.md), admin auth as every other hub route:
//   GET  /v1/events/:eventId/stock        the event-wide stock, each kit's allocation and sold, every move
//   PUT  /v1/events/:eventId/allocations  set allocations per kit and SKU, or split evenly
//   POST /v1/events/:eventId/transfers    move units of a SKU from one kit to another (through the hub)
//   POST /v1/events/:eventId/rebalance    the automatic rule once
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ID_LEVEL } from '../../../core/contracts/common.ts';
import { AllocationsBody, RebalanceBody, TransferBody } from '../../../core/contracts/shared-stock.ts';
import type { SharedStock } from '../shared-stock.ts';
import { adminGuard } from './admin.ts';

const EventParams = Type.Object({ eventId: Type.String({ pattern: ID_LEVEL }) });

export interface SharedStockRoutesOptions {
  sharedStock: Pick<SharedStock, 'view' | 'setAllocations' | 'transfer' | 'rebalance'>;
  adminToken: string;
}

export const sharedStockRoutes: FastifyPluginAsyncTypebox<SharedStockRoutesOptions> = async (app, opts) => {
  const { sharedStock } = opts;
  const guard = adminGuard(opts.adminToken);
  app.get('/v1/events/:eventId/stock', { onRequest: guard, schema: { params: EventParams } }, async (req) =>
    sharedStock.view(req.params.eventId),
  );
  app.put(
    '/v1/events/:eventId/allocations',
    { onRequest: guard, schema: { params: EventParams, body: AllocationsBody } },
    async (req) => sharedStock.setAllocations(req.params.eventId, req.body),
  );
  app.post(
    '/v1/events/:eventId/transfers',
    { onRequest: guard, schema: { params: EventParams, body: TransferBody } },
    async (req, reply) => reply.status(202).send(await sharedStock.transfer(req.params.eventId, req.body)),
  );
  app.post(
    '/v1/events/:eventId/rebalance',
    { onRequest: guard, schema: { params: EventParams, body: RebalanceBody } },
    async (req) => sharedStock.rebalance(req.params.eventId, req.body.belowPercent),
  );
};
