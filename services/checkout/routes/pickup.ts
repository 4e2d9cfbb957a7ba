// Pickup (docs/drops.md#pickup): the receipt's QR (GET /v1/orders/:id/pickup.svg, public like the
// order itself), the handover by code (POST /v1/pickups, terminal or admin, wrong codes limited) and
// the queue (GET /v1/pickups, terminal or admin).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import { KitError } from '../../../core/errors.ts';
import { type KitStore, terminalForToken } from '../../../core/store/index.ts';
import type { OrderService } from '../orders.ts';
import type { PickupFeature } from '../pickup.ts';
import {
  ErrorEnvelope,
  errorResponses,
  OrderIdParams,
  PickupBody,
  PickupOut,
  PickupQueueOut,
  PickupQueueQuery,
} from '../schemas.ts';
import type { StoreGuard } from '../store-guard.ts';
import { type Credentials, terminalSecurity } from './staff.ts';

export interface PickupRoutesOptions {
  store: KitStore;
  pickup: PickupFeature;
  orders: OrderService;
  guard: StoreGuard;
  creds: Credentials;
}

const QUEUE_LIMIT = 500;

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The code's QR with the code written under it, one self-contained SVG (no fonts or assets fetched). */
export async function pickupSvg(code: string): Promise<string> {
  const qr = await QRCode.toString(code, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  const size = Number(/viewBox="0 0 (\d+) \d+"/.exec(qr)?.[1] ?? 0);
  if (!size) throw new KitError('INTERNAL', 'QR rendering gave no size');
  const inner = qr.replace('<svg ', `<svg width="${size}" height="${size}" `);
  const h = size + 6;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${size} ${h}" role="img" aria-label="pickup code ${esc(code)}">` +
    `<rect width="${size}" height="${h}" fill="#ffffff"/>${inner}` +
    `<text x="${size / 2}" y="${size + 4}" text-anchor="middle" font-family="monospace" font-size="4" ` +
    `letter-spacing="0.6" fill="#000000">${esc(code)}</text></svg>`
  );
}

export const pickupRoutes: FastifyPluginAsyncTypebox<PickupRoutesOptions> = async (app, opts) => {
  const { store, pickup, orders, guard, creds } = opts;
  const staff = creds.require('terminal');

  /** Who hands over: the terminal's id, or `admin` (the hook already refused anyone else). */
  const whoIs = (req: FastifyRequest): string => {
    if (creds.role(req) === 'admin') return 'admin';
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const t = terminalForToken(store, token);
    if (!t) throw new KitError('UNAUTHORIZED', 'unknown or revoked token');
    return t.id;
  };

  app.get(
    '/v1/orders/:id/pickup.svg',
    {
      schema: {
        params: OrderIdParams,
        produces: ['image/svg+xml'],
        response: { 200: Type.String({ description: 'SVG image' }), 400: ErrorEnvelope, 404: ErrorEnvelope },
      },
    },
    async (req, reply) => {
      const order = orders.get(req.params.id);
      if (!order) throw new KitError('NOT_FOUND', `no order ${req.params.id}`);
      if (!order.pickup) throw new KitError('NOT_FOUND', `order ${order.id} has no pickup slot`);
      reply.header('content-type', 'image/svg+xml; charset=utf-8');
      // a pickup code is a key to the goods: no shared cache keeps it
      reply.header('cache-control', 'no-store');
      return reply.send(await pickupSvg(order.pickup.code));
    },
  );

  app.post(
    '/v1/pickups',
    {
      onRequest: staff,
      schema: {
        body: PickupBody,
        response: {
          200: PickupOut,
          ...errorResponses,
          403: ErrorEnvelope,
          429: ErrorEnvelope,
          507: ErrorEnvelope,
        },
        security: terminalSecurity,
      },
    },
    async (req, reply) => {
      guard.assertWritable();
      const order = await pickup.pickUp(req.body.code, whoIs(req), req.ip);
      return reply.status(200).send({
        orderId: order.id,
        code: order.pickup?.code ?? '',
        slotId: order.pickup?.slotId ?? '',
        pickedUpAt: order.pickup?.pickedUpAt ?? '',
        pickedUpBy: order.pickup?.pickedUpBy ?? '',
        lines: order.lines.map((l) => ({ sku: l.sku, name: l.name, qty: l.qty })),
      });
    },
  );

  app.get(
    '/v1/pickups',
    {
      onRequest: staff,
      schema: {
        querystring: PickupQueueQuery,
        response: { 200: PickupQueueOut, ...errorResponses, 403: ErrorEnvelope },
        security: terminalSecurity,
      },
    },
    async (req) =>
      pickup.queue({
        ...(req.query.slot !== undefined ? { slot: req.query.slot } : {}),
        ...(req.query.state !== undefined ? { state: req.query.state } : {}),
        limit: req.query.limit !== undefined ? Math.min(Number(req.query.limit), QUEUE_LIMIT) : QUEUE_LIMIT,
      }),
  );
};
