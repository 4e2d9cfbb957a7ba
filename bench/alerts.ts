// bench/alerts: what one alert evaluation pass costs the hub's PostgreSQL on a busy ledger (real
// PostgreSQL, a schema of its own): `--kits` kits with `--orders` orders each, a tenth declined, some
// dead letters, one catalog with sale windows per event. The baseline, same run, same data: the same
// pass without migration 13's indexes on recent declines and dead letters (a scan of every kit's
// orders per pass).
//   node --import tsx bench/alerts.ts [--kits 300] [--orders 300] [--passes 10]
import { parseArgs } from 'node:util';
import pg from 'pg';
import { HubAlerts } from '../services/hub/alerts.ts';
import { openPostgres } from '../services/hub/db.ts';
import { migrate } from '../services/hub/migrations.ts';

const { values } = parseArgs({
  options: {
    kits: { type: 'string', default: '300' },
    orders: { type: 'string', default: '300' },
    passes: { type: 'string', default: '10' },
  },
});
const KITS = Number(values.kits);
const ORDERS = Number(values.orders);
const PASSES = Number(values.passes);
const PG_URL = process.env['POPKIT_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_alerts_${process.pid}`;

process.env['POPKIT_LOG_LEVEL'] ??= 'silent';
const db = await openPostgres(PG_URL, schema, 2);
try {
  await migrate(db);
  const t0 = performance.now();
  await db.query(
    `INSERT INTO kits (kit_id, online, status, last_seen)
     SELECT 'kit-' || k, true, jsonb_build_object('v', 1, 'kitId', 'kit-' || k, 'online', true, 'at', 1,
       'eventId', 'ev-' || (k % 20), 'state', 'live', 'backlog', jsonb_build_object('orders', k % 3),
       'oldestAgeMs', jsonb_build_object('orders', 1000 * k), 'battery', jsonb_build_object('socPct', k % 100),
       'clock', jsonb_build_object('trusted', k % 7 <> 0)), now() - make_interval(secs => k % 600)
     FROM generate_series(1, $1) k`,
    [KITS],
  );
  await db.query(
    `INSERT INTO orders (kit_id, order_id, event_id, kit_created_at, total_cents, currency, payment_method,
       state, body, received_at, settled_at)
     SELECT 'kit-' || k, 'o-' || o, 'ev-' || (k % 20), now()::text, 2500, 'EUR', 'token',
       CASE WHEN o % 10 = 0 THEN 'declined' ELSE 'settled' END, '{"lines": []}'::jsonb,
       now() - make_interval(secs => o * 10), now() - make_interval(secs => o * 10)
     FROM generate_series(1, $1) k, generate_series(1, $2) o`,
    [KITS, ORDERS],
  );
  await db.query(
    `INSERT INTO dead_letters (kit_id, lane, entry_id, reason, raw)
     SELECT 'kit-' || k, 'orders', 'bad-' || d, 'bench', '\\x00'::bytea
     FROM generate_series(1, $1) k, generate_series(1, 5) d`,
    [KITS],
  );
  for (let e = 0; e < 20; e++) {
    const payload = JSON.stringify({
      v: 1,
      eventId: `ev-${e}`,
      version: 1,
      issuedAt: new Date().toISOString(),
      catalog: {
        items: Array.from({ length: 50 }, (_, i) => ({
          sku: `S${i}`,
          saleWindow: { startsAt: new Date(Date.now() + i * 60_000).toISOString() },
        })),
      },
    });
    await db.query('INSERT INTO catalogs (event_id, version, signed) VALUES ($1, 1, $2::jsonb)', [
      `ev-${e}`,
      JSON.stringify({ v: 1, alg: 'ed25519', payload, sig: 'x' }),
    ]);
  }
  await db.query('ANALYZE');
  const loadS = (performance.now() - t0) / 1000;
  const alerts = new HubAlerts(db, {
    intervalMs: 30_000,
    thresholds: {
      silentS: 300,
      batteryPct: 10,
      backlogAgeS: 21_600,
      spikeWindowS: 300,
      declines: 10,
      rejects: 5,
      dropWindowS: 900,
    },
  });
  const first = await alerts.evaluate();

  async function passes(): Promise<{ p50: number; p95: number }> {
    const ms: number[] = [];
    for (let i = 0; i < PASSES; i++) {
      const t = performance.now();
      await alerts.evaluate();
      ms.push(performance.now() - t);
    }
    ms.sort((a, b) => a - b);
    return {
      p50: ms[Math.floor(ms.length / 2)]!,
      p95: ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.95))]!,
    };
  }
  const withIdx = await passes();
  await db.exec('DROP INDEX orders_declined_recent; DROP INDEX dead_letters_kit_recent; ANALYZE;');
  const without = await passes();
  const f = (x: number) => x.toFixed(1);
  console.log(
    `ledger: ${KITS} kits × ${ORDERS} orders (${KITS * ORDERS} orders, ${KITS * 5} dead letters) loaded in ${loadS.toFixed(1)} s`,
  );
  console.log(`first pass raised ${first.raised.length} alerts`);
  console.log(`evaluation pass, migration 13 indexes: p50 ${f(withIdx.p50)} ms, p95 ${f(withIdx.p95)} ms`);
  console.log(`baseline without them (same data):    p50 ${f(without.p50)} ms, p95 ${f(without.p95)} ms`);
  console.log(`ratio baseline / indexed (p50): ${(without.p50 / withIdx.p50).toFixed(2)}×`);
} finally {
  await db.close();
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await c.end();
}
