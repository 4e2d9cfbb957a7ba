// #12 end to end, every part in its real code: a kit's viewer tracker counts viewers of an event
// (keyed-hash ids, injected clock), checkout's order service sells, the per-second series are in the
// kit's LMDB; sync ships orders and the sealed series and audience aggregate through a private
// Mosquitto into PostgreSQL; the hub's post-event report merges it, and the kit's own report of the
// same event says the same figures. Nothing is inserted into the hub's tables by hand.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { signCatalog } from '../../core/catalog-signing.ts';
import type { EventReportT } from '../../core/contracts/report.ts';
import { eventReport } from '../../core/contracts/report.ts';
import type { SeriesSampleT } from '../../core/contracts/series.ts';
import { computeReport } from '../../core/report/compute.ts';
import { kitReportInput } from '../../core/report/kit-input.ts';
import { LANES, replaceCatalog, scanOutbox, setEventState } from '../../core/store/index.ts';
import { writeSeries } from '../../core/store/series.ts';
import { ViewerTracker } from '../../services/checkout/audience/tracker.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { loadOrCreateSigningKey } from '../../services/hub/keys.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_audrep').replace(/-/g, '_');
const eventId = uniqueId('ev-aud');
const creatorId = uniqueId('cr');
const hubDir = tmpDir('hub-audrep');
const CATALOG = {
  version: 1,
  eventId,
  creatorId,
  currency: 'EUR',
  items: [
    { sku: 'TEE', name: 'Tour tee', priceCents: 2500, stock: 100 },
    { sku: 'CAP', name: 'Cap', priceCents: 1500, stock: 50 },
  ],
};
// the event: 20 whole minutes that ended a while ago, so every second ships at once
const start = Math.floor(Date.now() / 1000 / 60) * 60 - 3 * 3600;
const end = start + 20 * 60;

let broker: Mosquitto;
let hub: HubService;
let kit: TestKit;
let sync: SyncService | undefined;

