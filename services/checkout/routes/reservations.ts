// Reservations (docs/drops.md#reservations): POST /v1/reservations holds units (201), GET reads a hold
// (an expired one is ended on read), DELETE releases it early. Buyers without credentials may reserve,
// rate limited per client address like orders; a hold's id is its only key (128 bits, unguessable).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { KitError } from '../../../core/errors.ts';
import { ADMISSION_HEADERS, type AdmissionGate, type Ticket } from '../admission.ts';
import { type ReservationService, reservationView } from '../reservations.ts';
import {
  DeviceHeaders,
  ErrorEnvelope,
  errorResponses,
  ReservationBody,
  ReservationIdParams,
  ReservationOut,
} from '../schemas.ts';
import type { StoreGuard } from '../store-guard.ts';
import { type Credentials, optionalSecurity } from './staff.ts';

export interface ReservationRoutesOptions {
  reservations: ReservationService;
  guard: StoreGuard;
  creds: Credentials;
  /** reservations per minute per client address for callers without credentials */
  buyerRatePerMin: number;
  /** the fair admission line buyers' orders use (absent: none) */
  admission?: AdmissionGate;
}

export const reservationRoutes: FastifyPluginAsyncTypebox<ReservationRoutesOptions> = async (app, opts) => {
  const { reservations, guard, creds } = opts;

  app.post(
    '/v1/reservations',
    {
      config: { rateLimit: { max: opts.buyerRatePerMin, timeWindow: 60_000, allowList: creds.isStaff } },
      schema: {
        body: ReservationBody,
        headers: DeviceHeaders,
        response: {
          201: ReservationOut,
          ...errorResponses,
          410: ErrorEnvelope,
          429: ErrorEnvelope,
          503: ErrorEnvelope,
          507: ErrorEnvelope,
        },
        security: optionalSecurity,
      },
    },
    async (req, reply) => {
      const role = creds.role(req);
      guard.assertWritable();
      const device = req.headers['x-popkit-device'];
      // buyers' holds at a drop's opening take a place in the same fair line as their orders
      const gate = opts.admission;
      let ticket: Ticket | undefined;
      let view: Awaited<ReturnType<ReservationService['reserve']>>;
      try {
        if (gate?.line.enabled && role === 'buyer') {
          try {
            ticket = await gate.admit(req.body.lines, false);
          } catch (err) {
            const d = (err as KitError).details;
            if ((err as KitError).code === 'ADMISSION_FULL' && d)
              reply.header('retry-after', String(d['retryAfterS']));
            throw err;
          }
          reply.header(ADMISSION_HEADERS.position, String(ticket.position));
        }
        view = await reservations.reserve(req.body.lines, {
          role,
          ip: req.ip,
          ...(device ? { deviceToken: device } : {}),
          ...(req.headers['user-agent'] !== undefined ? { userAgent: req.headers['user-agent'] } : {}),
        });
      } finally {
        ticket?.release();
      }
      reply.header('location', `/v1/reservations/${view.id}`);
      return reply.status(201).send(view);
    },
  );

  app.get(
    '/v1/reservations/:id',
    {
      schema: {
        params: ReservationIdParams,
        response: { 200: ReservationOut, ...errorResponses },
      },
    },
    async (req) => {
      const rec = await reservations.get(req.params.id);
      if (!rec) throw new KitError('NOT_FOUND', `no reservation ${req.params.id}`);
      return reservationView(rec);
    },
  );

  app.delete(
    '/v1/reservations/:id',
    {
      schema: {
        params: ReservationIdParams,
        response: { 200: ReservationOut, ...errorResponses, 410: ErrorEnvelope, 507: ErrorEnvelope },
      },
    },
    async (req) => {
      guard.assertWritable();
      return reservationView(await reservations.release(req.params.id));
    },
  );
};
