// The host dashboard (one HTML file) at GET /, with its live chart (dashboard/chart.js) drawn by uPlot.
// Everything it runs is served by the kit: uPlot from the installed package under a path that carries
// its version, the chart script under its content hash, both cached for good; a strict content
// security policy (the inline script and style by hash) lets nothing else load or run.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const DIR = path.join(import.meta.dirname, '..', 'dashboard');
const require = createRequire(import.meta.url);

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
const contentHash = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** The dashboard's policy: its inline script and style by hash, scripts and styles from the kit only. */
export function dashboardPagePolicy(html: string): string {
  const inline = (tag: string) =>
    [...html.matchAll(new RegExp(`<${tag}(?: type="module")?>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) =>
      sha256(m[1] ?? ''),
    );
  return [
    "default-src 'none'",
    `script-src 'self' ${inline('script').join(' ')}`,
    `style-src 'self' ${inline('style').join(' ')}`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export const dashboardRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // uPlot from the installed package (a dependency, in the image's node_modules too)
  const uplotDir = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const uplotVersion = (
    JSON.parse(await fs.promises.readFile(path.join(uplotDir, '..', 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  const uplotJs = await fs.promises.readFile(path.join(uplotDir, 'uPlot.iife.min.js'));
  const uplotCss = await fs.promises.readFile(path.join(uplotDir, 'uPlot.min.css'));
  const chartJs = await fs.promises.readFile(path.join(DIR, 'chart.js'));
  const assets = {
    uplotJs: `/dashboard/assets/uPlot-${uplotVersion}.iife.min.js`,
    uplotCss: `/dashboard/assets/uPlot-${uplotVersion}.min.css`,
    chart: `/dashboard/assets/chart-${contentHash(chartJs)}.js`,
  };
  const html = (await fs.promises.readFile(path.join(DIR, 'index.html'), 'utf8'))
    .replace('{{UPLOT_JS}}', assets.uplotJs)
    .replace('{{UPLOT_CSS}}', assets.uplotCss)
    .replace('{{CHART_JS}}', assets.chart);
  const policy = dashboardPagePolicy(html);

  app.get('/', { schema: { hide: true } }, async (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', policy)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(html),
  );

  for (const [url, body, type] of [
    [assets.uplotJs, uplotJs, 'text/javascript'],
    [assets.uplotCss, uplotCss, 'text/css'],
    [assets.chart, chartJs, 'text/javascript'],
  ] as const) {
    app.get(url, { schema: { hide: true } }, async (_req, reply) =>
      reply
        .header('content-type', `${type}; charset=utf-8`)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'public, max-age=31536000, immutable')
        .send(body),
    );
  }
};
