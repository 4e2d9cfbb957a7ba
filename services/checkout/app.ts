// The checkout HTTP app, composed from its route plugins (routes/) and listened to elsewhere (main.ts),
// so tests use app.inject() against the same thing that serves the kit.
import rateLimit from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyRequest, LogController } from 'fastify';
import { dataLayout } from '../../core/data-dir.ts';
import { KitError } from '../../core/errors.ts';
import { errorEnvelopePlugin, type MappedError } from '../../core/http-errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { DeviceTokens } from './devices.ts';
import { type CheckoutMetrics, createMetrics } from './metrics.ts';
import { catalogRoutes } from './routes/catalog.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { openApiPlugin } from './routes/docs.ts';
import { drainRoutes } from './routes/drain.ts';
import { eventRoutes } from './routes/event.ts';
import { mediaRoutes } from './routes/media.ts';
import { orderRoutes } from './routes/orders.ts';
import { Credentials } from './routes/staff.ts';
import { statusRoutes } from './routes/status.ts';
import { terminalRoutes } from './routes/terminals.ts';
import type { StatusDeps } from './status.ts';

export interface CheckoutDeps extends StatusDeps {
  adminToken: string;
  /** orders per minute per client address without credentials (POPKIT_BUYER_RATE_PER_MIN) */
  buyerRatePerMin: number;
  logger: Logger;
  // -- deps: sale windows, trusted time, admission --
  // -- deps: reservations --
  // -- deps: loyalty --
  // -- deps: drain-proofing --
  /** buyer device tokens (services/checkout/devices.ts) */
  devices: DeviceTokens;
  /** device tokens per minute per client address (POPKIT_DEVICE_ISSUE_PER_MIN) */
  deviceIssuePerMin: number;
  // -- deps: pickup --
}

/** pairing-code redemptions per minute per client address: a few honest retries, no guessing */
const REDEEM_PER_MIN = 10;

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
  for (const f of orders.features) f.metrics?.(metrics.registry);

  await app.register(openApiPlugin);
  await app.register(errorEnvelopePlugin, {
    translate: (err) => guard.translate(err),
    onError: (req: FastifyRequest, mapped: MappedError) => {
      if (req.routeOptions.url === '/v1/orders' && req.method === 'POST')
        metrics.rejections.inc({ code: mapped.code });
    },
    quiet5xx: ['STORE_FULL', 'NOT_READY'],
  });
  // per-route limits only (orders without credentials, pairing redemptions), keyed by client address
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) =>
      new KitError(
        'TOO_MANY_REQUESTS',
        `over ${ctx.max} requests per minute from this address: retry in ${ctx.after}`,
        {
          max: ctx.max,
          retryAfterS: Math.ceil(ctx.ttl / 1000),
        },
      ),
  });
  const creds = new Credentials(adminToken, store);
  await app.register(statusRoutes, { status: deps, orders, guard, metrics, creds });
  await app.register(catalogRoutes, { store, orders, guard, creds });
  await app.register(orderRoutes, { orders, guard, metrics, creds, buyerRatePerMin: deps.buyerRatePerMin });
  await app.register(eventRoutes, { store, orders, guard, creds });
  await app.register(terminalRoutes, { store, guard, creds, redeemPerMin: REDEEM_PER_MIN });
  await app.register(mediaRoutes, { hlsDir: dataLayout(deps.dataDir).hls });
  await app.register(dashboardRoutes);
  // -- routes: sale windows, trusted time, admission --
  // -- routes: reservations --
  // -- routes: loyalty --
  // -- routes: drain-proofing --
  await app.register(drainRoutes, {
    store,
    orders,
    guard,
    creds,
    devices: deps.devices,
    deviceIssuePerMin: deps.deviceIssuePerMin,
  });
  // -- routes: pickup --
  return app;
}

export type CheckoutApp = Awaited<ReturnType<typeof buildApp>>;
