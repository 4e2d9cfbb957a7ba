// The dashboard's live chart (#12) in real headless Chromium against a real checkout recording its
// series: orders sold while the page is open grow the chart's data, markers (event start, a drop
// opening, a stream level change) appear, everything comes from the kit under a strict policy.
// Screenshots go to the test's temp dir (or POPKIT_SCREENSHOTS_DIR); their paths are printed.
process.env['NODE_ENV'] = 'test';

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { writeRunStatus } from '../../core/contracts/run-status.ts';
import { writeSeries } from '../../core/store/series.ts';
import { launchChromium } from '../support/browser.ts';
import { ADMIN, auth, DEMO_CATALOG, startCheckout, tempDir } from '../support/checkout.ts';
import { mediaRunStatus } from '../support/series.ts';

interface ChartView {
  orders: number;
  viewers: number;
  points: number;
  markers: Array<{ kind: string; label: string }>;
}

test('the live chart plots sales per 10 s on a time axis with drop and stream-level markers, from uPlot served by the kit', {
  timeout: 120_000,
}, async () => {
  // the test's temp dir (removed at exit), or POPKIT_SCREENSHOTS_DIR to keep them
  const shots = process.env['POPKIT_SCREENSHOTS_DIR'] ?? tempDir('popkit-dashboard-series-');
  fs.mkdirSync(shots, { recursive: true });
  const kit = await startCheckout();
  // a drop that opens a few seconds from now: its marker appears as it passes
  const opensAt = new Date(Date.now() + 4000);
  const catalog = {
    ...DEMO_CATALOG,
    items: [
      ...DEMO_CATALOG.items,
      {
        sku: 'DROP-LATER',
        name: 'Later drop',
        priceCents: 5000,
        stock: 5,
        saleWindow: {
          startsAt: opensAt.toISOString(),
          endsAt: new Date(Date.now() + 3_600_000).toISOString(),
        },
      },
    ],
  };
  const put = await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: catalog });
  assert.equal(put.statusCode, 200, put.body);
  writeRunStatus(kit.dataDir, 'media', mediaRunStatus({ ladderStep: 0 }));
  await kit.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (kit.app.server.address() as { port: number }).port;
  const base = `http://127.0.0.1:${port}`;
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`${m.text()} ${m.location().url}`);
    });
    page.on('request', (r) => requests.push(r.url()));
    page.on('response', (r) => {
      if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`);
    });
    const res = await page.goto(`${base}/`);
    const csp = res?.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self' 'sha256-/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    await page.waitForSelector('#pair:not([hidden])');
    await page.fill('#admintoken', ADMIN);
    await page.click('#pairbtn');
    await page.waitForSelector('#chart canvas');

    // a string, not a function: tsx would wrap a function's inner helpers in its own __name
    const view = (): Promise<ChartView> =>
      page.evaluate(`(() => {
        const c = window.popkitChart;
        const d = c.plot.data;
        const sum = (col) => (col || []).reduce((s, x) => s + (x ?? 0), 0);
        return {
          orders: sum(d[1]),
          viewers: sum(d[2]),
          points: (d[0] || []).length,
          markers: c.markers.map((m) => ({ kind: m.kind, label: m.label })),
        };
      })()`);
    const sell = async (n: number, tag: string) => {
      for (let i = 0; i < n; i++) {
        const r = await kit.app.inject({
          method: 'POST',
          url: '/v1/orders',
          headers: { ...auth, 'idempotency-key': `${tag}-${i}` },
          payload: { lines: [{ sku: 'TEE-BLK-M', qty: 1 }], payment: { method: 'cash' } },
        });
        assert.equal(r.statusCode, 201, r.body);
      }
    };
    const waitFor = async (what: string, ok: (v: ChartView) => boolean) => {
      for (let i = 0; i < 150; i++) {
        const v = await view();
        if (ok(v)) return v;
        await page.waitForTimeout(200);
      }
      assert.fail(`${what}: ${JSON.stringify(await view())}`);
    };

    const start = await kit.app.inject({
      method: 'POST',
      url: '/v1/event/start',
      headers: auth,
      payload: {},
    });
    assert.equal(start.statusCode, 200, start.body);
    await sell(6, 'a');
    const first = await waitFor('the first orders on the chart', (v) => v.orders >= 6);
    assert.ok(first.points >= 90, 'the axis is the 15-minute window in 10 s buckets, not the samples');
    // the stream steps down, more orders: the chart's data grows, the markers appear
    writeRunStatus(kit.dataDir, 'media', mediaRunStatus({ ladderStep: 2, bitrateKbps: 1200 }));
    await sell(9, 'b');
    const later = await waitFor(
      'all orders and the markers',
      (v) =>
        v.orders >= 15 &&
        v.markers.some((m) => m.kind === 'drop_open' && m.label === 'DROP-LATER') &&
        v.markers.some((m) => m.kind === 'stream_level' && m.label === '2') &&
        v.markers.some((m) => m.kind === 'event_start'),
    );
    assert.equal(later.orders, 15, 'each order once');
    await page.waitForFunction(() =>
      /15 orders/.test(document.getElementById('chartlegend')?.textContent ?? ''),
    );
    // a second the chart has already drawn is written again (a tick that ran late, the second a
    // restart split): the kit merges it, the chart's next polls re-read it and count it once
    const drawn = (await page.evaluate('window.popkitChart.lastSecond')) as number;
    await writeSeries(kit.kit.store, {
      samples: [{ t: drawn - 1, v: { popkit_orders_total: 2 } }],
      markers: [],
    });
    const merged = await waitFor('a second written again', (v) => v.orders >= 17);
    assert.equal(merged.orders, 17, 'the second written again counts once');

    const full = path.join(shots, 'dashboard-live.png');
    const chart = path.join(shots, 'dashboard-live-chart.png');
    await page.screenshot({ path: full, fullPage: true });
    await page.locator('#live').screenshot({ path: chart });
    console.log(`screenshots: ${full} ${chart}`);

    // everything the page loaded came from the kit; the chart's assets are cached for good
    assert.deepEqual(
      requests.filter((u) => !u.startsWith(base)),
      [],
    );
    const assets = requests.filter((u) => u.includes('/dashboard/assets/'));
    assert.ok(
      assets.some((u) => /uPlot-1\.6\.32\.iife\.min\.js$/.test(u)),
      assets.join(' '),
    );
    for (const u of assets) {
      const a = await kit.app.inject({ method: 'GET', url: new URL(u).pathname });
      assert.equal(a.statusCode, 200);
      assert.equal(a.headers['cache-control'], 'public, max-age=31536000, immutable');
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await kit.kit.close();
  }
});
