// The post-event report at the hub: two kits (real LMDB, checkout's OrderService) sync their orders
// through a private Mosquitto into PostgreSQL (a schema of its own) by the real ingest; the telemetry
// rows (kit_series, kit_markers, kit_audience, event_creators) are inserted as the telemetry ingest
// stores them (that ingest is another part of #12). GET /v1/events/:eventId/report merges both kits in
// json, html and pdf, names the kit whose order the ledger lacks, and refuses hostile requests;
// GET /v1/creators/:creatorId/events lists the event per kit.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import type { CreatorEventsT, EventReportT } from '../../core/contracts/report.ts';
import { eventReport } from '../../core/contracts/report.ts';
import type { AudienceAggregateT } from '../../core/contracts/series.ts';
import { errorEnvelopePlugin } from '../../core/http-errors.ts';
import { LANES, replaceCatalog, scanOutbox } from '../../core/store/index.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { reportRoutes } from '../../services/hub/routes/report.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_report').replace(/-/g, '_');
const eventId = uniqueId('ev-rep');
const creatorId = uniqueId('creator');
const HOSTILE = '<script>alert(1)</script>';
const CATALOG = {
  version: 1,
  eventId,
  currency: 'EUR',
  items: [
    { sku: 'TEE', name: 'Tour tee', priceCents: 2500, stock: 1000 },
    { sku: 'EVIL', name: HOSTILE, priceCents: 1000, stock: 500 },
  ],
};

let broker: Mosquitto;
let hub: HubService;
const kits: TestKit[] = [];
const syncs: SyncService[] = [];
let start = 0;

const ordersLane = (kit: TestKit) => [...scanOutbox(kit.store)].filter((e) => e.key[0] === LANES.orders);

async function sell(kit: TestKit, sku: string, qty: number) {
  return (await kit.orders.create({ lines: [{ sku, qty }], payment: { method: 'cash' } }, undefined)).order;
}

function audience(viewers: number, retention: number[]): AudienceAggregateT {
  return {
    eventId,
    k: 5,
    at: start + 3600,
    segments: [
      { segment: 'all', viewers, watchSeconds: viewers * 600, retention, linkedBuyers: 0, linkedOrders: 0 },
    ],
    suppressed: ['loyalty_gold'],
  };
}

