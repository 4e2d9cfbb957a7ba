// The kits' live series on the hub (#12): sealed telemetry entries opened and checked (the plaintext is
// a SeriesBatch of the kit whose topic carried it), stored in kit_series / kit_markers / kit_audience
// (migration 11) inside the batch's transaction, and read back merged across kits for an event and
// rolled up per minute across a creator's events (routes/series.ts).
//
// Idempotent by construction: a second is keyed (kit, event, t) and inserted with ON CONFLICT DO
// NOTHING, so a resent batch or a redelivery after a hub restart stores each second once; markers are
// keyed by all their fields; the audience row keeps the newest aggregate per kit and event.
import { type SeriesBatchT, seriesBatch } from '../../core/contracts/series.ts';
import { isKitError } from '../../core/errors.ts';
import { mergeRuleOf, rollupOf } from '../../core/series-merge.ts';
import { open, type SealOpener, telemetryAad } from '../../core/telemetry-seal.ts';
import type { Queryable } from './db.ts';

/** Is this telemetry body a sealed envelope (rather than sync's own plaintext counters)? */
export function isSealedBody(body: Record<string, unknown>): boolean {
  return Object.hasOwn(body, 'sealed');
}

/**
 * Open one sealed telemetry entry sent on `kitId`'s topic: the SeriesBatch inside, or the coded reason
 * it is refused (SEAL_MALFORMED, SEAL_UNKNOWN_KEY, SEAL_OPEN_FAILED, SERIES_BATCH_INVALID).
 */
