// The live series (#12) against real LMDB: the recorder's seconds (a counter's increase in its second,
// latency percentiles of the second, absent is not 0), markers, batching and the retention sweep
// without empty transactions, a restart that does not double count, GET /v1/series (auth, hostile
// queries) and /metrics exposing the same names with the same figures.
process.env['NODE_ENV'] = 'test';

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { writeRunStatus } from '../../core/contracts/run-status.ts';
import { METRIC_NAMES, type MetricName, SERIES_METRICS, seriesSample } from '../../core/contracts/series.ts';
import type { ViewerCounts } from '../../core/store/audience.ts';
import { setEventState } from '../../core/store/event.ts';
import { openKitStore, type StoredCatalog } from '../../core/store/open.ts';
import { readMarkers, readSeries, sweepSeries, writeSeries } from '../../core/store/series.ts';
import { createMetrics } from '../../services/checkout/metrics.ts';
import { SeriesRecorder } from '../../services/checkout/series/recorder.ts';
import { LATENCY_RESERVOIR, LiveSignals, percentile } from '../../services/checkout/series/signals.ts';
import { auth, smallCatalog, startCheckout, tempDir } from '../support/checkout.ts';
import { kitdRunStatus, mediaRunStatus } from '../support/series.ts';

const nowS = () => Math.floor(Date.now() / 1000);

/** A store, the live signals and a recorder on a clock the test moves (seconds land where it says). */
function rig(
  over: { viewers?: ViewerCounts; catalog?: () => StoredCatalog | undefined; retentionH?: number } = {},
) {
  const dataDir = tempDir('popkit-series-');
  const store = openKitStore(dataDir);
  const t0 = nowS();
  let clock = t0 * 1000 + 20;
  const now = () => clock;
  const signals = new LiveSignals({ dataDir, now, viewers: over.viewers });
  const make = () =>
    new SeriesRecorder({
      store,
      signals,
      catalog: over.catalog ?? (() => undefined),
      retentionH: over.retentionH ?? 72,
      now,
      flushEvery: 1000,
    });
  const rec = make();
  return {
    dataDir,
    store,
    signals,
    rec,
    make,
    t0,
    /** move the clock into second `t` (20 ms past its start) */
    at(t: number) {
      clock = t * 1000 + 20;
    },
    /** tick just after second `t` ended: that second's sample */
    after(t: number, r = rec) {
      clock = (t + 1) * 1000 + 20;
      r.tick();
    },
  };
}

const sample = (store: ReturnType<typeof openKitStore>, t: number) => readSeries(store, t, t)[0]?.v;

