// The post-event report at the hub (docs/report.md): GET /v1/events/:eventId/report?format=json|html|pdf
// merges every kit of the event (services/hub/report.ts); GET /v1/creators/:creatorId/events lists a
// creator's events with revenue, conversion and retention per kit, and GET /creators/:creatorId is the
// page that shows it (a shell with no data: it asks for the admin token, kept in this tab only, and
// calls the API with it, as the kit's dashboard does with its token). Admin only; ids are checked
// against the topic-level pattern and the query takes nothing but `format`.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  type CreatorEventsT,
  type CreatorKitRowT,
  CreatorParams,
  ReportParams,
  ReportQuery,
} from '../../../core/contracts/report.ts';
import { audienceAggregate } from '../../../core/contracts/series.ts';
import { KitError } from '../../../core/errors.ts';
import { renderReportHtml, renderReportPdf } from '../../../core/report/render.ts';
import type { Queryable } from '../db.ts';
import { hubEventReport } from '../report.ts';
import { adminGuard } from './admin.ts';

export interface ReportRoutesOptions {
  db: Queryable;
  adminToken: string;
  /** Chromium for the PDF (POPKIT_CHROMIUM; default /usr/bin/chromium) */
  chromium?: string | undefined;
  clock?: () => number;
}

const ratio = (a: number, b: number | null) => (b ? Math.round((a / b) * 1e4) / 1e4 : null);
const shareAt = (r: number[] | undefined, m: number) =>
  r?.[0] ? Math.round(((r[m] ?? 0) / r[0]) * 1e4) / 1e4 : null;

/** Every event of a creator (newest first, at most 200), per kit. */
export async function creatorEvents(db: Queryable, creatorId: string): Promise<CreatorEventsT> {
  const res = await db.query<{
    event_id: string;
    kits: Array<{
      kit_id: string;
      orders: number;
      revenue: number;
      first: string;
      last: string;
      currency: string;
    }> | null;
    audience: Array<{ kit_id: string; body: unknown }> | null;
  }>(
    `SELECT ec.event_id,
       (SELECT json_agg(x) FROM (
          SELECT o.kit_id, count(*) AS orders, COALESCE(sum(o.total_cents), 0) AS revenue,
            min(o.kit_created_at) AS first, max(o.kit_created_at) AS last, min(o.currency) AS currency
          FROM orders o
          WHERE o.event_id = ec.event_id AND o.state <> 'declined'
            AND COALESCE(o.body->>'status', 'accepted') <> 'released'
            AND NOT EXISTS (SELECT 1 FROM order_events e WHERE e.kit_id = o.kit_id AND e.order_id = o.order_id
                              AND e.type = 'released')
          GROUP BY o.kit_id) x) AS kits,
       (SELECT json_agg(json_build_object('kit_id', a.kit_id, 'body', a.body)) FROM kit_audience a
          WHERE a.event_id = ec.event_id) AS audience
     FROM event_creators ec WHERE ec.creator_id = $1 ORDER BY ec.first_at DESC, ec.event_id LIMIT 200`,
    [creatorId],
  );
  const events = res.rows.map((r) => {
    const rows = new Map<string, CreatorKitRowT>();
    const row = (kitId: string) => {
      let k = rows.get(kitId);
      if (!k) {
        k = {
          kitId,
          orders: 0,
          revenueCents: 0,
          viewers: null,
          ordersPerViewer: null,
          retention5: null,
          retention15: null,
          retention30: null,
        };
        rows.set(kitId, k);
      }
      return k;
    };
    let from: string | null = null;
    let to: string | null = null;
    let currency: string | null = null;
    for (const k of r.kits ?? []) {
      const x = row(k.kit_id);
      x.orders = Number(k.orders);
      x.revenueCents = Number(k.revenue);
      if (from === null || k.first < from) from = k.first;
      if (to === null || k.last > to) to = k.last;
      currency ??= k.currency;
    }
    let viewers: number | null = null;
    for (const a of r.audience ?? []) {
      if (!audienceAggregate.check(a.body)) continue;
      const all = a.body.segments.find((s) => s.segment === 'all');
      if (!all) continue;
      const x = row(a.kit_id);
      x.viewers = all.viewers;
      x.retention5 = shareAt(all.retention, 5);
      x.retention15 = shareAt(all.retention, 15);
      x.retention30 = shareAt(all.retention, 30);
      viewers = (viewers ?? 0) + all.viewers;
    }
    const kits = [...rows.values()].sort((a, b) => (a.kitId < b.kitId ? -1 : 1));
    for (const k of kits) k.ordersPerViewer = ratio(k.orders, k.viewers);
    const orders = kits.reduce((s, k) => s + k.orders, 0);
    return {
      eventId: r.event_id,
      from,
      to,
      orders,
      revenueCents: kits.reduce((s, k) => s + k.revenueCents, 0),
      currency,
      viewers,
      ordersPerViewer: ratio(orders, viewers),
      kits,
    };
  });
  return { creatorId, events };
}