const get = (path: string, token: string | null = hub.adminToken) =>
  fetch(`${hub.httpUrl}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

describe('the post-event report at the hub', () => {
  before(async () => {
    broker = await mosquitto();
    hub = await startHub({ schema, brokerUrl: broker.url });
    const put = await fetch(`${hub.httpUrl}/v1/events/${eventId}/catalog`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(CATALOG),
    });
    assert.ok(put.status === 200 || put.status === 202, await put.text());
    for (const name of ['kit-a', 'kit-b']) {
      const kit = await makeKit(uniqueId(name));
      kits.push(kit);
      await replaceCatalog(kit.store, CATALOG, { source: 'local' });
    }
    const [a, b] = kits as [TestKit, TestKit];
    await sell(a, 'TEE', 2);
    await sell(a, 'EVIL', 1);
    await sell(a, 'TEE', 1);
    await sell(b, 'TEE', 3);
    await sell(b, 'EVIL', 2);
    for (const k of kits) syncs.push(startSync(k, broker.url));
    for (const k of kits) await waitFor(() => ordersLane(k).length === 0, 30_000, 'orders lane drained');
    // kit b takes one more order after its sync stopped: the ledger lacks it
    await syncs[1]!.stop();
    await sell(b, 'EVIL', 4);
    start = Math.floor(Date.now() / 1000) - 600;
    const db = hub.db!;
    // what the telemetry ingest stores (branch telemetry): a sample a second, markers, the newest aggregate
    for (const [i, k] of kits.entries()) {
      await db.query(
        `INSERT INTO kit_series (kit_id, event_id, t, v)
         SELECT $1, $2, to_timestamp($3::bigint + s), jsonb_build_object(
           'popkit_viewers', 20 + $4::int * 10 + (s / 60),
           'popkit_order_duration_seconds_p95', 0.05 + (s % 120) / 1000.0,
           'popkit_stream_latency_seconds', 2 + (s % 7) / 10.0,
           'popkit_stream_level', (s / 300) % 2,
           'popkit_reservations_made_total', CASE WHEN s % 60 = 0 THEN 2 ELSE 0 END,
           'popkit_reservations_converted_total', CASE WHEN s % 120 = 0 THEN 1 ELSE 0 END)
         FROM generate_series(0, 1199) AS s`,
        [k.kitId, eventId, start, i],
      );
      await db.query(
        `INSERT INTO kit_markers (kit_id, event_id, t, kind, label) VALUES
         ($1, $2, to_timestamp($3::bigint), 'event_start', ''), ($1, $2, to_timestamp($3::bigint + 1199), 'event_stop', ''),
         ($1, $2, to_timestamp($3::bigint + 300), 'drop_open', 'EVIL')`,
        [k.kitId, eventId, start],
      );
    }
    await db.query(
      'INSERT INTO kit_audience (kit_id, event_id, at, body, kit_orders) VALUES ($1, $2, now(), $3, 3), ($4, $2, now(), $5, 3)',
      [
        kits[0]!.kitId,
        eventId,
        JSON.stringify(audience(10, [10, 8, 6, 5, 5, 4])),
        kits[1]!.kitId,
        JSON.stringify(audience(6, [6, 6, 3, 2, 2, 1])),
      ],
    );
    await db.query('INSERT INTO event_creators (event_id, creator_id) VALUES ($1, $2)', [eventId, creatorId]);
  });

  after(async () => {
    for (const s of syncs) await s.stop();
    await hub?.stop();
    await broker?.stop();
    for (const k of kits) await k.close();
    await dropSchema(schema);
  });

  test('json: every kit merged, the lagging kit named', async () => {
    const res = await get(`/v1/events/${eventId}/report`);
    assert.equal(res.status, 200);
    const r = (await res.json()) as EventReportT;
    assert.ok(eventReport.check(r), eventReport.errors(r).join('; '));
    const [a, b] = kits as [TestKit, TestKit];
    assert.equal(r.meta.source, 'hub');
    assert.deepEqual(r.meta.kits, [a.kitId, b.kitId].sort());
    assert.equal(r.meta.span.start, start);
    assert.equal(r.meta.span.end, start + 1199);
    assert.equal(r.meta.ended, true);
    assert.equal(r.meta.span.minutes, 20);
    // the ledger's five orders: 2×2500 + 1000 + 2500 + 3×2500 + 2×1000
    assert.equal(r.totals.orders, 5);
    assert.equal(r.totals.revenueCents, 18_000);
    const kb = r.inventory.kits.find((k) => k.kitId === b.kitId)!;
    assert.deepEqual([kb.kitOrders, kb.hubOrders, kb.missingAtHub], [3, 2, 1]);
    const ka = r.inventory.kits.find((k) => k.kitId === a.kitId)!;
    assert.deepEqual([ka.kitOrders, ka.hubOrders, ka.missingAtHub], [3, 3, 0]);
    assert.equal(r.inventory.matched, false);
    assert.ok(r.meta.missing.some((m) => m.kind === 'ledger_behind' && m.kitId === b.kitId));
    const tee = r.inventory.skus.find((s) => s.sku === 'TEE')!;
    assert.equal(tee.soldHub, 6);
    assert.equal(tee.start, 2000, 'each kit started with the catalog stock');
    assert.equal(r.inventory.skus.find((s) => s.sku === 'EVIL')!.name, HOSTILE);
    // retention: 10 + 6 viewers, counts added minute by minute
    const all = r.retention.segments.find((s) => s.segment === 'all')!;
    assert.deepEqual(all.counts, [16, 14, 9, 7, 7, 5]);
    assert.deepEqual(r.retention.suppressed, ['loyalty_gold']);
    assert.equal(r.totals.viewers, 16);
    // viewers per minute: kit a 20 + m, kit b 30 + m
    assert.equal(r.latency.minutes[3]!.viewers, 56);
    assert.equal(r.totals.reservationsMade, 2 * 20 * 2);
    assert.equal(r.totals.reservationsConverted, 10 * 2);
    assert.equal(r.latency.correlations.length, 3);
    assert.ok(r.latency.correlations.every((c) => c.n === 20));
    assert.equal(r.drops.length, 1);
  });

  test('html escapes the hostile name and runs no script; pdf is printed', async () => {
    const res = await get(`/v1/events/${eventId}/report?format=html`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await res.text();
    assert.ok(!html.includes(HOSTILE));
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    const pdf = await get(`/v1/events/${eventId}/report?format=pdf`);
    assert.equal(pdf.status, 200);
    assert.equal(pdf.headers.get('content-type'), 'application/pdf');
    assert.equal(
      Buffer.from(await pdf.arrayBuffer())
        .subarray(0, 5)
        .toString(),
      '%PDF-',
    );
  });

  test('hostile requests are refused with a coded error', async () => {
    const cases: Array<[string, number, string | null]> = [
      [`/v1/events/${eventId}/report`, 401, null],
      [`/v1/events/${eventId}/report`, 401, 'wrong'],
      [`/v1/events/${eventId}/report?format=exe`, 400, hub.adminToken],
      [`/v1/events/${eventId}/report?format=json&debug=1`, 400, hub.adminToken],
      [`/v1/events/${eventId}/report?format=1`, 400, hub.adminToken],
      [`/v1/events/${eventId}/report?format=json&format=html`, 400, hub.adminToken],
      [`/v1/events/${eventId}/report?__proto__=x`, 400, hub.adminToken],
      [`/v1/events/${eventId}/report?format=${'j'.repeat(5000)}`, 400, hub.adminToken],
      [`/v1/events/__proto__/report`, 400, hub.adminToken],
      [`/v1/events/${'a'.repeat(65)}/report`, 400, hub.adminToken],
      [`/v1/events/ev%00x/report`, 400, hub.adminToken],
      [`/v1/events/no-such-event/report`, 404, hub.adminToken],
      [`/v1/creators/__proto__/events`, 400, hub.adminToken],
      [`/v1/creators/${creatorId}/events`, 401, null],
    ];
    for (const [path, status, token] of cases) {
      const res = await get(path, token);
      assert.equal(res.status, status, path);
      const body = (await res.json()) as { error?: { code?: string } };
      assert.equal(typeof body.error?.code, 'string', path);
    }
  });

  test('no Chromium at the hub: 503 PDF_UNAVAILABLE naming the package; json still answers', async () => {
    const app = Fastify({
      logger: false,
      ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
    });
    app.register(errorEnvelopePlugin);
    app.register(reportRoutes, { db: hub.db!, adminToken: 'tok', chromium: '/nonexistent/chromium' });
    const headers = { authorization: 'Bearer tok' };
    const pdf = await app.inject({ method: 'GET', url: `/v1/events/${eventId}/report?format=pdf`, headers });
    assert.equal(pdf.statusCode, 503);
    const body = pdf.json() as { error: { code: string; message: string; details: { package: string } } };
    assert.equal(body.error.code, 'PDF_UNAVAILABLE');
    assert.equal(body.error.details.package, 'chromium');
    assert.match(body.error.message, /apt-get install chromium/);
    const json = await app.inject({ method: 'GET', url: `/v1/events/${eventId}/report`, headers });
    assert.equal(json.statusCode, 200);
    await app.close();
  });

  test('when the lagging kit syncs, the ledger matches every kit and the report says so', async () => {
    const b = kits[1]!;
    syncs.push(startSync(b, broker.url));
    await waitFor(() => ordersLane(b).length === 0, 30_000, 'kit b drained');
    const r = (await (await get(`/v1/events/${eventId}/report`)).json()) as EventReportT;
    const kb = r.inventory.kits.find((k) => k.kitId === b.kitId)!;
    assert.deepEqual([kb.kitOrders, kb.hubOrders, kb.missingAtHub], [3, 3, 0]);
    assert.equal(r.inventory.matched, true);
    assert.equal(typeof r.inventory.matchedAfterS, 'number');
    assert.ok(!r.meta.missing.some((m) => m.kind === 'ledger_behind'));
    assert.equal(r.totals.orders, 6);
    assert.equal(r.inventory.skus.find((s) => s.sku === 'EVIL')!.soldHub, 7);
  });

  test('the creator lists the event with revenue, conversion and retention per kit', async () => {
    const res = await get(`/v1/creators/${creatorId}/events`);
    assert.equal(res.status, 200);
    const c = (await res.json()) as CreatorEventsT;
    assert.equal(c.events.length, 1);
    const e = c.events[0]!;
    assert.equal(e.eventId, eventId);
    // kit b's last order (4 × 1000) arrived in the test before
    assert.equal(e.orders, 6);
    assert.equal(e.revenueCents, 22_000);
    assert.equal(e.viewers, 16);
    assert.equal(e.ordersPerViewer, 0.375);
    const ka = e.kits.find((k) => k.kitId === kits[0]!.kitId)!;
    assert.deepEqual([ka.orders, ka.viewers, ka.ordersPerViewer, ka.retention5], [3, 10, 0.3, 0.4]);
    const other = await get(`/v1/creators/${uniqueId('nobody')}/events`);
    assert.deepEqual(((await other.json()) as CreatorEventsT).events, []);
  });
});
