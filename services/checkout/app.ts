// The checkout HTTP app, composed from its route plugins (routes/) and listened to elsewhere (main.ts),
// so tests use app.inject() against the same thing that serves the kit.
import rateLimit from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyRequest, LogController } from 'fastify';
import { Counter } from 'prom-client';
import type { ClockTrust } from '../../core/clock-trust.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { KitError } from '../../core/errors.ts';
import { errorEnvelopePlugin, type MappedError } from '../../core/http-errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { AdmissionGate } from './admission.ts';
import { consentRoutes } from './audience/consent.ts';
import type { ViewerTracker } from './audience/tracker.ts';
import type { DeviceTokens } from './devices.ts';
import type { LoyaltyFeature } from './loyalty.ts';
import { type CheckoutMetrics, createMetrics } from './metrics.ts';
import { PickupCodeAccess } from './order-view.ts';
import type { PickupFeature } from './pickup.ts';
import type { ReservationService } from './reservations.ts';
import { buyerRoutes } from './routes/buyer.ts';
import { catalogRoutes } from './routes/catalog.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { openApiPlugin } from './routes/docs.ts';
import { drainRoutes } from './routes/drain.ts';
import { eventRoutes } from './routes/event.ts';
import { loyaltyRoutes } from './routes/loyalty.ts';
import { mediaRoutes } from './routes/media.ts';
import { mediaCacheRoutes } from './routes/media-cache.ts';
import { orderRoutes } from './routes/orders.ts';
import { pickupRoutes } from './routes/pickup.ts';
import { reservationRoutes } from './routes/reservations.ts';
import { screenRoutes } from './routes/screen.ts';
import { seriesRoutes } from './routes/series.ts';
import { Credentials } from './routes/staff.ts';
import { statusRoutes } from './routes/status.ts';
import { terminalRoutes } from './routes/terminals.ts';
import { clockRoutes } from './sale-windows.ts';
import { SeriesRecorder } from './series/recorder.ts';
import { LiveSignals } from './series/signals.ts';
import type { StatusDeps } from './status.ts';

export interface CheckoutDeps extends StatusDeps {
  adminToken: string;
  /** orders per minute per client address without credentials (POPKIT_BUYER_RATE_PER_MIN) */
  buyerRatePerMin: number;
  logger: Logger;
  // sale windows, trusted time, admission
  /** the clock trust (POST /v1/clock/trust); absent: no clock routes */
  clockTrust?: ClockTrust;
  /** the admission line for buyers' orders (and reservations) */
  admission?: AdmissionGate;
  // reservations
  /** cart holds (absent: no /v1/reservations routes) */
  reservations?: ReservationService;
  // loyalty
  /** the loyalty feature (main.ts) and its preview's rate per client address */
  loyalty?: LoyaltyFeature;
  loyaltyCheckRatePerMin?: number;
  // drain-proofing
  /** buyer device tokens (services/checkout/devices.ts); absent: no device or drop-report routes */
  devices?: DeviceTokens;
  /** device tokens per minute per client address (POPKIT_DEVICE_ISSUE_PER_MIN) */
  deviceIssuePerMin?: number;
  // pickup
  /** the pickup feature (also in `orders.features`): its routes are served when it is there */
  pickup?: PickupFeature;
  // audience
  /** viewers of /live (absent: not counted); the series recorder reads its ViewerCounts */
  viewers?: ViewerTracker;
  /** consent answers per minute per client address (POPKIT_CONSENT_RATE_PER_MIN) */
  consentRatePerMin?: number;
  // live series
  /** the per-second recorder's settings (POPKIT_SERIES, POPKIT_SERIES_RETENTION_H); absent: not recorded */
  series?: { retentionH: number };
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
  // live series: the signals /metrics and the recorder share; viewers come from the audience
  // feature's tracker (`deps.viewers`, declared with it) when there is one
  const live = new LiveSignals({
    dataDir: deps.dataDir,
    viewers: deps.viewers,
    reservations: deps.reservations,
  });
  const metrics: CheckoutMetrics = createMetrics(store, deps.dataDir, live);
  for (const f of orders.features) f.metrics?.(metrics.registry);

  await app.register(openApiPlugin);
  await app.register(errorEnvelopePlugin, {
    translate: (err) => guard.translate(err),
    onError: (req: FastifyRequest, mapped: MappedError) => {
      if (req.routeOptions.url === '/v1/orders' && req.method === 'POST')
        metrics.rejections.inc({ code: mapped.code });
    },
    quiet5xx: ['STORE_FULL', 'NOT_READY', 'ADMISSION_FULL', 'CLOCK_UNTRUSTED'],
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
  const pickupCodes = new PickupCodeAccess(creds, deps.devices);
  await app.register(orderRoutes, {
    orders,
    guard,
    metrics,
    creds,
    buyerRatePerMin: deps.buyerRatePerMin,
    pickupCodes,
    ...(deps.admission ? { admission: deps.admission } : {}),
  });
  await app.register(eventRoutes, { store, orders, guard, creds });
  await app.register(terminalRoutes, { store, guard, creds, redeemPerMin: REDEEM_PER_MIN });
  await app.register(mediaRoutes, {
    hlsDir: dataLayout(deps.dataDir).hls,
    ...(deps.viewers ? { viewers: deps.viewers } : {}),
  });
  await app.register(mediaCacheRoutes, { dir: dataLayout(deps.dataDir).productMedia });
  await app.register(dashboardRoutes);
  await app.register(buyerRoutes, { orders });
  await app.register(screenRoutes, { store, orders });
  // live series
  await app.register(seriesRoutes, { store, creds });
  if (deps.series) {
    const recorder = new SeriesRecorder({
      store,
      signals: live,
      catalog: () => orders.catalog()?.catalog,
      retentionH: deps.series.retentionH,
      logger: deps.logger,
    });
    new Counter({
      name: 'popkit_series_recorder_seconds_total',
      help: "CPU time the series recorder's ticks and batch writes took on checkout's thread (seconds)",
      registers: [metrics.registry],
      collect() {
        this.reset();
        this.inc(Number(recorder.costNs) / 1e9);
      },
    });
    const close = recorder.start();
    app.addHook('onClose', close);
  }
  // sale windows, trusted time, admission
  if (deps.clockTrust) await app.register(clockRoutes, { trust: deps.clockTrust, creds });
  // reservations
  if (deps.reservations)
    await app.register(reservationRoutes, {
      reservations: deps.reservations,
      guard,
      creds,
      buyerRatePerMin: deps.buyerRatePerMin,
      ...(deps.admission ? { admission: deps.admission } : {}),
    });
  // loyalty
  if (deps.loyalty)
    await app.register(loyaltyRoutes, {
      orders,
      loyalty: deps.loyalty,
      creds,
      checkRatePerMin: deps.loyaltyCheckRatePerMin ?? 30,
    });
  // drain-proofing
  if (deps.devices)
    await app.register(drainRoutes, {
      store,
      orders,
      guard,
      creds,
      devices: deps.devices,
      deviceIssuePerMin: deps.deviceIssuePerMin ?? 6,
    });
  // pickup
  if (deps.pickup)
    await app.register(pickupRoutes, { store, pickup: deps.pickup, orders, guard, creds, pickupCodes });
  // audience: consent needs the buyer's device token
  if (deps.devices)
    await app.register(consentRoutes, {
      store,
      guard,
      devices: deps.devices,
      ratePerMin: deps.consentRatePerMin ?? 30,
    });
  return app;
}

export type CheckoutApp = Awaited<ReturnType<typeof buildApp>>;