describe('the recorder', () => {
  test("orders of a second are that second's increase, with the second's latency p50/p95; a quiet second says 0 and no latency", async () => {
    const r = rig();
    try {
      // second t0: 3 orders, 20 answers of 1..20 ms
      for (const cents of [1000, 2500, 500]) r.signals.order(cents);
      for (let i = 1; i <= 20; i++) r.signals.latency(i / 1000);
      r.after(r.t0);
      // second t0+1: nothing; t0+2: one order
      r.after(r.t0 + 1);
      r.at(r.t0 + 2);
      r.signals.order(700);
      r.signals.latency(0.05);
      r.after(r.t0 + 2);
      const before = r.store.root.getStats() as { lastTxnId: number };
      await r.rec.flush();
      assert.equal(r.rec.stats.transactions, 1, 'three seconds, one write transaction');
      assert.equal((r.store.root.getStats() as { lastTxnId: number }).lastTxnId, before.lastTxnId + 1);
      const s0 = sample(r.store, r.t0)!;
      assert.equal(s0.popkit_orders_total, 3);
      assert.equal(s0.popkit_revenue_cents_total, 4000);
      assert.equal(s0.popkit_order_duration_seconds_p50, 0.01);
      assert.equal(s0.popkit_order_duration_seconds_p95, 0.019);
      const s1 = sample(r.store, r.t0 + 1)!;
      assert.equal(s1.popkit_orders_total, 0);
      assert.equal(s1.popkit_revenue_cents_total, 0);
      assert.ok(!('popkit_order_duration_seconds_p50' in s1), 'no order, no latency: absent, not 0');
      const s2 = sample(r.store, r.t0 + 2)!;
      assert.deepEqual([s2.popkit_orders_total, s2.popkit_revenue_cents_total], [1, 700]);
      assert.equal(s2.popkit_order_duration_seconds_p95, 0.05);
      for (const s of readSeries(r.store, r.t0, r.t0 + 2))
        assert.ok(seriesSample.check(s), seriesSample.errors(s).join('; '));
      // a filter keeps the named metrics only
      assert.deepEqual(readSeries(r.store, r.t0, r.t0 + 2, ['popkit_revenue_cents_total']), [
        { t: r.t0, v: { popkit_revenue_cents_total: 4000 } },
        { t: r.t0 + 1, v: { popkit_revenue_cents_total: 0 } },
        { t: r.t0 + 2, v: { popkit_revenue_cents_total: 700 } },
      ]);
    } finally {
      await r.store.close();
    }
  });

  test('a value that cannot be read is absent, not 0: stream and power appear with their files, viewers with a tracker', async () => {
    let current = 0;
    const totals = { joins: 0, leaves: 0, watchSeconds: 0 };
    const viewers: ViewerCounts = { current: () => current, totals: () => ({ ...totals }) };
    const none = rig();
    const r = rig({ viewers });
    try {
      none.after(none.t0);
      await none.rec.flush();
      const bare = sample(none.store, none.t0)!;
      for (const m of [
        'popkit_viewers',
        'popkit_viewer_joins_total',
        'popkit_stream_level',
        'popkit_stream_bitrate_bits_per_second',
        'popkit_battery_soc_ratio',
        'popkit_health_score_ratio',
      ] as const)
        assert.ok(!(m in bare), `${m} absent without its source`);
      assert.equal(bare.popkit_orders_total, 0);

      r.after(r.t0);
      current = 7;
      totals.joins = 9;
      totals.leaves = 2;
      totals.watchSeconds = 40;
      writeRunStatus(r.dataDir, 'media', mediaRunStatus({ ladderStep: 1, bitrateKbps: 1800 }));
      writeRunStatus(r.dataDir, 'kitd', kitdRunStatus());
      r.after(r.t0 + 1);
      // the stream steps down: a marker; then media says it is unavailable: stream values absent
      writeRunStatus(
        r.dataDir,
        'media',
        mediaRunStatus({ ladderStep: 3, bitrateKbps: 600, newestSegmentAgeMs: null }),
      );
      r.after(r.t0 + 2);
      writeRunStatus(r.dataDir, 'media', mediaRunStatus({ state: 'unavailable' }));
      r.after(r.t0 + 3);
      await r.rec.flush();
      const [a, b, c, d] = [0, 1, 2, 3].map((i) => sample(r.store, r.t0 + i)!);
      assert.equal(a!.popkit_viewers, 0);
      assert.equal(a!.popkit_viewer_joins_total, 0, 'the first reading is the baseline');
      assert.deepEqual(
        [
          b!.popkit_viewers,
          b!.popkit_viewer_joins_total,
          b!.popkit_viewer_leaves_total,
          b!.popkit_watch_seconds_total,
        ],
        [7, 9, 2, 40],
      );
      assert.equal(c!.popkit_viewer_joins_total, 0);
      assert.deepEqual(
        [b!.popkit_stream_level, b!.popkit_stream_bitrate_bits_per_second, b!.popkit_stream_latency_seconds],
        [1, 1_800_000, 1.2],
      );
      // a stale reading (the third power device) is left out; loads of fresh devices add up
      assert.deepEqual(
        [
          b!.popkit_battery_soc_ratio,
          b!.popkit_solar_watts,
          b!.popkit_load_watts,
          b!.popkit_health_score_ratio,
        ],
        [0.64, 35, 15, 0.87],
      );
      assert.equal(c!.popkit_stream_level, 3);
      assert.ok(!('popkit_stream_latency_seconds' in c!), 'no segment yet: latency absent');
      assert.ok(!('popkit_stream_level' in d!) && !('popkit_stream_bitrate_bits_per_second' in d!));
      assert.equal(d!.popkit_battery_soc_ratio, 0.64, 'kitd still reports');
      assert.deepEqual(
        readMarkers(r.store, r.t0, r.t0 + 3).map((m) => [m.t - r.t0, m.kind, m.label]),
        [[2, 'stream_level', '3']],
      );
    } finally {
      await none.store.close();
      await r.store.close();
    }
  });

  test('markers: event start and stop, drop windows of items and bundles as they pass, each stored once', async () => {
    let cat: StoredCatalog | undefined;
    const r = rig({ catalog: () => cat });
    try {
      const iso = (t: number) => new Date(t * 1000).toISOString();
      const t0 = r.t0;
      cat = {
        version: 1,
        eventId: 'ev-m',
        currency: 'USD',
        items: [
          {
            sku: 'HERO/01',
            name: 'Hero',
            priceCents: 100,
            currency: 'USD',
            saleWindow: { startsAt: iso(t0 + 2), endsAt: iso(t0 + 4) },
          },
          {
            sku: 'LATER',
            name: 'Later',
            priceCents: 100,
            currency: 'USD',
            saleWindow: { startsAt: iso(t0 + 30), endsAt: iso(t0 + 60) },
          },
        ],
        bundles: [
          {
            id: 'BND-1',
            name: 'B',
            components: [],
            priceCents: 1,
            saleWindow: { startsAt: iso(t0 + 3), endsAt: iso(t0 + 99) },
          },
        ],
        pickupSlots: [],
        source: 'local',
        updatedAt: iso(t0),
        startStock: {},
      };
      const started = await setEventState(r.store, true, 'ev-m', null);
      const startS = Math.floor(Date.parse(started.startedAt!) / 1000);
      const stopped = await setEventState(r.store, false, undefined, null);
      const stopS = Math.floor(Date.parse(stopped.stoppedAt!) / 1000);
      for (let t = t0; t <= t0 + 5; t++) r.after(t);
      await r.rec.flush();
      const seen = readMarkers(r.store, t0 - 5, t0 + 5).map((m) => [m.t - t0, m.kind, m.label]);
      assert.deepEqual(
        seen.filter(([, k]) => !String(k).startsWith('event_')),
        [
          [2, 'drop_open', 'HERO_01'],
          [3, 'drop_open', 'BND-1'],
          [4, 'drop_close', 'HERO_01'],
        ],
      );
      assert.deepEqual(
        seen.filter(([, k]) => String(k).startsWith('event_')),
        [
          [startS - t0, 'event_start', 'ev-m'],
          [stopS - t0, 'event_stop', 'ev-m'],
        ],
      );
      // a marker written again (a restart re-deriving it) is not stored twice
      const again = await writeSeries(r.store, {
        samples: [],
        markers: [{ t: t0 + 2, kind: 'drop_open', label: 'HERO_01' }],
      });
      assert.deepEqual([again.markers, again.duplicateMarkers], [0, 1]);
      // a recorder started later (a restart) marks what passed while it was down, since the last stored second
      const later = r.make();
      r.after(t0 + 40, later);
      await later.flush();
      const after = readMarkers(r.store, t0 + 6, t0 + 41).map((m) => [m.t - t0, m.kind, m.label]);
      assert.ok(
        after.some(([t, k, l]) => t === 30 && k === 'drop_open' && l === 'LATER'),
        JSON.stringify(after),
      );
      assert.equal(readMarkers(r.store, t0 - 5, t0 + 5).length, seen.length, 'nothing doubled');
    } finally {
      await r.store.close();
    }
  });

  test('retention: old seconds and markers go in the batch transaction; nothing to write or sweep opens no transaction', async () => {
    const r = rig({ retentionH: 1 });
    try {
      const old = r.t0 - 2 * 3600;
      await writeSeries(r.store, {
        samples: Array.from({ length: 10 }, (_, i) => ({ t: old + i, v: { popkit_orders_total: 1 } })),
        markers: [{ t: old, kind: 'event_start', label: 'ev-old' }],
      });
      const kept = r.t0 - 600;
      await writeSeries(r.store, { samples: [{ t: kept, v: { popkit_orders_total: 2 } }], markers: [] });
      r.after(r.t0);
      const txn = (r.store.root.getStats() as { lastTxnId: number }).lastTxnId;
      await r.rec.flush();
      assert.equal(
        (r.store.root.getStats() as { lastTxnId: number }).lastTxnId,
        txn + 1,
        'one transaction for both',
      );
      assert.equal(r.rec.stats.swept, 11);
      assert.deepEqual(readSeries(r.store, old - 10, old + 100), []);
      assert.deepEqual(readMarkers(r.store, old - 10, old + 100), []);
      assert.equal(sample(r.store, kept)?.popkit_orders_total, 2);
      // nothing pending, nothing older than the retention: no write transaction at all
      const idle = await r.rec.flush();
      void idle;
      const swept = await sweepSeries(r.store, r.t0 - 3600);
      assert.equal(swept.wrote, false);
      assert.equal((r.store.root.getStats() as { lastTxnId: number }).lastTxnId, txn + 1);
      assert.equal(r.rec.stats.transactions, 1);
    } finally {
      await r.store.close();
    }
  });

  test("/metrics reads the viewer tracker through the same signals; a drop's busiest second keeps a bounded reservoir of latencies", async () => {
    const dataDir = tempDir('popkit-series-metrics-');
    const store = openKitStore(dataDir);
    try {
      const viewers: ViewerCounts = {
        current: () => 12,
        totals: () => ({ joins: 30, leaves: 18, watchSeconds: 900 }),
      };
      const signals = new LiveSignals({ dataDir, viewers });
      const text = await createMetrics(store, dataDir, signals).registry.metrics();
      assert.match(text, /^popkit_viewers 12$/m);
      assert.match(text, /^popkit_viewer_joins_total 30$/m);
      assert.match(text, /^popkit_viewer_leaves_total 18$/m);
      assert.match(text, /^popkit_watch_seconds_total 900$/m);
      // without a recorder nothing is kept; with one, at most the reservoir, spread over the second
      signals.latency(0.5);
      assert.deepEqual(signals.takeLatencies(), []);
      signals.collectLatency = true;
      for (let i = 0; i < 20_000; i++) signals.latency(((i * 7919) % 20_000) / 20_000);
      const kept = signals.takeLatencies().sort((a, b) => a - b);
      assert.equal(kept.length, LATENCY_RESERVOIR);
      const p50 = percentile(kept, 0.5)!;
      assert.ok(p50 > 0.4 && p50 < 0.6, `p50 of a uniform second ≈ 0.5, got ${p50}`);
      assert.deepEqual(signals.takeLatencies(), [], 'taken once');
    } finally {
      await store.close();
    }
  });

  test('a second written in two parts (a restart inside it) merges: counters add, gauges take the newer', async () => {
    const r = rig();
    try {
      const t = r.t0;
      await writeSeries(r.store, {
        samples: [
          { t, v: { popkit_orders_total: 2, popkit_revenue_cents_total: 300, popkit_stream_level: 1 } },
        ],
        markers: [],
      });
      const second = await writeSeries(r.store, {
        samples: [
          { t, v: { popkit_orders_total: 1, popkit_revenue_cents_total: 50, popkit_stream_level: 2 } },
        ],
        markers: [],
      });
      assert.equal(second.merged, 1);
      assert.deepEqual(sample(r.store, t), {
        popkit_orders_total: 3,
        popkit_revenue_cents_total: 350,
        popkit_stream_level: 2,
      });
    } finally {
      await r.store.close();
    }
  });
});

