// bench:report — the hub's post-event report for a big event: 4 hours, 3 kits, 20,000 orders, 5,000
// viewers (a sample a second per kit: 43,200 series rows) in the hub's PostgreSQL, bulk-inserted as the
// ledger and telemetry ingests store them (tests/support/report-event.ts; the real ingest would take
// minutes). Times GET /v1/events/:eventId/report as json and html (through the route, in process) and,
// separately, pdf; the baseline, measured in the same run, is a plain SELECT of the same rows.
// Target (#12): the report in ≤ 10 s.
//
//   node --import tsx bench/report.ts [--orders 20000] [--viewers 5000] [--kits 3] [--hours 4] [--rounds 3] [--no-pdf] [--save DIR]
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import { errorEnvelopePlugin } from '../core/http-errors.ts';
import { openPostgres } from '../services/hub/db.ts';
import { migrate } from '../services/hub/migrations.ts';
import { reportRoutes } from '../services/hub/routes/report.ts';
import { dropSchema, PG_URL, uniqueId } from '../tests/support/hub-link.ts';
import { seedEvent } from '../tests/support/report-event.ts';

const { values } = parseArgs({
  options: {
    orders: { type: 'string', default: '20000' },
    viewers: { type: 'string', default: '5000' },
    kits: { type: 'string', default: '3' },
    hours: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    pdf: { type: 'boolean', default: true },
    /** keep report.html and report.pdf in this directory, to look at */
    save: { type: 'string' },
  },
});
const N = Number(values.orders);
const V = Number(values.viewers);
const K = Number(values.kits);
const HOURS = Number(values.hours);
const ROUNDS = Number(values.rounds);
if (![N, V, K, HOURS, ROUNDS].every((x) => Number.isInteger(x) && x > 0)) {
  process.stderr.write(
    'usage: bench/report.ts [--orders N] [--viewers V] [--kits K] [--hours H] [--rounds R]\n',
  );
  process.exit(2);
}
const TARGET_MS = 10_000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const r0 = (n: number) => Math.round(n);

const schema = uniqueId('b_report').replace(/-/g, '_');
const db = await openPostgres(PG_URL, schema, 4);
try {
  await migrate(db);
  const eventId = uniqueId('ev-bench');
  const kits = Array.from({ length: K }, (_, i) => `kit-${i + 1}`);
  const t0 = performance.now();
  await seedEvent(db, {
    eventId,
    creatorId: 'creator-bench',
    kits,
    orders: N,
    viewers: V,
    start: Math.floor(Date.now() / 1000) - HOURS * 3600 - 600,
    durationS: HOURS * 3600,
  });
  await db.query('ANALYZE');
  const seedMs = performance.now() - t0;

  const app = Fastify({
    logger: false,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
  });
  app.register(errorEnvelopePlugin);
  app.register(reportRoutes, { db, adminToken: 'bench-token' });
  await app.ready();
  const get = async (format: string) => {
    const t = performance.now();
    const res = await app.inject({
      method: 'GET',
      url: `/v1/events/${eventId}/report?format=${format}`,
      headers: { authorization: 'Bearer bench-token' },
    });
    const ms = performance.now() - t;
    if (res.statusCode !== 200) throw new Error(`${format}: ${res.statusCode} ${res.body.slice(0, 300)}`);
    if (values.save) {
      fs.mkdirSync(values.save, { recursive: true });
      fs.writeFileSync(path.join(values.save, `report.${format}`), res.rawPayload);
    }
    return { ms, bytes: res.rawPayload.length, body: res.body };
  };
  // the baseline: the same rows and columns the report reads, fetched by plain SELECTs, nothing done with them
  const baseline = async () => {
    const t = performance.now();
    await Promise.all([
      db.query(
        `SELECT o.kit_id, o.kit_created_at, o.total_cents, o.state, o.received_at, l.sku, l.qty
         FROM orders o JOIN order_lines l USING (kit_id, order_id) WHERE o.event_id = $1`,
        [eventId],
      ),
      db.query('SELECT kit_id, t, v FROM kit_series WHERE event_id = $1', [eventId]),
      db.query('SELECT * FROM kit_markers WHERE event_id = $1', [eventId]),
      db.query('SELECT * FROM kit_audience WHERE event_id = $1', [eventId]),
    ]);
    return performance.now() - t;
  };
  // one warm-up of each (connections, plans, JIT), then the rounds
  await baseline();
  const first = await get('json');
  const report = JSON.parse(first.body) as {
    totals: { orders: number };
    meta: { span: { minutes: number }; kits: string[] };
  };
  if (report.totals.orders !== N)
    throw new Error(`the report counts ${report.totals.orders} orders, not ${N}`);
  await get('html');
  const base: number[] = [];
  const json: number[] = [];
  const html: number[] = [];
  let jsonBytes = 0;
  let htmlBytes = 0;
  for (let r = 0; r < ROUNDS; r++) {
    base.push(await baseline());
    const j = await get('json');
    json.push(j.ms);
    jsonBytes = j.bytes;
    const h = await get('html');
    html.push(h.ms);
    htmlBytes = h.bytes;
  }
  let pdfMs: number | null = null;
  let pdfBytes = 0;
  if (values.pdf) {
    try {
      const p = await get('pdf');
      pdfMs = p.ms;
      pdfBytes = p.bytes;
    } catch (err) {
      process.stdout.write(`pdf: not measured (${(err as Error).message})\n`);
    }
  }
  await app.close();
  const b = median(base);
  const jm = median(json);
  const hm = median(html);
  const lines = [
    `bench:report — ${HOURS} h event, ${K} kits, ${N} orders, ${V} viewers, ${K * HOURS * 3600} series rows (PostgreSQL, seeded in ${r0(seedMs)} ms)`,
    `  baseline (plain SELECT of the same rows): ${r0(b)} ms (median of ${ROUNDS})`,
    `  report json: ${r0(jm)} ms (${(jsonBytes / 1024).toFixed(0)} KiB), ${(jm / b).toFixed(2)}× the baseline`,
    `  report html: ${r0(hm)} ms (${(htmlBytes / 1024).toFixed(0)} KiB), ${(hm / b).toFixed(2)}× the baseline`,
    pdfMs === null
      ? '  report pdf: not measured'
      : `  report pdf (Chromium print, separately): ${r0(pdfMs)} ms (${(pdfBytes / 1024).toFixed(0)} KiB)`,
    `  target ≤ ${TARGET_MS} ms: json ${jm <= TARGET_MS ? 'met' : 'MISSED'}, html ${hm <= TARGET_MS ? 'met' : 'MISSED'}${pdfMs === null ? '' : `, pdf ${pdfMs <= TARGET_MS ? 'met' : 'MISSED'}`}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await db.close();
  await dropSchema(schema);
}