// The page: no data in it, every text set with textContent (names come from data)
const PAGE_SCRIPT = `
const $ = (id) => document.getElementById(id);
const creator = decodeURIComponent(location.pathname.split('/').pop() || '');
const KEY = 'popkit.hub.admin';
const money = (c, cur) => (c / 100).toFixed(2) + (cur ? ' ' + cur : '');
const pct = (x) => (x === null || x === undefined ? '–' : (x * 100).toFixed(1) + '%');
const num = (x, d) => (x === null || x === undefined ? '–' : Number(x).toFixed(d));
function cell(tr, text, cls) { const td = document.createElement('td'); td.textContent = String(text); if (cls) td.className = cls; tr.appendChild(td); }
function show(data) {
  const body = $('events'); body.replaceChildren();
  $('empty').hidden = data.events.length > 0;
  for (const e of data.events) {
    const tr = document.createElement('tr'); tr.className = 'event';
    cell(tr, e.eventId); cell(tr, 'all kits (' + e.kits.length + ')'); cell(tr, e.orders, 'n');
    cell(tr, money(e.revenueCents, e.currency), 'n'); cell(tr, e.viewers ?? '–', 'n');
    cell(tr, num(e.ordersPerViewer, 3), 'n'); cell(tr, '', 'n'); cell(tr, '', 'n'); cell(tr, '', 'n');
    body.appendChild(tr);
    for (const k of e.kits) {
      const r = document.createElement('tr'); r.className = 'kit';
      cell(r, ''); cell(r, k.kitId); cell(r, k.orders, 'n'); cell(r, money(k.revenueCents, e.currency), 'n');
      cell(r, k.viewers ?? '–', 'n'); cell(r, num(k.ordersPerViewer, 3), 'n');
      cell(r, pct(k.retention5), 'n'); cell(r, pct(k.retention15), 'n'); cell(r, pct(k.retention30), 'n');
      body.appendChild(r);
    }
  }
  $('list').hidden = false;
}
async function load() {
  const token = sessionStorage.getItem(KEY);
  if (!token) { $('login').hidden = false; return; }
  const res = await fetch('/v1/creators/' + encodeURIComponent(creator) + '/events', { headers: { authorization: 'Bearer ' + token } });
  if (res.status === 401) { sessionStorage.removeItem(KEY); $('login').hidden = false; $('why').textContent = 'That token was refused.'; return; }
  if (!res.ok) { $('why').textContent = 'The hub answered ' + res.status; $('login').hidden = false; return; }
  $('login').hidden = true;
  show(await res.json());
}
$('title').textContent = 'Events of ' + creator;
$('login').addEventListener('submit', (ev) => { ev.preventDefault(); sessionStorage.setItem(KEY, $('token').value.trim()); $('token').value = ''; load(); });
load();
`;

const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Popkit: creator events</title><style>
body{font:14px/1.45 system-ui,sans-serif;color:#212529;margin:24px auto;max-width:900px;padding:0 12px}
table{border-collapse:collapse;width:100%}th,td{padding:4px 6px;border-bottom:1px solid #e9ecef;text-align:left}
.n{text-align:right;font-variant-numeric:tabular-nums}tr.event td{font-weight:600;background:#f8f9fa}.muted{color:#868e96}
</style></head><body><h1 id="title">Events</h1>
<form id="login" hidden><p id="why" class="muted">Enter the hub's admin token (kept in this tab only).</p>
<input id="token" type="password" autocomplete="off" placeholder="admin token" aria-label="admin token"><button type="submit">Show</button></form>
<section id="list" hidden><p id="empty" class="muted" hidden>No events for this creator yet.</p>
<table><thead><tr><th>event</th><th>kit</th><th class="n">orders</th><th class="n">revenue</th><th class="n">viewers</th><th class="n">orders per viewer</th><th class="n">retained 5 min</th><th class="n">15 min</th><th class="n">30 min</th></tr></thead>
<tbody id="events"></tbody></table></section>
<script>${PAGE_SCRIPT}</script></body></html>`;

const PAGE_POLICY = [
  "default-src 'none'",
  `script-src 'sha256-${createHash('sha256').update(PAGE_SCRIPT).digest('base64')}'`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const reportRoutes: FastifyPluginAsyncTypebox<ReportRoutesOptions> = async (app, opts) => {
  const { db } = opts;
  const now = () => Math.floor((opts.clock ? opts.clock() : Date.now()) / 1000);
  app.get(
    '/v1/events/:eventId/report',
    { onRequest: adminGuard(opts.adminToken), schema: { params: ReportParams, querystring: ReportQuery } },
    async (req, reply) => {
      const report = await hubEventReport(db, req.params.eventId, now());
      if (report.meta.kits.length === 0 && report.inventory.skus.length === 0)
        throw new KitError(
          'NOT_FOUND',
          `the hub knows no order, series or catalog of event ${req.params.eventId}`,
        );
      const format = req.query.format ?? 'json';
      reply.header('cache-control', 'no-store');
      if (format === 'json') return reply.send(report);
      const html = renderReportHtml(report);
      if (format === 'html')
        return reply
          .header('content-type', 'text/html; charset=utf-8')
          .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
          .header('x-content-type-options', 'nosniff')
          .send(html);
      const pdf = await renderReportPdf(html, opts.chromium || undefined);
      return reply
        .header('content-type', 'application/pdf')
        .header('content-disposition', `inline; filename="report-${req.params.eventId}.pdf"`)
        .send(pdf);
    },
  );
  app.get(
    '/v1/creators/:creatorId/events',
    { onRequest: adminGuard(opts.adminToken), schema: { params: CreatorParams } },
    async (req) => creatorEvents(db, req.params.creatorId),
  );
  app.get('/creators/:creatorId', { schema: { params: CreatorParams, hide: true } }, async (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', PAGE_POLICY)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(PAGE),
  );
};