const sumOf = (samples: Array<{ v: Partial<Record<MetricName, number>> }>, m: MetricName) =>
  samples.reduce((s, x) => s + (x.v[m] ?? 0), 0);

async function sell(app: Awaited<ReturnType<typeof startCheckout>>['app'], n: number, key: string) {
  let cents = 0;
  for (let i = 0; i < n; i++) {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: { ...auth, 'idempotency-key': `${key}-${i}` },
      payload: { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } },
    });
    assert.equal(r.statusCode, 201, r.body);
    cents += r.json().totalCents as number;
  }
  // a replay is not another order
  const replay = await app.inject({
    method: 'POST',
    url: '/v1/orders',
    headers: { ...auth, 'idempotency-key': `${key}-0` },
    payload: { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } },
  });
  assert.equal(replay.statusCode, 200);
  return cents;
}

async function hold(app: Awaited<ReturnType<typeof startCheckout>>['app']) {
  const r = await app.inject({
    method: 'POST',
    url: '/v1/reservations',
    headers: auth,
    payload: { lines: [{ sku: 'A', qty: 1 }] },
  });
  assert.equal(r.statusCode, 201, r.body);
}

describe('checkout records its series', () => {
  test('across a restart nothing is counted twice: orders, revenue and reservations add up to what happened', async () => {
    const dataDir = tempDir('popkit-series-restart-');
    const first = await startCheckout({}, dataDir);
    const from = nowS() - 1;
    let cents = 0;
    try {
      const put = await first.app.inject({
        method: 'PUT',
        url: '/v1/catalog',
        headers: auth,
        payload: smallCatalog({ A: 100 }),
      });
      assert.equal(put.statusCode, 200, put.body);
      cents += await sell(first.app, 3, 'one');
      await hold(first.app);
      await hold(first.app);
    } finally {
      await first.kit.close();
    }
    // LMDB keeps the reservation counters (2 made): the next process must not count them again
    const second = await startCheckout({}, dataDir);
    try {
      cents += await sell(second.app, 2, 'two');
      await hold(second.app);
    } finally {
      await second.kit.close();
    }
    const store = openKitStore(dataDir);
    try {
      const samples = readSeries(store, from, nowS() + 1);
      assert.equal(sumOf(samples, 'popkit_orders_total'), 5);
      assert.equal(sumOf(samples, 'popkit_revenue_cents_total'), cents);
      assert.equal(sumOf(samples, 'popkit_reservations_made_total'), 3);
      assert.equal(sumOf(samples, 'popkit_reservations_converted_total'), 0);
    } finally {
      await store.close();
    }
  });

  test('POPKIT_SERIES=0 records nothing; /metrics still names every series metric', async () => {
    const kit = await startCheckout({ POPKIT_SERIES: '0' });
    const from = nowS() - 1;
    try {
      await kit.app.inject({
        method: 'PUT',
        url: '/v1/catalog',
        headers: auth,
        payload: smallCatalog({ A: 10 }),
      });
      await sell(kit.app, 2, 'off');
      const m = await kit.app.inject({ method: 'GET', url: '/metrics', headers: auth });
      assert.match(m.body, /^popkit_orders_total\{payment="cash"\} 2$/m);
      assert.doesNotMatch(m.body, /popkit_series_recorder_seconds_total/);
    } finally {
      await kit.kit.close();
    }
    const store = openKitStore(kit.dataDir);
    try {
      assert.deepEqual(readSeries(store, from, nowS() + 1), []);
    } finally {
      await store.close();
    }
  });

  test('/metrics exposes every series metric under its name and agrees with the series', async () => {
    const kit = await startCheckout();
    try {
      writeRunStatus(kit.dataDir, 'media', mediaRunStatus({ ladderStep: 2, bitrateKbps: 1200 }));
      writeRunStatus(kit.dataDir, 'kitd', kitdRunStatus());
      await kit.app.inject({
        method: 'PUT',
        url: '/v1/catalog',
        headers: auth,
        payload: smallCatalog({ A: 50 }),
      });
      const cents = await sell(kit.app, 4, 'm');
      await hold(kit.app);
      const text = (await kit.app.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
      const typeOf = (name: string) => new RegExp(`^# TYPE ${name} (\\w+)$`, 'm').exec(text)?.[1];
      for (const m of METRIC_NAMES) {
        // the series' latency percentiles summarise the histogram of the same base name
        const pct = /^(.*)_p(50|95)$/.exec(m);
        if (pct) {
          assert.equal(typeOf(pct[1]!), 'histogram', `${m}: ${pct[1]} histogram exposed`);
          continue;
        }
        assert.equal(typeOf(m), SERIES_METRICS[m].kind, `${m} exposed as a ${SERIES_METRICS[m].kind}`);
      }
      const value = (name: string) => {
        const lines = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))];
        return lines.length ? lines.reduce((s, l) => s + Number(l[1]), 0) : undefined;
      };
      assert.equal(value('popkit_revenue_cents_total'), cents);
      assert.equal(value('popkit_stream_level'), 2);
      assert.equal(value('popkit_stream_bitrate_bits_per_second'), 1_200_000);
      assert.equal(value('popkit_battery_soc_ratio'), 0.64);
      assert.equal(value('popkit_reservations_made_total'), 1);
      // checkout's wiring gives the audience feature's tracker: nobody on /live is 0, not absent
      assert.equal(value('popkit_viewers'), 0, 'the viewer tracker is wired');
      // the series says the same once its batch is written (polled: the recorder writes every 5 s)
      let samples: Array<{ v: Partial<Record<MetricName, number>> }> = [];
      for (let i = 0; i < 100; i++) {
        const res = await kit.app.inject({ method: 'GET', url: '/v1/series', headers: auth });
        assert.equal(res.statusCode, 200);
        samples = res.json().samples;
        if (
          sumOf(samples, 'popkit_orders_total') >= 4 &&
          samples.some((s) => s.v.popkit_stream_level !== undefined)
        )
          break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(sumOf(samples, 'popkit_orders_total'), value('popkit_orders_total'));
      assert.equal(sumOf(samples, 'popkit_revenue_cents_total'), cents);
      assert.equal(sumOf(samples, 'popkit_reservations_made_total'), 1);
      const last = samples.findLast((s) => s.v.popkit_stream_level !== undefined)!;
      assert.equal(last.v.popkit_stream_bitrate_bits_per_second, 1_200_000);
      assert.equal(last.v.popkit_health_score_ratio, 0.87);
    } finally {
      await kit.kit.close();
    }
  });
});