describe('#12 end to end: viewers and sales on a kit → sealed to the hub → one report at both ends', () => {
  before(async () => {
    broker = await mosquitto();
    hub = await startHub({ schema, brokerUrl: broker.url, dataDir: hubDir });
    // the hub's catalog names the creator (the creator feed and page follow it)
    await hub.ledger!.storeCatalog(
      eventId,
      1,
      signCatalog(loadOrCreateSigningKey(hubDir).privateKey, CATALOG as never),
    );
    kit = await makeKit(uniqueId('kit'));
    await replaceCatalog(kit.store, CATALOG, { source: 'local' });
    await setEventState(kit.store, true, eventId, null);

    // 7 viewers on the venue's Wi-Fi and 5 remote ones; viewer i watches (i + 2) minutes from minute i
    // (cut at the event's end)
    const clock = { now: start * 1000 };
    const tracker = new ViewerTracker(kit.store, {
      leaveS: 30,
      keyMaxH: 24,
      ttlH: 72,
      venueNets: '10.0.0.0/8',
      flushMs: 0,
      sweepMs: 3_600_000,
      clock: () => clock.now,
    });
    await tracker.tick();
    const viewers = Array.from({ length: 12 }, (_, i) => ({
      addr: i < 7 ? `10.0.0.${10 + i}` : `203.0.113.${i}`,
      ua: `phone-${i}`,
      from: start + i * 60,
      to: start + i * 60 + (i + 2) * 60,
    }));
    for (let t = start; t < end; t += 10) {
      clock.now = t * 1000;
      for (const v of viewers) if (t >= v.from && t < v.to) tracker.seen(v.addr, v.ua);
      await tracker.tick();
    }
    clock.now = (end + 120) * 1000;
    await tracker.tick();
    await tracker.flush();
    assert.equal(tracker.current(), 0);

    // sales through checkout's order service, and the seconds the recorder would have written
    for (let i = 0; i < 12; i++)
      await kit.orders.create(
        { lines: [{ sku: i % 3 ? 'TEE' : 'CAP', qty: 1 }], payment: { method: 'cash' } },
        undefined,
      );
    const samples: SeriesSampleT[] = [];
    for (let t = start; t < end; t++) {
      const m = Math.floor((t - start) / 60);
      samples.push({
        t,
        v: {
          popkit_viewers: viewers.filter((v) => t >= v.from && t < v.to).length,
          popkit_orders_total: (t - start) % 100 === 0 ? 1 : 0,
          popkit_order_duration_seconds_p95: 0.01 + m / 1000,
        },
      });
    }
    await writeSeries(kit.store, {
      samples,
      markers: [
        { t: start, kind: 'event_start', label: '' },
        { t: end - 1, kind: 'event_stop', label: '' },
      ],
    });
    await setEventState(kit.store, false, eventId, new Date(end * 1000).toISOString());

    sync = startSync(kit, broker.url, {
      POPKIT_HUB_PUBLIC_KEY: fs.readFileSync(hub.publicKeyFile, 'utf8'),
      POPKIT_EVENT_ID: eventId,
      POPKIT_SYNC_SERIES_INTERVAL_MS: '150',
      POPKIT_SYNC_SERIES_SETTLE_S: '0',
    });
  });

  after(async () => {
    await sync?.stop();
    await hub?.stop();
    await broker?.stop();
    await kit?.close();
    await dropSchema(schema);
  });

  test('the hub report merges what travelled: orders, seconds, audience; and agrees with the kit', async () => {
    const get = async (path: string) => {
      const res = await fetch(`${hub.httpUrl}${path}`, {
        headers: { authorization: `Bearer ${hub.adminToken}` },
      });
      assert.equal(res.status, 200, path);
      return (await res.json()) as EventReportT;
    };
    const atHub = await waitFor(
      async () => {
        const r = await get(`/v1/events/${eventId}/report?format=json`);
        const lacks = r.meta.missing.map((m) => m.kind);
        const done =
          r.totals.orders === 12 &&
          !lacks.includes('no_audience') &&
          !lacks.includes('series_ends_early') &&
          !lacks.includes('no_series');
        return done ? r : undefined;
      },
      60_000,
      'the hub report with every order, second and the audience',
    );
    assert.ok(eventReport.check(atHub), eventReport.errors(atHub).join('; '));
    assert.deepEqual(atHub.meta.kits, [kit.kitId]);
    // every order in the ledger: nothing behind, and the kit's own count matched
    assert.ok(
      !atHub.meta.missing.some((m) => m.kind === 'ledger_behind'),
      JSON.stringify(atHub.meta.missing),
    );
    assert.equal(atHub.totals.revenueCents, 8 * 2500 + 4 * 1500);
    // the audience: 12 viewers, 7 in the venue, 5 remote; no segment of consenting buyers (under k)
    const seg = new Map(atHub.retention.segments.map((s) => [s.segment, s]));
    assert.equal(seg.get('all')?.viewers, 12);
    assert.equal(seg.get('in_venue')?.viewers, 7);
    assert.equal(seg.get('remote')?.viewers, 5);
    assert.equal(seg.has('new'), false);
    // retention: viewer i was seen for (i + 2) minutes less the last 10 s (a request every 10 s), cut at
    // the event's end; the curve stops where fewer than k = 5 remain (fewer would single people out)
    assert.deepEqual(seg.get('all')?.counts, [12, 12, 11, 10, 9, 8, 7, 6, 5]);
    // the per-minute correlation saw the seconds that travelled sealed
    assert.ok(atHub.latency.minutes.length >= 20);
    assert.ok(atHub.latency.minutes.some((m) => (m.viewers ?? 0) > 0));

    // the kit's own report of the same event: the same orders, revenue and audience
    const { input } = kitReportInput(kit.store, eventId, { kitId: kit.kitId });
    const atKit = computeReport(input);
    assert.equal(atKit.totals.orders, atHub.totals.orders);
    assert.equal(atKit.totals.revenueCents, atHub.totals.revenueCents);
    assert.deepEqual(
      atKit.retention.segments.map((s) => [s.segment, s.viewers, s.counts]),
      atHub.retention.segments.map((s) => [s.segment, s.viewers, s.counts]),
    );
    // the creator's events list this one, from the catalog's creator
    const res = await fetch(`${hub.httpUrl}/v1/creators/${creatorId}/events`, {
      headers: { authorization: `Bearer ${hub.adminToken}` },
    });
    assert.equal(res.status, 200);
    assert.match(await res.text(), new RegExp(eventId));
    // and the kit's outbox drained (orders and telemetry)
    await waitFor(
      () => [...scanOutbox(kit.store)].filter((e) => e.key[0] === LANES.orders).length === 0,
      10_000,
      'orders lane drained',
    );
  });
});
