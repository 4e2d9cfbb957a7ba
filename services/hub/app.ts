// The hub's HTTP API (CONTRACT.md "Hub HTTP API"): built here, listened to by HubService.

import type { KeyObject } from 'node:crypto';
import { timingSafeEqual } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { signCatalog } from '../../core/catalog-signing.ts';
import { HubCatalogBody } from '../../core/contracts/catalog.ts';
import { ID_LEVEL } from '../../core/contracts/common.ts';
import { isKitError, KitError } from '../../core/errors.ts';
import { rootLogger } from '../../core/logger.ts';
import type { PaymentGateway } from './gateway.ts';
import type { HubIngest } from './ingest.ts';
import type { Ledger } from './ledger.ts';

export interface HubAppDeps {
  ledger: Ledger;
  ingest: Pick<HubIngest, 'connected' | 'publishCatalog' | 'stats' | 'sharedSubscription'>;
  gateway: PaymentGateway;
  adminToken: string;
  signingKey: KeyObject;
  logger?: boolean;
}

const EventParams = Type.Object({ eventId: Type.String({ pattern: ID_LEVEL }) });
const KitParams = Type.Object({ kitId: Type.String({ pattern: ID_LEVEL }) });
const OrdersQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
  after: Type.Optional(Type.String({ maxLength: 64 })),
});
/** PUT body: the catalog; eventId comes from the path, version defaults to the latest + 1 */
const CatalogBody = HubCatalogBody;

export function buildHubApp(deps: HubAppDeps) {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: rootLogger().child({ module: 'hub-http' }) } : { logger: false }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 4 * 1024 * 1024,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const expected = Buffer.from(`Bearer ${deps.adminToken}`);
  const admin = async (req: FastifyRequest) => {
    const got = Buffer.from(req.headers.authorization ?? '');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new KitError('UNAUTHORIZED', 'admin bearer token required');
    }
  };

  app.setErrorHandler((err: unknown, _req, reply: FastifyReply) => {
    if (isKitError(err)) return reply.status(err.status).send(err.toEnvelope());
    const e = err as { validation?: unknown; statusCode?: number; code?: string; message?: string };
    if (e.validation) {
      return reply
        .status(400)
        .send({ error: { code: 'VALIDATION', message: e.message ?? 'invalid request' } });
    }
    if (e.statusCode === 413) {
      return reply.status(413).send({ error: { code: 'BODY_TOO_LARGE', message: 'request body too large' } });
    }
    if (e.statusCode === 415) {
      return reply
        .status(415)
        .send({ error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: e.message ?? 'unsupported media type' } });
    }
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return reply
        .status(e.statusCode)
        .send({ error: { code: 'BAD_REQUEST', message: e.message ?? 'bad request' } });
    }
    app.log.error({ err }, 'unhandled');
    return reply.status(500).send({ error: { code: 'INTERNAL', message: 'internal error' } });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url}` } }),
  );

  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'popkit_hub_' });
  new Gauge({
    name: 'popkit_hub_broker_connected',
    help: '1 while the worker is connected to the broker',
    registers: [registry],
    collect() {
      this.set(deps.ingest.connected ? 1 : 0);
    },
  });
  new Counter({
    name: 'popkit_hub_entries_total',
    help: 'kit entries committed (each delivery counts)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(deps.ingest.stats.entries);
    },
  });
  new Counter({
    name: 'popkit_hub_orders_total',
    help: 'orders by outcome at the ledger: new, or a duplicate delivery that changed nothing',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'new' }, deps.ledger.counters.ordersNew);
      this.inc({ result: 'duplicate' }, deps.ledger.counters.ordersDuplicate);
    },
  });
  new Counter({
    name: 'popkit_hub_refused_total',
    help: 'kit messages refused, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(deps.ingest.stats.refused)) this.inc({ reason }, n);
    },
  });

  app.get('/healthz', async (_req, reply) => {
    let db = 'ok';
    try {
      await deps.ledger.ping();
    } catch (err) {
      db = `down: ${(err as Error).message}`;
    }
    const broker = deps.ingest.connected ? 'ok' : 'down';
    const ok = db === 'ok' && broker === 'ok';
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', db, broker });
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  // the pre-flight checklist validates token exchange with this: a real round trip through the adapter
  app.get('/v1/gateway', async () => {
    const t0 = performance.now();
    let ok = false;
    let error: string | undefined;
    try {
      const r = await deps.gateway.exchange({
        idempotencyKey: `probe:${Date.now()}:${Math.random()}`,
        token: deps.gateway.testToken,
        amountCents: 0,
        currency: 'EUR',
      });
      ok = r.outcome === 'approved';
      if (!ok) error = 'test token was declined';
    } catch (err) {
      error = (err as Error).message;
    }
    return {
      name: deps.gateway.name,
      sandbox: deps.gateway.sandbox,
      ok,
      latencyMs: Math.round((performance.now() - t0) * 100) / 100,
      ...(error ? { error } : {}),
    };
  });

  app.get('/v1/kits', { onRequest: admin }, async () => ({ kits: await deps.ledger.listKits() }));

  app.get(
    '/v1/kits/:kitId/orders',
    { onRequest: admin, schema: { params: KitParams, querystring: OrdersQuery } },
    async (req) => deps.ledger.kitOrders(req.params.kitId, req.query),
  );

  app.put(
    '/v1/events/:eventId/catalog',
    { onRequest: admin, schema: { params: EventParams, body: CatalogBody } },
    async (req, reply) => {
      const { eventId } = req.params;
      const body = req.body;
      if (body.eventId !== undefined && body.eventId !== eventId) {
        throw new KitError('VALIDATION', `body eventId ${body.eventId} does not match the path's ${eventId}`);
      }
      const version = body.version ?? (await deps.ledger.latestCatalogVersion(eventId)) + 1;
      const catalog = { ...body, eventId, version };
      const signed = signCatalog(deps.signingKey, catalog);
      await deps.ledger.storeCatalog(eventId, version, signed);
      let published = true;
      try {
        await deps.ingest.publishCatalog(eventId, signed);
      } catch {
        // stored: the worker republishes the latest catalogs when it reconnects
        published = false;
      }
      return reply.status(published ? 200 : 202).send({ eventId, version, published });
    },
  );

  return app;
}

export type HubApp = ReturnType<typeof buildHubApp>;