describe('GET /v1/series', () => {
  test('staff only: no credential 401, a wrong one 401, a paired terminal and the admin 200', async () => {
    const kit = await startCheckout();
    try {
      const none = await kit.app.inject({ method: 'GET', url: '/v1/series' });
      assert.equal(none.statusCode, 401);
      assert.equal(none.json().error.code, 'UNAUTHORIZED');
      const wrong = await kit.app.inject({
        method: 'GET',
        url: '/v1/series',
        headers: { authorization: 'Bearer nope-nope-nope' },
      });
      assert.equal(wrong.statusCode, 401);
      const p = await kit.app.inject({
        method: 'POST',
        url: '/v1/terminals/pairings',
        headers: auth,
        payload: { name: 'till' },
      });
      const r = await kit.app.inject({
        method: 'POST',
        url: '/v1/terminals/redeem',
        payload: { code: p.json().code },
      });
      const terminal = await kit.app.inject({
        method: 'GET',
        url: '/v1/series',
        headers: { authorization: `Bearer ${r.json().token}` },
      });
      assert.equal(terminal.statusCode, 200, terminal.body);
      const body = terminal.json();
      assert.equal(body.to - body.from, 900, 'the last 15 minutes by default');
      assert.deepEqual(Object.keys(body).sort(), ['eventId', 'from', 'markers', 'samples', 'to']);
      assert.equal(terminal.headers['cache-control'], 'no-store');
      const admin = await kit.app.inject({ method: 'GET', url: '/v1/series', headers: auth });
      assert.equal(admin.statusCode, 200);
    } finally {
      await kit.kit.close();
    }
  });

  test('hostile queries are refused with a coded 400 that says what is wrong', async () => {
    const kit = await startCheckout();
    try {
      const t = nowS();
      const cases: Array<[string, RegExp]> = [
        ['from=abc', /from must match pattern/],
        ['to=%00', /to must match pattern/],
        [`from=${t}%00`, /from must match pattern/],
        ['from=-5', /from must match pattern/],
        ['from=1.5', /from must match pattern/],
        ['from=0x10', /from must match pattern/],
        [`from=${'9'.repeat(5000)}`, /from must match pattern/],
        ['from=1&from=2', /from must be string/],
        ['metrics[]=popkit_orders_total', /additional properties/],
        ['__proto__=1', /additional properties/],
        ['constructor=1', /additional properties/],
        ['__proto__[from]=1', /additional properties/],
        ['metrics=__proto__', /unknown metric __proto__/],
        ['metrics=constructor', /unknown metric constructor/],
        ['metrics=popkit_orders_total,', /metrics must match pattern/],
        ['metrics=POPKIT_ORDERS_TOTAL', /metrics must match pattern/],
        [
          `metrics=${Array(200).fill('popkit_orders_total').join(',')}`,
          /metrics must NOT have more than 1000/,
        ],
        ['metrics=popkit_orders_total,popkit_nope', /unknown metric popkit_nope/],
        [`from=${t}&to=${t - 1}`, /to is before from/],
        [`from=${t - 7 * 3600}&to=${t}`, /spans at most 21600 seconds/],
        ['from=0&to=10', /from is a unix second from 946684800/],
        ['to=9999999999', /is a unix second from/],
        ['limit=5', /additional properties/],
      ];
      for (const [q, why] of cases) {
        const res = await kit.app.inject({ method: 'GET', url: `/v1/series?${q}`, headers: auth });
        assert.equal(res.statusCode, 400, `${q.slice(0, 60)}: ${res.body}`);
        assert.equal(res.json().error.code, 'VALIDATION');
        assert.match(res.json().error.message, why, q.slice(0, 60));
      }
      // a span of exactly the maximum, metrics named twice: fine
      const ok = await kit.app.inject({
        method: 'GET',
        url: `/v1/series?from=${t - 21600}&to=${t}&metrics=popkit_orders_total,popkit_orders_total`,
        headers: auth,
      });
      assert.equal(ok.statusCode, 200, ok.body);
    } finally {
      await kit.kit.close();
    }
  });
});