export function openSeriesEntry(
  opener: SealOpener | undefined,
  kitId: string,
  entry: { id: string; body: Record<string, unknown> },
): { batch: SeriesBatchT } | { code: string; message: string } {
  if (!opener) return { code: 'SEAL_UNKNOWN_KEY', message: 'this hub has no telemetry seal key' };
  let plain: Buffer;
  try {
    plain = open(opener, entry.body, telemetryAad({ kitId, entryId: entry.id }));
  } catch (err) {
    if (isKitError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  let batch: unknown;
  try {
    batch = JSON.parse(plain.toString('utf8'));
  } catch {
    return { code: 'SERIES_BATCH_INVALID', message: 'sealed plaintext is not JSON' };
  }
  if (!seriesBatch.check(batch))
    return { code: 'SERIES_BATCH_INVALID', message: seriesBatch.errors(batch, 3).join('; ') };
  if (batch.kitId !== kitId)
    return {
      code: 'SERIES_BATCH_INVALID',
      message: `kit_mismatch: batch of ${batch.kitId} on ${kitId}'s topic`,
    };
  if (batch.audience && batch.audience.eventId !== batch.eventId)
    return { code: 'SERIES_BATCH_INVALID', message: 'audience aggregate of another event' };
  return { batch };
}

/** Store one opened batch (inside the ingest transaction). */
export async function recordSeries(tx: Queryable, kitId: string, b: SeriesBatchT): Promise<void> {
  if (b.samples.length > 0) {
    await tx.query(
      `INSERT INTO kit_series (kit_id, event_id, t, v)
       SELECT $1, $2, to_timestamp(x.t), x.v FROM jsonb_to_recordset($3::jsonb) AS x(t bigint, v jsonb)
       ON CONFLICT (kit_id, event_id, t) DO NOTHING`,
      [kitId, b.eventId, JSON.stringify(b.samples)],
    );
  }
  if (b.markers.length > 0) {
    await tx.query(
      `INSERT INTO kit_markers (kit_id, event_id, t, kind, label)
       SELECT $1, $2, to_timestamp(x.t), x.kind, x.label
       FROM jsonb_to_recordset($3::jsonb) AS x(t bigint, kind text, label text)
       ON CONFLICT DO NOTHING`,
      [kitId, b.eventId, JSON.stringify(b.markers)],
    );
  }
  if (b.audience) {
    await tx.query(
      `INSERT INTO kit_audience (kit_id, event_id, at, body, kit_orders)
       VALUES ($1, $2, to_timestamp($3), $4::jsonb, $5)
       ON CONFLICT (kit_id, event_id) DO UPDATE SET at = EXCLUDED.at, body = EXCLUDED.body,
         kit_orders = EXCLUDED.kit_orders
       WHERE kit_audience.at <= EXCLUDED.at`,
      [kitId, b.eventId, b.audience.at, JSON.stringify(b.audience), b.kitOrders ?? null],
    );
  }
  await linkEventCreator(tx, b.eventId, true);
}

/**
 * The event's creator, from its newest catalog that names one. `onlyIfUnknown` (a telemetry batch):
 * nothing is read when the event is linked already; a stored catalog relinks (a creator may change).
 */
export async function linkEventCreator(tx: Queryable, eventId: string, onlyIfUnknown = false): Promise<void> {
  await tx.query(
    `INSERT INTO event_creators (event_id, creator_id)
     SELECT event_id, (signed->>'payload')::jsonb->'catalog'->>'creatorId' FROM catalogs
     WHERE event_id = $1 AND (signed->>'payload')::jsonb->'catalog'->>'creatorId' IS NOT NULL
       AND NOT ($2 AND EXISTS (SELECT 1 FROM event_creators WHERE event_id = $1))
     ORDER BY version DESC LIMIT 1
     ON CONFLICT (event_id) DO UPDATE SET creator_id = EXCLUDED.creator_id
     WHERE event_creators.creator_id <> EXCLUDED.creator_id`,
    [eventId, onlyIfUnknown],
  );
}

// ---------------------------------------------------------------- reads

export interface EventSeriesQuery {
  eventId: string;
  from: number;
  to: number;
  metrics: readonly string[] | undefined;
  kitId: string | undefined;
}

type Values = Record<string, number>;

/** Keep only `metrics` of a stored second (all when undefined); undefined when none is left. */
function pick(v: Values, metrics: readonly string[] | undefined): Values | undefined {
  if (!metrics) return v;
  const out: Values = {};
  let any = false;
  for (const m of metrics)
    if (typeof v[m] === 'number') {
      out[m] = v[m];
      any = true;
    }
  return any ? out : undefined;
}

/** One event's seconds from `from` to `to`: merged across kits, per kit, markers, audience per kit. */
export async function eventSeries(db: Queryable, q: EventSeriesQuery) {
  const rows = await db.query<{ kit_id: string; t: string | number; v: Values }>(
    `SELECT kit_id, extract(epoch FROM t)::bigint AS t, v FROM kit_series
     WHERE event_id = $1 AND t >= to_timestamp($2) AND t <= to_timestamp($3) AND ($4::text IS NULL OR kit_id = $4)
     ORDER BY t, kit_id`,
    [q.eventId, q.from, q.to, q.kitId ?? null],
  );
  const perKit = new Map<string, { t: number; v: Values }[]>();
  const merged = new Map<number, Values>();
  for (const r of rows.rows) {
    const t = Number(r.t);
    const v = pick(r.v, q.metrics);
    if (!v) continue;
    const list = perKit.get(r.kit_id) ?? [];
    list.push({ t, v });
    perKit.set(r.kit_id, list);
    const m = merged.get(t) ?? {};
    for (const [k, x] of Object.entries(v)) {
      const rule = mergeRuleOf(k);
      if (!rule) continue;
      const prev = m[k];
      m[k] =
        prev === undefined
          ? x
          : rule === 'sum'
            ? prev + x
            : rule === 'max'
              ? Math.max(prev, x)
              : Math.min(prev, x);
    }
    merged.set(t, m);
  }
  const markers = await db.query<{ kit_id: string; t: string | number; kind: string; label: string }>(
    `SELECT kit_id, extract(epoch FROM t)::bigint AS t, kind, label FROM kit_markers
     WHERE event_id = $1 AND t >= to_timestamp($2) AND t <= to_timestamp($3) AND ($4::text IS NULL OR kit_id = $4)
     ORDER BY t, kit_id, kind, label`,
    [q.eventId, q.from, q.to, q.kitId ?? null],
  );
  const audience = await db.query<{
    kit_id: string;
    at: string | number;
    body: unknown;
    kit_orders: number | null;
  }>(
    `SELECT kit_id, extract(epoch FROM at)::bigint AS at, body, kit_orders FROM kit_audience
     WHERE event_id = $1 AND ($2::text IS NULL OR kit_id = $2) ORDER BY kit_id`,
    [q.eventId, q.kitId ?? null],
  );
  return {
    eventId: q.eventId,
    from: q.from,
    to: q.to,
    kits: [...perKit.keys()].sort(),
    samples: [...merged].map(([t, v]) => ({ t, v })),
    perKit: [...perKit].sort(([a], [b]) => (a < b ? -1 : 1)).map(([kitId, samples]) => ({ kitId, samples })),
    markers: markers.rows.map((r) => ({ kitId: r.kit_id, t: Number(r.t), kind: r.kind, label: r.label })),
    audience: audience.rows.map((r) => ({
      kitId: r.kit_id,
      at: Number(r.at),
      kitOrders: r.kit_orders === null ? null : Number(r.kit_orders),
      aggregate: r.body,
    })),
  };
}

/** The newest second stored for an event (the default end of a span), or undefined. */
export async function newestSecond(db: Queryable, eventId: string): Promise<number | undefined> {
  const res = await db.query<{ t: string | number | null }>(
    'SELECT extract(epoch FROM max(t))::bigint AS t FROM kit_series WHERE event_id = $1',
    [eventId],
  );
  const t = res.rows[0]?.t;
  return t === null || t === undefined ? undefined : Number(t);
}

/**
 * A creator's events across `from`..`to`: per event, totals (counters summed, gauges at their peak or
 * low by the merge rule) and per-minute rollups of the seconds merged across kits.
 */
export async function creatorSeries(
  db: Queryable,
  q: { creatorId: string; from: number; to: number; metrics: readonly string[] | undefined },
) {
  const events = await db.query<{ event_id: string }>(
    'SELECT event_id FROM event_creators WHERE creator_id = $1 ORDER BY event_id',
    [q.creatorId],
  );
  const ids = events.rows.map((r) => r.event_id);
  if (ids.length === 0) return { creatorId: q.creatorId, from: q.from, to: q.to, events: [] };
  // per second, merged across kits by each metric's rule; then per minute
  const rows = await db.query<{
    event_id: string;
    t: string | number;
    key: string;
    s: number;
    mx: number;
    mn: number;
    kits: number;
  }>(
    `SELECT event_id, extract(epoch FROM t)::bigint AS t, e.key, sum(e.value::float8) AS s,
       max(e.value::float8) AS mx, min(e.value::float8) AS mn, count(DISTINCT kit_id)::int AS kits
     FROM kit_series CROSS JOIN LATERAL jsonb_each_text(v) AS e(key, value)
     WHERE event_id = ANY($1::text[]) AND t >= to_timestamp($2) AND t <= to_timestamp($3)
     GROUP BY event_id, t, e.key ORDER BY event_id, t`,
    [ids, q.from, q.to],
  );
  const kitsOf = await db.query<{
    event_id: string;
    kits: number;
    first: string | number;
    last: string | number;
  }>(
    `SELECT event_id, count(DISTINCT kit_id)::int AS kits, extract(epoch FROM min(t))::bigint AS first,
       extract(epoch FROM max(t))::bigint AS last
     FROM kit_series WHERE event_id = ANY($1::text[]) AND t >= to_timestamp($2) AND t <= to_timestamp($3)
     GROUP BY event_id`,
    [ids, q.from, q.to],
  );
  const orders = await db.query<{ event_id: string; n: string | number | null }>(
    'SELECT event_id, sum(kit_orders) AS n FROM kit_audience WHERE event_id = ANY($1::text[]) GROUP BY event_id',
    [ids],
  );
  const want = q.metrics ? new Set(q.metrics) : undefined;
  const byEvent = new Map<string, { totals: Values; minutes: Map<number, Values> }>();
  for (const id of ids) byEvent.set(id, { totals: {}, minutes: new Map() });
  for (const r of rows.rows) {
    const rule = mergeRuleOf(r.key);
    if (!rule || (want && !want.has(r.key))) continue;
    const x = rule === 'sum' ? Number(r.s) : rule === 'max' ? Number(r.mx) : Number(r.mn);
    const ev = byEvent.get(r.event_id)!;
    const minute = Math.floor(Number(r.t) / 60) * 60;
    const m = ev.minutes.get(minute) ?? {};
    const roll = rollupOf(r.key);
    const fold = (prev: number | undefined) =>
      prev === undefined
        ? x
        : roll === 'sum'
          ? prev + x
          : roll === 'max'
            ? Math.max(prev, x)
            : Math.min(prev, x);
    m[r.key] = fold(m[r.key]);
    ev.minutes.set(minute, m);
    ev.totals[r.key] = fold(ev.totals[r.key]);
  }
  const span = new Map(kitsOf.rows.map((r) => [r.event_id, r]));
  const kitOrders = new Map(orders.rows.map((r) => [r.event_id, r.n === null ? null : Number(r.n)]));
  return {
    creatorId: q.creatorId,
    from: q.from,
    to: q.to,
    events: ids.map((eventId) => {
      const ev = byEvent.get(eventId)!;
      const s = span.get(eventId);
      return {
        eventId,
        kits: s?.kits ?? 0,
        first: s ? Number(s.first) : null,
        last: s ? Number(s.last) : null,
        kitOrders: kitOrders.get(eventId) ?? null,
        totals: ev.totals,
        minutes: [...ev.minutes].sort(([a], [b]) => a - b).map(([t, v]) => ({ t, v })),
      };
    }),
  };
}
