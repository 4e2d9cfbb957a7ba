// The post-event report's arithmetic (core/report/compute.ts) against figures worked out by hand:
// a Pearson r, a reconciliation where the hub lacks one order, retention curves of two kits added,
// the first-90-second rush of a drop; and the page escapes hostile names.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { catalogInput } from '../../core/contracts/catalog.ts';
import { eventReport } from '../../core/contracts/report.ts';
import type { AudienceAggregateT, SeriesSampleT } from '../../core/contracts/series.ts';
import { computeReport, type KitInput, mergeRetention, pearson } from '../../core/report/compute.ts';
import { renderReportHtml } from '../../core/report/render.ts';
import { suggestionFile } from '../../core/report/suggest.ts';

const T0 = 1_800_000_000; // a minute boundary relative to itself: minutes are counted from the start

function kit(over: Partial<KitInput> & { kitId: string }): KitInput {
  return {
    orders: [],
    kitOrders: 0,
    soldKit: new Map(),
    hubOrders: 0,
    hubLastArrival: null,
    soldHub: new Map(),
    startStock: {},
    onHand: {},
    samples: [],
    markers: [],
    audience: null,
    ...over,
  };
}

const agg = (segments: Array<[string, number[]]>, suppressed: string[] = []): AudienceAggregateT => ({
  eventId: 'ev1',
  k: 5,
  at: T0,
  segments: segments.map(([segment, retention]) => ({
    segment,
    viewers: retention[0] ?? 0,
    watchSeconds: 0,
    retention,
    linkedBuyers: 0,
    linkedOrders: 0,
  })),
  suppressed,
});

