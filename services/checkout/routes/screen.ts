// The venue screen (docs/screen.md): GET /screen plays the kit's live stream full screen with the drop
// countdown and a sales ticker drawn over it in HTML; its player (hls.js and the kit's player script)
// is served by the kit under content-addressed paths, so a screen in a venue without uplink loads
// nothing from anywhere else and caches the big script for good; GET /v1/screen/sales feeds the ticker
// with units sold per SKU, nothing about who bought.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import { KitError } from '../../../core/errors.ts';
import type { KitStore } from '../../../core/store/index.ts';
import { salesSince } from '../../../core/store/sales.ts';
import type { OrderService } from '../orders.ts';
import { ErrorEnvelope } from '../schemas.ts';

const DIR = path.join(import.meta.dirname, '..', 'screen');
const require = createRequire(import.meta.url);

/** `GET /v1/screen/sales` query: how far back to count (s). */
export const ScreenSalesQuery = Type.Object(
  {
    // a query string is text (the app does not coerce types): whole seconds, 10 to 3600
    windowS: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{1,3}$' })),
  },
  { additionalProperties: false },
);

/** `GET /v1/screen/sales`: units sold per SKU (bundles by their id) in the window; no order, no buyer. */
export const ScreenSalesOut = Type.Object({
  /** the kit's sale clock (epoch ms) the window ends at */
  now: Type.Integer(),
  windowS: Type.Integer(),
  /** units of every line in accepted orders of the window */
  totalUnits: Type.Integer(),
  /** most sold first, at most 20 */
  skus: Type.Array(Type.Object({ sku: Type.String(), name: Type.String(), units: Type.Integer() })),
  /** true when the count stopped at the scan cap (a very busy window): the figures are a lower bound */
  partial: Type.Boolean(),
});
export type ScreenSalesOutT = Static<typeof ScreenSalesOut>;

/** Orders looked at per answer, newest first: a drop's busiest five minutes on a kit fit in it. */
const SCAN_CAP = 20_000;
/** One answer serves every screen for this long (they poll every few seconds; orders are the hot path). */
const SALES_CACHE_MS = 1000;

export interface ScreenRoutesOptions {
  store: KitStore;
  orders: Pick<OrderService, 'saleClock'>;
}

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
const contentHash = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** The page's policy: its inline script and style by hash, scripts from the kit, media through MSE. */
export function screenPagePolicy(html: string): string {
  const inline = (tag: string) =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => sha256(m[1] ?? ''));
  return [
    "default-src 'none'",
    `script-src 'self' ${inline('script').join(' ')}`,
    `style-src ${inline('style').join(' ')}`,
    // hls.js runs its transmuxer in a worker made from a blob, and feeds the video element through MSE
    'worker-src blob:',
    "media-src 'self' blob:",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export const screenRoutes: FastifyPluginAsyncTypebox<ScreenRoutesOptions> = async (app, opts) => {
  // hls.js from the installed package (a dependency, in the image's node_modules too), under a path
  // that carries its version: cached for a year, replaced by an upgrade's new path
  const hlsFile = require.resolve('hls.js/dist/hls.min.js');
  const hlsVersion = (
    JSON.parse(
      await fs.promises.readFile(path.join(path.dirname(hlsFile), '..', 'package.json'), 'utf8'),
    ) as { version: string }
  ).version;
  const hlsJs = await fs.promises.readFile(hlsFile);
  const playerJs = await fs.promises.readFile(path.join(DIR, 'player.js'));
  const assets = {
    hls: `/screen/assets/hls-${hlsVersion}.min.js`,
    player: `/screen/assets/player-${contentHash(playerJs)}.js`,
  };
  const html = (await fs.promises.readFile(path.join(DIR, 'index.html'), 'utf8'))
    .replace('{{HLS_JS}}', assets.hls)
    .replace('{{PLAYER_JS}}', assets.player);
  const policy = screenPagePolicy(html);

  app.get('/screen', { schema: { hide: true } }, async (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', policy)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(html),
  );

  for (const [url, body] of [
    [assets.hls, hlsJs],
    [assets.player, playerJs],
  ] as const) {
    app.get(url, { schema: { hide: true } }, async (_req, reply) =>
      reply
        .header('content-type', 'text/javascript; charset=utf-8')
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'public, max-age=31536000, immutable')
        .send(body),
    );
  }

  let cached: { key: string; at: number; body: ScreenSalesOutT } | undefined;
  app.get(
    '/v1/screen/sales',
    { schema: { querystring: ScreenSalesQuery, response: { 200: ScreenSalesOut, 400: ErrorEnvelope } } },
    async (req, reply) => {
      const windowS = req.query.windowS === undefined ? 300 : Number(req.query.windowS);
      if (windowS > 3600) throw new KitError('VALIDATION', 'windowS is at most 3600 seconds', { windowS });
      const { now } = opts.orders.saleClock();
      const key = String(windowS);
      if (!cached || cached.key !== key || now - cached.at >= SALES_CACHE_MS || now < cached.at) {
        const counted = salesSince(opts.store, now - windowS * 1000, SCAN_CAP);
        cached = { key, at: now, body: { now, windowS, ...counted } };
      }
      return reply.header('cache-control', 'no-store').send(cached.body);
    },
  );
};
