// The hub's creator page in real headless Chromium against a real hub on PostgreSQL: the shell holds no
// data and asks for the admin token; a wrong token is refused and asked again; with the right one it
// lists the creator's events with revenue, conversion and retention per kit, as the API says. Two events
// (one of another creator, which must not show). A screenshot is left in the test's temp dir.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import type { CreatorEventsT } from '../../core/contracts/report.ts';
import { launchChromium } from '../support/browser.ts';
import { dropSchema, mosquitto, startHub, tmpDir, uniqueId } from '../support/hub-link.ts';
import { seedEvent } from '../support/report-event.ts';

test('creator page: events, revenue, conversion and retention per kit', { timeout: 180_000 }, async (t) => {
  const schema = uniqueId('t_creator').replace(/-/g, '_');
  const broker = await mosquitto();
  const hub = await startHub({ schema, brokerUrl: broker.url });
  const browser = await launchChromium();
  try {
    const creatorId = uniqueId('creator');
    const start = Math.floor(Date.now() / 1000) - 7200;
    const kits = ['kit-north', 'kit-south'];
    await seedEvent(hub.db!, {
      eventId: uniqueId('ev-a'),
      creatorId,
      kits,
      orders: 300,
      viewers: 200,
      start,
      durationS: 3600,
    });
    const other = uniqueId('ev-other');
    await seedEvent(hub.db!, {
      eventId: other,
      creatorId: uniqueId('someone-else'),
      kits: ['kit-x'],
      orders: 10,
      viewers: 20,
      start,
      durationS: 600,
    });
    const api = (await (
      await fetch(`${hub.httpUrl}/v1/creators/${creatorId}/events`, {
        headers: { authorization: `Bearer ${hub.adminToken}` },
      })
    ).json()) as CreatorEventsT;
    assert.equal(api.events.length, 1);
    const ev = api.events[0]!;
    assert.equal(ev.orders, 300);

    const page = await browser.newPage();
    const res = await page.goto(`${hub.httpUrl}/creators/${creatorId}`);
    assert.equal(res?.status(), 200);
    assert.match(res?.headers()['content-security-policy'] ?? '', /default-src 'none'/);
    // no data before a token
    await page.locator('#token').waitFor();
    assert.equal(await page.locator('#events tr').count(), 0);
    await page.fill('#token', 'not-the-token');
    await page.click('button[type=submit]');
    await page.locator('#why', { hasText: 'refused' }).waitFor();
    assert.equal(await page.locator('#events tr').count(), 0);

    await page.fill('#token', hub.adminToken);
    await page.click('button[type=submit]');
    await page.locator('tr.kit').first().waitFor();
    const rows = await page
      .locator('#events tr')
      .evaluateAll((trs) =>
        trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '')),
      );
    assert.equal(rows.length, 3, 'one event row and one row per kit');
    const [head, north, south] = rows as [string[], string[], string[]];
    assert.equal(head[0], ev.eventId);
    assert.equal(head[2], '300');
    assert.equal(head[3], `${(ev.revenueCents / 100).toFixed(2)} EUR`);
    assert.equal(head[5], ev.ordersPerViewer!.toFixed(3));
    const n = ev.kits.find((k) => k.kitId === 'kit-north')!;
    assert.deepEqual(north.slice(1, 3), ['kit-north', String(n.orders)]);
    assert.equal(north[4], String(n.viewers));
    assert.equal(north[7], `${(n.retention15! * 100).toFixed(1)}%`);
    assert.equal(south[1], 'kit-south');
    assert.ok(!rows.flat().includes(other), "another creator's event is not listed");
    const shot = path.join(tmpDir('creator-page'), 'creator-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot ${shot}`);
  } finally {
    await browser.close();
    await hub.stop();
    await broker.stop();
    await dropSchema(schema);
  }
});
