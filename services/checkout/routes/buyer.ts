// The buyer's page (one HTML file) at GET /buy, and the kit's clock it counts sale windows down by
// (docs/drops.md#the-buyers-page). The page must work in a venue with no uplink: everything is inline,
// and its Content-Security-Policy lets it load nothing but the kit's own API and pickup QR images.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { OrderService } from '../orders.ts';

const PAGE = path.join(import.meta.dirname, '..', 'buyer', 'index.html');

/** `GET /buy/clock`: the instant sale windows are judged by, and whether the kit trusts its clock. */
export const BuyerClockOut = Type.Object({
  /** epoch ms by the kit's sale clock (docs/drops.md#trusted-time) */
  now: Type.Integer(),
  trusted: Type.Boolean(),
});

export interface BuyerRoutesOptions {
  orders: Pick<OrderService, 'saleClock'>;
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/**
 * The policy for the page: its own inline script and style by their hashes (an injected script does not
 * run), requests and images from the kit only, nothing else from anywhere.
 */
export function buyerPagePolicy(html: string): string {
  const inline = (tag: string) =>
    [...html.matchAll(new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) =>
      sha256(m[1] ?? ''),
    );
  return [
    "default-src 'none'",
    `script-src ${inline('script').join(' ')}`,
    `style-src ${inline('style').join(' ')}`,
    "img-src 'self' blob:",
    "connect-src 'self'",
    "manifest-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export const buyerRoutes: FastifyPluginAsyncTypebox<BuyerRoutesOptions> = async (app, opts) => {
  // read once: the page is part of the release, and its hashes must match what is served
  const html = await fs.promises.readFile(PAGE, 'utf8');
  const policy = buyerPagePolicy(html);

  app.get('/buy', { schema: { hide: true } }, async (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', policy)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(html),
  );

  app.get('/buy/clock', { schema: { response: { 200: BuyerClockOut } } }, async (_req, reply) => {
    const { now, trusted } = opts.orders.saleClock();
    return reply.header('cache-control', 'no-store').send({ now, trusted });
  });
};
