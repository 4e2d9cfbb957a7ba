// The checkout HTTP app, built from its collaborators and listened to elsewhere (main.ts), so tests use
// app.inject() against the same thing that serves the kit.
import { timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { type TSchema, Type } from '@sinclair/typebox';
import fastJson from 'fast-json-stringify';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { isKitError, KitError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { readServiceStatus, statusAgeMs } from '../../core/run-status.ts';
import {
  type EventState,
  itemsWithStock,
  type KitStore,
  outboxCounts,
  readRecentDeclines,
  readStoredCatalog,
  replaceCatalog,
  type StoredOrder,
  setEventState,
} from '../../core/store/index.ts';
import { type CheckoutMetrics, createMetrics } from './metrics.ts';
import type { OrderService } from './orders.ts';
import {
  CatalogInput,
  CatalogOut,
  ErrorEnvelope,
  EventStartBody,
  IdempotencyHeaders,
  OrderBody,
  OrderIdParams,
  OrderOut,
} from './schemas.ts';
import type { StoreGuard } from './store-guard.ts';

export interface CheckoutDeps {
  store: KitStore;
  orders: OrderService;
  guard: StoreGuard;
  kitId: string;
  board: string;
  dataDir: string;
  adminToken: string;
  logger: Logger;
}

const errorResponses = { 400: ErrorEnvelope, 401: ErrorEnvelope, 404: ErrorEnvelope, 409: ErrorEnvelope };
const STALE_STATUS_MS = 10_000;

function publicOrder(o: StoredOrder) {
  const { kitId: _k, idempotencyKey: _i, ...rest } = o;
  return rest;
}

export async function buildApp(deps: CheckoutDeps) {
  const { store, orders, guard, logger } = deps;
  const app = Fastify({
    loggerInstance: logger,
    // per-request lines cost CPU on the hot path (and battery); errors are still logged
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    // unknown fields and wrong types are refused, not silently fixed
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>();

  const metrics: CheckoutMetrics = createMetrics(store, deps.dataDir);
  const serializeCatalog = TypeCompilerJson(CatalogOut);
  const adminTokenBuf = Buffer.from(deps.adminToken);

  await app.register(swagger, {
    openapi: {
      info: { title: 'Popkit kit API', version: '1' },
      components: { securitySchemes: { admin: { type: 'http', scheme: 'bearer' } } },
    },
  });

  app.setErrorHandler((err: FastifyError | KitError | Error, req: FastifyRequest, reply: FastifyReply) => {
    const mapped = mapError(err, guard);
    if (mapped.status >= 500 && mapped.code !== 'STORE_FULL' && mapped.code !== 'NOT_READY') {
      req.log.error({ err }, 'unhandled error');
    }
    if (req.routeOptions.url === '/v1/orders' && req.method === 'POST')
      metrics.rejections.inc({ code: mapped.code });
    reply.status(mapped.status).send({
      error: {
        code: mapped.code,
        message: mapped.message,
        ...(mapped.details ? { details: mapped.details } : {}),
      },
    });
  });
  app.setNotFoundHandler((req, reply) => {
    reply
      .status(404)
      .send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });

  const requireAdmin = async (req: FastifyRequest) => {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(h);
    const given = Buffer.from(m?.[1] ?? '');
    if (!m || given.length !== adminTokenBuf.length || !timingSafeEqual(given, adminTokenBuf)) {
      throw new KitError('UNAUTHORIZED', 'staff endpoint: send Authorization: Bearer <POPKIT_ADMIN_TOKEN>');
    }
  };

  app.get('/docs/openapi.json', { schema: { hide: true } }, async () => app.swagger());

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

  // the serialized catalog is kept until the catalog or the stock changes: reads during a drop are
  // many times the orders, and each order changes the answer at most once
  let catalogBody: { key: string; json: string } | undefined;
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
      const key = `${cat.stamp}#${orders.stockEpoch}`;
      if (catalogBody?.key !== key) {
        const c = cat.catalog;
        catalogBody = {
          key,
          json: serializeCatalog({
            version: c.version,
            eventId: c.eventId,
            currency: c.currency,
            source: c.source,
            updatedAt: c.updatedAt,
            items: itemsWithStock(store, c),
            bundles: c.bundles,
          }),
        };
      }
      return reply
        .header('content-type', 'application/json; charset=utf-8')
        .serializer((p: string) => p)
        .send(catalogBody.json as never);
    },
  );

  app.put(
    '/v1/catalog',
    {
      onRequest: requireAdmin,
      schema: {
        body: CatalogInput,
        response: { 200: CatalogOut, ...errorResponses },
        security: [{ admin: [] }],
      },
    },
    async (req) => {
      guard.assertWritable();
      await replaceCatalog(store, req.body, { source: 'local' });
      const c = readStoredCatalog(store);
      if (!c) throw new KitError('INTERNAL', 'catalog vanished after write');
      return { ...c, items: itemsWithStock(store, c) };
    },
  );

  app.post(
    '/v1/orders',
    {
      schema: {
        body: OrderBody,
        headers: IdempotencyHeaders,
        response: { 200: OrderOut, 201: OrderOut, ...errorResponses, 422: ErrorEnvelope, 507: ErrorEnvelope },
      },
    },
    async (req, reply) => {
      const started = process.hrtime.bigint();
      guard.assertWritable();
      let result: Awaited<ReturnType<OrderService['create']>>;
      try {
        result = await orders.create(req.body, req.headers['idempotency-key']);
      } catch (err) {
        metrics.latency.observe({ outcome: 'rejected' }, Number(process.hrtime.bigint() - started) / 1e9);
        throw err;
      }
      metrics.latency.observe({ outcome: 'accepted' }, Number(process.hrtime.bigint() - started) / 1e9);
      if (!result.replayed) metrics.orders.inc({ payment: result.order.payment.method });
      reply.header('location', `/v1/orders/${result.order.id}`);
      if (result.replayed) reply.header('idempotent-replayed', 'true');
      return reply.status(result.replayed ? 200 : 201).send(publicOrder(result.order));
    },
  );

  app.get(
    '/v1/orders/:id',
    { schema: { params: OrderIdParams, response: { 200: OrderOut, ...errorResponses } } },
    async (req) => {
      const order = orders.get(req.params.id);
      if (!order) throw new KitError('NOT_FOUND', `no order ${req.params.id}`);
      return publicOrder(order);
    },
  );

  const setEvent = async (live: boolean, eventId?: string): Promise<EventState> => {
    guard.assertWritable();
    const catalogEvent = orders.catalog()?.catalog.eventId ?? null;
    return setEventState(store, live, eventId, catalogEvent);
  };

  const EventOut = Type.Object({
    live: Type.Boolean(),
    eventId: Type.Union([Type.String(), Type.Null()]),
    startedAt: Type.Union([Type.String(), Type.Null()]),
    stoppedAt: Type.Union([Type.String(), Type.Null()]),
  });
  app.post(
    '/v1/event/start',
    {
      onRequest: requireAdmin,
      schema: {
        body: EventStartBody,
        response: { 200: EventOut, ...errorResponses },
        security: [{ admin: [] }],
      },
    },
    async (req) => setEvent(true, req.body?.eventId),
  );
  app.post(
    '/v1/event/stop',
    {
      onRequest: requireAdmin,
      schema: { response: { 200: EventOut, ...errorResponses }, security: [{ admin: [] }] },
    },
    async () => setEvent(false),
  );

  app.get('/v1/status', async () => statusView(deps));

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  const hlsDir = path.join(deps.dataDir, 'hls');
  app.get(
    '/live/:file',
    {
      schema: {
        params: Type.Object({ file: Type.String({ pattern: '^[A-Za-z0-9_-]+\\.(m3u8|ts|m4s|mp4)$' }) }),
      },
    },
    async (req, reply) => {
      const file = path.join(hlsDir, req.params.file);
      let data: Buffer;
      try {
        data = await fs.promises.readFile(file);
      } catch {
        throw new KitError(
          'NOT_FOUND',
          req.params.file.endsWith('.m3u8') ? 'no live stream right now' : 'segment gone',
        );
      }
      const playlist = file.endsWith('.m3u8');
      reply.header('content-type', playlist ? 'application/vnd.apple.mpegurl' : 'video/mp2t');
      reply.header('cache-control', playlist ? 'no-cache' : 'max-age=60');
      reply.header('access-control-allow-origin', '*');
      return reply.send(data);
    },
  );

  const dashboard = path.join(import.meta.dirname, 'dashboard', 'index.html');
  app.get('/', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', 'text/html; charset=utf-8');
    return reply.send(await fs.promises.readFile(dashboard));
  });

  return app;
}

/** GET /v1/status: checkout's own view plus what kitd, sync and media last wrote to their status files. */
export function statusView(deps: CheckoutDeps) {
  const { orders, store, dataDir } = deps;
  const kitd = readServiceStatus(dataDir, 'kitd');
  const sync = readServiceStatus(dataDir, 'sync');
  const media = readServiceStatus(dataDir, 'media');
  const fresh = (s: typeof kitd) => (s && statusAgeMs(s) < STALE_STATUS_MS ? s : undefined);
  const cat = orders.catalog()?.catalog;
  const event = orders.eventState();
  const risk = orders.riskView();
  const backlog = outboxCounts(store);
  const k = fresh(kitd);
  return {
    kitId: deps.kitId,
    board: deps.board,
    state: (k?.['state'] as string | undefined) ?? (event.live ? 'live' : cat ? 'ready' : 'booting'),
    event,
    catalog: cat
      ? { version: cat.version, eventId: cat.eventId, source: cat.source, items: cat.items.length }
      : null,
    leds: k?.['leds'] ?? null,
    power: k?.['power'] ?? null,
    health: k?.['health'] ?? null,
    updateLock: k?.['updateLock'] ?? null,
    kitd: kitd ? { ...kitd, stale: !k } : null,
    sync: {
      link: fresh(sync)?.['link'] ?? (sync ? 'unknown' : 'not-running'),
      backlog,
      ...(sync ? { detail: sync, stale: !fresh(sync) } : {}),
    },
    media: media ? { ...media, stale: !fresh(media) } : null,
    risk: { ...risk, ratio: risk.ratio },
    declines: readRecentDeclines(store),
    store: deps.guard.status(),
  };
}

interface MappedError {
  status: number;
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

/** Every error the API can produce, mapped once to a status and the CONTRACT envelope. */
export function mapError(err: unknown, guard?: StoreGuard): MappedError {
  const translated = guard ? guard.translate(err) : err;
  if (isKitError(translated)) {
    return {
      status: translated.status,
      code: translated.code,
      message: translated.message,
      ...(translated.details ? { details: translated.details } : {}),
    };
  }
  const e = translated as FastifyError & { validation?: unknown; validationContext?: string };
  if (e.validation) {
    return { status: 400, code: 'VALIDATION', message: `${e.validationContext ?? 'request'}: ${e.message}` };
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: 'BODY_TOO_LARGE', message: 'request body over the limit' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'send application/json' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, code: 'BAD_REQUEST', message: 'empty JSON body' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, code: 'BAD_REQUEST', message: 'malformed JSON body' };
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    return { status, code: status === 400 ? 'BAD_REQUEST' : (e.code ?? 'BAD_REQUEST'), message: e.message };
  }
  return { status: 500, code: 'INTERNAL', message: 'internal error' };
}
function TypeCompilerJson(schema: TSchema): (v: unknown) => string {
  return fastJson(schema as unknown as Parameters<typeof fastJson>[0]);
}

export type CheckoutApp = Awaited<ReturnType<typeof buildApp>>;
