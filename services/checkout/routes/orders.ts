// Orders: POST /v1/orders (201 new, 200 idempotent replay) and GET /v1/orders/:id. Buyers without
// credentials go through fair admission (admission.ts, docs/drops.md#fair-admission): an answer a cheap
// read knows comes at once, the rest take a place in one FIFO line; staff terminals skip the line.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { KitError } from '../../../core/errors.ts';
import { ADMISSION_HEADERS, type AdmissionGate, type Ticket } from '../admission.ts';
import type { CheckoutMetrics } from '../metrics.ts';
import { type PickupCodeAccess, publicOrder } from '../order-view.ts';
import type { CreateResult, OrderService } from '../orders.ts';
import {
  ErrorEnvelope,
  errorResponses,
  IdempotencyHeaders,
  OrderBody,
  OrderIdParams,
  OrderOut,
} from '../schemas.ts';
import type { StoreGuard } from '../store-guard.ts';
import { type Credentials, optionalSecurity } from './staff.ts';

export interface OrderRoutesOptions {
  orders: OrderService;
  guard: StoreGuard;
  metrics: CheckoutMetrics;
  creds: Credentials;
  /** orders per minute per client address for callers without credentials */
  buyerRatePerMin: number;
  /** who may read a pickup code (absent: everyone, for apps built without devices) */
  pickupCodes?: PickupCodeAccess;
  /** the admission line for buyers (absent: none) */
  admission?: AdmissionGate;
}

export const orderRoutes: FastifyPluginAsyncTypebox<OrderRoutesOptions> = async (app, opts) => {
  const { orders, guard, metrics, creds } = opts;
  const seconds = (started: bigint) => Number(process.hrtime.bigint() - started) / 1e9;

  app.post(
    '/v1/orders',
    {
      config: { rateLimit: { max: opts.buyerRatePerMin, timeWindow: 60_000, allowList: creds.isStaff } },
      schema: {
        body: OrderBody,
        headers: IdempotencyHeaders,
        response: {
          200: OrderOut,
          201: OrderOut,
          ...errorResponses,
          403: ErrorEnvelope,
          410: ErrorEnvelope,
          422: ErrorEnvelope,
          429: ErrorEnvelope,
          503: ErrorEnvelope,
          507: ErrorEnvelope,
        },
        security: optionalSecurity,
      },
    },
    async (req, reply) => {
      const started = process.hrtime.bigint();
      const role = creds.role(req);
      const buyer = role === 'buyer';
      if (buyer && req.body.payment.method === 'cash') {
        throw new KitError('FORBIDDEN', 'cash orders need a paired staff terminal (popkit terminal pair)', {
          required: 'terminal',
          payment: 'cash',
        });
      }
      guard.assertWritable();
      let result: CreateResult;
      let ticket: Ticket | undefined;
      try {
        const key = req.headers['idempotency-key'];
        const gate = opts.admission;
        // a replay answers the first order whatever the stock says now: it needs no place; with
        // admission off (concurrency 0) orders take the flat path, as before the line existed
        if (gate?.line.enabled && buyer && !(key && gate.replays(key))) {
          const holds = req.body.reservationId !== undefined;
          try {
            ticket = await gate.admit(req.body.lines, holds);
          } catch (err) {
            const d = (err as KitError).details;
            if ((err as KitError).code === 'ADMISSION_FULL' && d) {
              reply.header('retry-after', String(d['retryAfterS']));
              reply.header(ADMISSION_HEADERS.position, String(d['position']));
            }
            throw err;
          }
          reply.header(ADMISSION_HEADERS.arrival, String(ticket.arrival));
          reply.header(ADMISSION_HEADERS.admitted, String(ticket.admitted));
          reply.header(ADMISSION_HEADERS.position, String(ticket.position));
          // what sold out while this one waited is answered from the read, not a write transaction
          if (ticket.position > 0) gate.precheck(req.body.lines, holds);
        }
        const device = req.headers['x-popkit-device'];
        result = await orders.create(req.body, key, {
          role,
          ip: req.ip,
          ...(device ? { deviceToken: device } : {}),
          ...(req.headers['user-agent'] !== undefined ? { userAgent: req.headers['user-agent'] } : {}),
        });
      } catch (err) {
        metrics.latency.observe({ outcome: 'rejected' }, seconds(started));
        throw err;
      } finally {
        ticket?.release();
      }
      metrics.accepted(result.order, result.replayed, seconds(started));
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
      return publicOrder(opts.pickupCodes ? opts.pickupCodes.view(req, order) : order);
    },
  );
};
