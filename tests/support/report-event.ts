// A whole event in the hub's PostgreSQL for the report's browser test and bench/report.ts, bulk-inserted
// in a few statements, each row shaped as the hub stores it: orders and order_lines as the ledger's
// ingest writes them (services/hub/ledger.ts insertOrders), kit_series / kit_markers / kit_audience as
// the telemetry ingest writes them (migration 11), the event's catalog signed with a key of its own, and
// event_creators. The real ingest takes minutes for 20,000 orders; the report only reads these rows.
import { generateKeyPairSync } from 'node:crypto';
import { signCatalog } from '../../core/catalog-signing.ts';
import type { AudienceAggregateT } from '../../core/contracts/series.ts';
import type { Queryable } from '../../services/hub/db.ts';

export interface SeedOptions {
  eventId: string;
  creatorId: string;
  kits: string[];
  orders: number;
  /** distinct viewers over the event, split across kits */
  viewers: number;
  /** unix seconds */
  start: number;
  durationS: number;
  skus?: number;
}

export async function seedEvent(db: Queryable, o: SeedOptions): Promise<void> {
  const nSku = o.skus ?? 30;
  const items = Array.from({ length: nSku }, (_, i) => ({
    sku: `SKU${String(i).padStart(2, '0')}`,
    name: `Item ${i}`,
    priceCents: 1000 + 100 * i,
    stock: 100_000,
  }));
  const { privateKey } = generateKeyPairSync('ed25519');
  const signed = signCatalog(privateKey, { version: 1, eventId: o.eventId, currency: 'EUR', items } as never);
  await db.query('INSERT INTO catalogs (event_id, version, signed) VALUES ($1, 1, $2)', [
    o.eventId,
    JSON.stringify(signed),
  ]);
  await db.query('INSERT INTO event_creators (event_id, creator_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
    o.eventId,
    o.creatorId,
  ]);
  const kits = o.kits.length;
  // order i: kit i % kits, spread over the event; SKU skewed so a few sell most; 1 to 3 units
  await db.query(
    `WITH p AS (SELECT $2::text AS ev, $3::bigint AS st, $4::bigint AS dur, $5::int AS n, $6::int AS nsku, $7::int AS nk),
     x AS (
       SELECT i, 'o' || lpad(i::text, 8, '0') AS order_id, p.st + (i::bigint * p.dur / p.n) AS t,
         ((i * 7919) % 1000) * ((i * 7919) % 1000) / 1000 * p.nsku / 1000 AS s, 1 + i % 3 AS qty
       FROM p, generate_series(0, (SELECT n FROM p) - 1) AS i),
     y AS (
       SELECT x.*, 'SKU' || lpad(s::text, 2, '0') AS sku, 1000 + 100 * s AS price, qty * (1000 + 100 * s) AS total,
         to_char(to_timestamp(t) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS".000Z"') AS created
       FROM x)
     INSERT INTO orders (kit_id, order_id, event_id, kit_created_at, total_cents, currency, payment_method,
       state, body, received_at, settled_at)
     SELECT k.kit_id, y.order_id, p.ev, y.created, y.total, 'EUR', 'cash', 'settled',
       jsonb_build_object('id', y.order_id, 'kitId', k.kit_id, 'eventId', p.ev, 'status', 'accepted',
         'syncState', 'pending', 'totalCents', y.total, 'currency', 'EUR', 'payment', jsonb_build_object('method', 'cash'),
         'createdAt', y.created, 'catalogVersion', 1,
         'lines', jsonb_build_array(jsonb_build_object('sku', y.sku, 'name', y.sku, 'qty', y.qty,
            'unitPriceCents', y.price, 'lineCents', y.total))),
       to_timestamp(y.t + 2), to_timestamp(y.t + 3)
     FROM p, y JOIN (SELECT kit_id, ord - 1 AS kn FROM unnest($1::text[]) WITH ORDINALITY AS u(kit_id, ord)) k
       ON k.kn = y.i % (SELECT nk FROM p)`,
    [o.kits, o.eventId, o.start, o.durationS, o.orders, nSku, kits],
  );
  await db.query(
    `INSERT INTO order_lines (kit_id, order_id, line_no, kind, sku, bundle_id, qty, unit_price_cents, line_cents)
     SELECT o.kit_id, o.order_id, 100, 'item', l->>'sku', NULL, (l->>'qty')::bigint, (l->>'unitPriceCents')::bigint,
       (l->>'lineCents')::bigint
     FROM orders o, jsonb_array_elements(o.body->'lines') l WHERE o.event_id = $1`,
    [o.eventId],
  );
  const perKit = Math.floor(o.viewers / kits);
  for (const [n, kitId] of o.kits.entries()) {
    // a sample a second: viewers rise then fall; latency and stream wander; reservations every 30 s
    await db.query(
      `INSERT INTO kit_series (kit_id, event_id, t, v)
       SELECT $1::text, $2::text, to_timestamp($3::bigint + s), jsonb_build_object(
         'popkit_viewers', round($5::numeric * sin(pi() * s / $4::int) * 0.6 + 10 + $6::int),
         'popkit_orders_total', CASE WHEN s % 5 = 0 THEN 1 ELSE 0 END,
         'popkit_order_duration_seconds_p95', 0.04 + (s % 97) / 2000.0,
         'popkit_stream_latency_seconds', 2 + (s % 53) / 20.0,
         'popkit_stream_level', (s / 600) % 3,
         'popkit_reservations_made_total', CASE WHEN s % 30 = 0 THEN 1 ELSE 0 END,
         'popkit_reservations_converted_total', CASE WHEN s % 60 = 0 THEN 1 ELSE 0 END)
       FROM generate_series(0, $4::int - 1) AS s`,
      [kitId, o.eventId, o.start, o.durationS, perKit, n],
    );
    await db.query(
      `INSERT INTO kit_markers (kit_id, event_id, t, kind, label)
       SELECT $1::text, $2::text, to_timestamp($3::bigint + m.off), m.kind, m.label
       FROM (VALUES (0, 'event_start', ''), ($4::int - 1, 'event_stop', ''), (1800, 'drop_open', 'SKU00'),
                    (5400, 'drop_open', 'SKU05')) AS m(off, kind, label)`,
      [kitId, o.eventId, o.start, o.durationS],
    );
    const minutes = Math.min(360, Math.floor(o.durationS / 60));
    const curve = (v: number, half: number) =>
      Array.from({ length: minutes + 1 }, (_, m) => Math.round(v * 0.5 ** (m / half)));
    const agg: AudienceAggregateT = {
      eventId: o.eventId,
      k: 5,
      at: o.start + o.durationS,
      segments: [
        {
          segment: 'all',
          viewers: perKit,
          watchSeconds: perKit * 900,
          retention: curve(perKit, 20 + 5 * n),
          linkedBuyers: 0,
          linkedOrders: 0,
        },
        {
          segment: 'in_venue',
          viewers: Math.round(perKit * 0.3),
          watchSeconds: perKit * 400,
          retention: curve(Math.round(perKit * 0.3), 60),
          linkedBuyers: 0,
          linkedOrders: 0,
        },
        {
          segment: 'remote',
          viewers: perKit - Math.round(perKit * 0.3),
          watchSeconds: perKit * 500,
          retention: curve(perKit - Math.round(perKit * 0.3), 12),
          linkedBuyers: 0,
          linkedOrders: 0,
        },
      ],
      suppressed: ['loyalty_gold'],
    };
    const kitOrders = Math.floor(o.orders / kits) + (n < o.orders % kits ? 1 : 0);
    await db.query(
      'INSERT INTO kit_audience (kit_id, event_id, at, body, kit_orders) VALUES ($1, $2, to_timestamp($3), $4, $5)',
      [kitId, o.eventId, o.start + o.durationS, JSON.stringify(agg), kitOrders],
    );
  }
}
