// The kit's health and state: GET /healthz (ready to sell? public, `{ok}` only; the reasons for a
// terminal or the admin), GET /v1/status (the merged view, core/contracts/kit-status.ts) and
// GET /metrics (Prometheus), both for a paired terminal or the admin: they name orders, addresses
// and errors a stranger on the venue network has no business reading.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { CheckoutMetrics } from '../metrics.ts';
import type { OrderService } from '../orders.ts';
import { type StatusDeps, statusView } from '../status.ts';
import type { StoreGuard } from '../store-guard.ts';
import { type Credentials, optionalSecurity, terminalSecurity } from './staff.ts';

export interface StatusRoutesOptions {
  status: StatusDeps;
  orders: OrderService;
  guard: StoreGuard;
  metrics: CheckoutMetrics;
  creds: Credentials;
}

const Health = Type.Object({ ok: Type.Boolean(), problems: Type.Optional(Type.Array(Type.String())) });

export const statusRoutes: FastifyPluginAsyncTypebox<StatusRoutesOptions> = async (app, opts) => {
  const { orders, guard, metrics, creds } = opts;
  const staff = creds.require('terminal');

  app.get(
    '/healthz',
    { schema: { response: { 200: Health, 503: Health }, security: optionalSecurity } },
    async (req, reply) => {
      const problems: string[] = [];
      if (!orders.catalog()) problems.push('no catalog loaded');
      if (guard.status().full) problems.push('data volume full');
      const ok = problems.length === 0;
      // the reasons only to staff; a credential that is not valid gets the public answer
      let detailed = false;
      try {
        detailed = creds.role(req) !== 'buyer';
      } catch {}
      return reply.status(ok ? 200 : 503).send(detailed && !ok ? { ok, problems } : { ok });
    },
  );

  // no response schema: fast-json-stringify would drop the run-status files' pass-through fields;
  // tests check the answer against kitStatusView instead
  app.get('/v1/status', { onRequest: staff, schema: { security: terminalSecurity } }, async () =>
    statusView(opts.status),
  );

  app.get('/metrics', { onRequest: staff, schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};
