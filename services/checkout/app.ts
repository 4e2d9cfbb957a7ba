// The checkout HTTP app, composed from its route plugins (routes/) and listened to elsewhere (main.ts),
// so tests use app.inject() against the same thing that serves the kit.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyRequest, LogController } from 'fastify';
import { dataLayout } from '../../core/data-dir.ts';
import { errorEnvelopePlugin, type MappedError } from '../../core/http-errors.ts';
import type { Logger } from '../../core/logger.ts';
import { type CheckoutMetrics, createMetrics } from './metrics.ts';
import { catalogRoutes } from './routes/catalog.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { openApiPlugin } from './routes/docs.ts';
import { eventRoutes } from './routes/event.ts';
import { mediaRoutes } from './routes/media.ts';
import { orderRoutes } from './routes/orders.ts';
import { statusRoutes } from './routes/status.ts';
import type { StatusDeps } from './status.ts';

export interface CheckoutDeps extends StatusDeps {
  adminToken: string;
  logger: Logger;
}

export async function buildApp(deps: CheckoutDeps) {
  const { store, orders, guard, adminToken } = deps;
  const app = Fastify({
    loggerInstance: deps.logger,
    // per-request lines cost CPU on the hot path (and battery); errors are still logged
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    // unknown fields and wrong types are refused, not silently fixed
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>();
  const metrics: CheckoutMetrics = createMetrics(store, deps.dataDir);

  await app.register(openApiPlugin);
  await app.register(errorEnvelopePlugin, {
    translate: (err) => guard.translate(err),
    onError: (req: FastifyRequest, mapped: MappedError) => {
      if (req.routeOptions.url === '/v1/orders' && req.method === 'POST')
        metrics.rejections.inc({ code: mapped.code });
    },
    quiet5xx: ['STORE_FULL', 'NOT_READY'],
  });
  await app.register(statusRoutes, { status: deps, orders, guard, metrics });
  await app.register(catalogRoutes, { store, orders, guard, adminToken });
  await app.register(orderRoutes, { orders, guard, metrics });
  await app.register(eventRoutes, { store, orders, guard, adminToken });
  await app.register(mediaRoutes, { hlsDir: dataLayout(deps.dataDir).hls });
  await app.register(dashboardRoutes);
  return app;
}

export type CheckoutApp = Awaited<ReturnType<typeof buildApp>>;
