// The kit's health and state: GET /healthz (ready to sell?), GET /v1/status (the merged view,
// core/contracts/kit-status.ts) and GET /metrics (Prometheus).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { CheckoutMetrics } from '../metrics.ts';
import type { OrderService } from '../orders.ts';
import { ErrorEnvelope } from '../schemas.ts';
import { type StatusDeps, statusView } from '../status.ts';
import type { StoreGuard } from '../store-guard.ts';

export interface StatusRoutesOptions {
  status: StatusDeps;
  orders: OrderService;
  guard: StoreGuard;
  metrics: CheckoutMetrics;
}

export const statusRoutes: FastifyPluginAsyncTypebox<StatusRoutesOptions> = async (app, opts) => {
  const { orders, guard, metrics } = opts;

  app.get(
    '/healthz',
    { schema: { response: { 200: Type.Object({ status: Type.String() }), 503: ErrorEnvelope } } },
    async (_req, reply) => {
      const problems: string[] = [];
      if (!orders.catalog()) problems.push('no catalog loaded');
      if (guard.status().full) problems.push('data volume full');
      if (problems.length > 0) {
        return reply.status(503).send({ error: { code: 'NOT_READY', message: problems.join('; ') } });
      }
      return { status: 'ok' };
    },
  );

  // no response schema: fast-json-stringify would drop the run-status files' pass-through fields;
  // tests check the answer against kitStatusView instead
  app.get('/v1/status', async () => statusView(opts.status));

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};