describe('report arithmetic', () => {
  test('pearson: x 1..5 against y 2,4,5,4,5 is 6/sqrt(60)', () => {
    // mean x 3, mean y 4; Σdxdy = 4+0+0+0+2 = 6, Σdx² = 10, Σdy² = 6 → r = 6/√60 ≈ 0.7746
    const r = pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5]);
    assert.ok(r !== null);
    assert.ok(Math.abs(r - 6 / Math.sqrt(60)) < 1e-12);
    assert.equal(pearson([1, 1, 1], [1, 2, 3]), null, 'a side that does not vary has no r');
    assert.equal(pearson([1, 2], [1, 2]), null, 'two points say nothing');
  });

  test('per-minute conversion and its correlation with checkout latency', () => {
    // 5 minutes, 10 viewers each; orders per minute 2,4,5,4,5; the minute's p95 is 1..5 seconds
    const ordersPerMin = [2, 4, 5, 4, 5];
    const samples: SeriesSampleT[] = [];
    for (let m = 0; m < 5; m++)
      for (let s = 0; s < 60; s++)
        samples.push({
          t: T0 + m * 60 + s,
          v: { popkit_viewers: 10, popkit_order_duration_seconds_p95: m + 1, popkit_stream_level: 0 },
        });
    const orders = ordersPerMin.flatMap((n, m) =>
      Array.from({ length: n }, (_, i) => ({
        t: T0 + m * 60 + i,
        cents: 1000,
        sold: true,
        units: [['TEE', 1]] as Array<[string, number]>,
      })),
    );
    const r = computeReport({
      eventId: 'ev1',
      source: 'kit',
      kits: [
        kit({
          kitId: 'k1',
          samples,
          orders,
          kitOrders: 20,
          hubOrders: 20,
          soldKit: new Map([['TEE', 20]]),
          soldHub: new Map([['TEE', 20]]),
        }),
      ],
      names: new Map([['TEE', 'Tee']]),
      currency: 'EUR',
      start: T0,
      end: T0 + 299,
      now: T0 + 400,
    });
    assert.ok(eventReport.check(r), eventReport.errors(r).join('; '));
    assert.equal(r.meta.span.minutes, 5);
    assert.deepEqual(
      r.latency.minutes.map((b) => b.conversion),
      [0.2, 0.4, 0.5, 0.4, 0.5],
    );
    const lat = r.latency.correlations.find((c) => c.x === 'latencyP95')!;
    assert.equal(lat.n, 5);
    assert.ok(Math.abs(lat.r! - 0.7746) < 1e-4, String(lat.r));
    assert.equal(lat.strength, 'strong');
    assert.match(lat.reading, /more orders per viewer/);
    const level = r.latency.correlations.find((c) => c.x === 'streamLevel')!;
    assert.equal(level.r, null, 'the stream never changed step');
    assert.equal(r.totals.orders, 20);
    assert.equal(r.totals.revenueCents, 20_000);
  });

  test('reconciliation: the hub lacks one order of a kit until it arrives, 5 minutes after the end', () => {
    const o = (t: number, units: Array<[string, number]>) => ({ t, cents: 500, sold: true, units });
    const kitOrders = [o(T0 + 10, [['TEE', 1]]), o(T0 + 20, [['TEE', 2]]), o(T0 + 30, [['CAP', 1]])];
    const base = {
      kitId: 'k1',
      orders: kitOrders,
      kitOrders: 3,
      soldKit: new Map([
        ['TEE', 3],
        ['CAP', 1],
      ]),
      startStock: { TEE: 10, CAP: 5 },
      onHand: { TEE: 7, CAP: 4 },
    };
    const input = (hubOrders: number, soldHub: Array<[string, number]>, last: number) => ({
      eventId: 'ev1',
      source: 'hub' as const,
      kits: [
        kit({ ...base, hubOrders, soldHub: new Map(soldHub), hubLastArrival: last }),
        kit({
          kitId: 'k2',
          kitOrders: 0,
          hubOrders: 0,
          startStock: { TEE: 10, CAP: 5 },
          onHand: { TEE: 10, CAP: 5 },
        }),
      ],
      names: new Map(),
      currency: 'EUR',
      start: T0,
      end: T0 + 3599,
      now: T0 + 4000,
    });
    // the CAP order has not reached the hub
    const behind = computeReport(input(2, [['TEE', 3]], T0 + 25));
    const k1 = behind.inventory.kits.find((k) => k.kitId === 'k1')!;
    assert.equal(k1.missingAtHub, 1);
    assert.equal(behind.inventory.matched, false);
    assert.equal(behind.inventory.matchedAfterS, null);
    const cap = behind.inventory.skus.find((s) => s.sku === 'CAP')!;
    assert.deepEqual(
      { start: cap.start, soldKit: cap.soldKit, soldHub: cap.soldHub, onHand: cap.onHand, diff: cap.diff },
      { start: 10, soldKit: 1, soldHub: 0, onHand: 9, diff: 1 },
    );
    assert.equal(behind.inventory.skus.find((s) => s.sku === 'TEE')!.diff, 0);
    assert.ok(behind.meta.missing.some((m) => m.kind === 'ledger_behind' && m.kitId === 'k1'));
    assert.equal(behind.meta.complete, false);
    // it arrives 300 s after the end
    const caught = computeReport(
      input(
        3,
        [
          ['TEE', 3],
          ['CAP', 1],
        ],
        T0 + 3599 + 300,
      ),
    );
    assert.equal(caught.inventory.matched, true);
    assert.equal(caught.inventory.matchedAfterS, 300);
    assert.ok(!caught.meta.missing.some((m) => m.kind === 'ledger_behind'));
    // what is still missing is said: no series and no audience from either kit
    assert.deepEqual([...new Set(caught.meta.missing.map((m) => m.kind))].sort(), [
      'no_audience',
      'no_series',
    ]);
    assert.equal(caught.meta.readyBy, new Date((T0 + 3599 + 86_400) * 1000).toISOString());
  });

  test("a kit whose samples stop before the event's end is named, with how long before", () => {
    const samples = (until: number): SeriesSampleT[] =>
      Array.from({ length: until }, (_, s) => ({ t: T0 + s, v: { popkit_viewers: 1 } }));
    const r = computeReport({
      eventId: 'ev1',
      source: 'hub',
      kits: [
        kit({ kitId: 'early', samples: samples(3000) }),
        kit({ kitId: 'whole', samples: samples(3600) }),
      ],
      names: new Map(),
      currency: null,
      start: T0,
      end: T0 + 3599,
      now: T0 + 4000,
    });
    const late = r.meta.missing.filter((m) => m.kind === 'series_ends_early');
    assert.deepEqual(
      late.map((m) => [m.kitId, m.detail]),
      [['early', "samples stop 10 min before the event's end (not synced yet?)"]],
    );
    assert.deepEqual(
      r.inventory.kits.map((k) => k.seriesUntil),
      [T0 + 2999, T0 + 3599],
    );
  });

  test('retention: two kits add their counts minute by minute', () => {
    const m = mergeRetention([
      agg([
        ['all', [10, 8, 5]],
        ['in_venue', [6, 6, 6]],
      ]),
      agg([['all', [6, 6, 1]]], ['in_venue', 'loyalty_gold']),
      null,
    ]);
    const all = m.segments.find((s) => s.segment === 'all')!;
    assert.deepEqual(all.counts, [16, 14, 6]);
    assert.deepEqual(all.share, [1, 0.875, 0.375]);
    assert.equal(all.viewers, 16);
    assert.equal(all.kits, 2);
    assert.equal(all.medianMinutes, 2, 'at minute 2, 6 of 16 are left: fewer than half');
    // in_venue is shown (kit 1 had it over k); only loyalty_gold is suppressed everywhere
    assert.deepEqual(m.suppressed, ['loyalty_gold']);
  });

  test('drops: units in the first 90 s make the heroes and the best drop minute', () => {
    const o = (t: number, sku: string, q: number) => ({
      t,
      cents: 100 * q,
      sold: true,
      units: [[sku, q]] as Array<[string, number]>,
    });
    const samples: SeriesSampleT[] = [];
    for (let s = 0; s < 1200; s++) samples.push({ t: T0 + s, v: { popkit_viewers: s < 600 ? 50 : 200 } });
    const r = computeReport({
      eventId: 'ev1',
      source: 'kit',
      kits: [
        kit({
          kitId: 'k1',
          samples,
          markers: [
            { t: T0 + 120, kind: 'drop_open', label: 'CAP' },
            { t: T0 + 660, kind: 'drop_open', label: 'HOOD' },
          ],
          orders: [
            o(T0 + 121, 'CAP', 2),
            o(T0 + 209, 'CAP', 1), // 89 s after: in the rush
            o(T0 + 210, 'CAP', 5), // 90 s after: not
            o(T0 + 661, 'HOOD', 4),
            o(T0 + 700, 'HOOD', 3),
            { t: T0 + 701, cents: 0, sold: false, units: [['HOOD', 9]] }, // released: sold nothing
            o(T0 + 900, 'TEE', 20),
          ],
        }),
      ],
      names: new Map([['HOOD', 'Hoodie <b>']]),
      currency: 'EUR',
      start: T0,
      end: T0 + 1199,
      now: T0 + 2000,
    });
    assert.deepEqual(
      r.drops.map((d) => [d.label, d.m, d.units, d.orders, d.viewers]),
      [
        ['CAP', 2, 3, 2, 50],
        ['HOOD', 11, 7, 2, 200],
      ],
    );
    assert.deepEqual(
      r.suggestions.heroes.map((h) => [h.sku, h.units, h.rushUnits]),
      [
        ['TEE', 20, 0],
        ['CAP', 8, 3],
        ['HOOD', 7, 7],
      ],
    );
    const best = r.suggestions.bestDropMinute!;
    assert.equal(best.basis, 'best-drop');
    assert.equal(best.m, 11);
    assert.equal(best.rushUnits, 7);
    const items = new Map(
      ['TEE', 'CAP', 'HOOD'].map((sku) => [sku, { name: `${sku} name`, priceCents: 2500, startStock: 10 }]),
    );
    const file = suggestionFile(r, { nextEventId: 'ev2', nextStart: '2030-01-01T20:00:00Z', items });
    assert.ok(catalogInput.check(file.catalog), catalogInput.errors(file.catalog).join('; '));
    const cat = file.catalog as {
      items: Array<{ sku: string; hero?: boolean; saleWindow?: { startsAt: string } }>;
    };
    assert.deepEqual(
      cat.items.map((i) => i.sku),
      ['TEE', 'CAP', 'HOOD'],
    );
    assert.ok(cat.items.every((i) => i.hero === true));
    assert.equal(cat.items[0]!.saleWindow!.startsAt, '2030-01-01T20:11:00.000Z');
    // the starting stock covers what sold: TEE sold 20 of 10 per kit
    assert.deepEqual(
      (cat.items as Array<{ stock?: number }>).map((i) => i.stock),
      [20, 10, 10],
    );
  });

  test('the page escapes names from data', () => {
    const hostile = '<script>alert(1)</script>"\'&';
    const r = computeReport({
      eventId: 'ev1',
      source: 'kit',
      kits: [
        kit({
          kitId: 'k1',
          orders: [{ t: T0, cents: 100, sold: true, units: [['X1', 1]] }],
          kitOrders: 1,
          audience: agg([[`loyalty_x`, [5, 5]]]),
          markers: [{ t: T0, kind: 'drop_open', label: 'X1' }],
        }),
      ],
      names: new Map([['X1', hostile]]),
      currency: 'EUR',
      start: T0,
      end: T0 + 59,
      now: T0 + 60,
    });
    const html = renderReportHtml(r);
    assert.ok(!html.includes('<script>'), 'no script element from data');
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;'));
    assert.match(html, /<svg /);
  });
});
