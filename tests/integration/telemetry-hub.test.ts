// Sealed telemetry end to end (#12), kit → private real Mosquitto → hub on real PostgreSQL (a schema of
// its own): seconds written into the kit's LMDB travel sealed on the telemetry lane and come back from
// GET /v1/events/:eventId/series equal to what was written; a subscriber on the broker sees no metric
// name; a hub restart, a resent batch and a reshipped range store each second once; a tampered entry
// and an entry replayed under another kit's topic go to the dead letters and the kit's lane drains.
// The same hub code on PGlite (the embedded hub) stores and serves a batch; the routes refuse hostile
// values with coded 4xx.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { signCatalog } from '../../core/catalog-signing.ts';
import { type BatchT, topics } from '../../core/contracts/hub-wire.ts';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { METRIC_NAMES, type SeriesBatchT, type SeriesValuesT } from '../../core/contracts/series.ts';
import { enqueueOutbox, LANES, TELEMETRY_META } from '../../core/store/index.ts';
import { writeSeries } from '../../core/store/series.ts';
import { kidOf, seal, telemetryAad } from '../../core/telemetry-seal.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { loadOrCreateSealKey, loadOrCreateSigningKey } from '../../services/hub/keys.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  PG_URL,
  startHub,
  startSync,
  TEST_CATALOG,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_telemetry').replace(/-/g, '_');
const eventId = uniqueId('ev');
const creatorId = uniqueId('cr');
const hubDir = tmpDir('hub-telemetry');
let broker: Mosquitto;
let hub: HubService;
let kit: TestKit;
let sync: SyncService | undefined;
let spy: mqtt.MqttClient;
const onTelemetry: { topic: string; payload: Buffer }[] = [];

// whole minutes well in the past: they ship at once (settle 0) and no clock reading matters
const base = Math.floor(Date.now() / 1000 / 60) * 60 - 3600;

function valuesAt(i: number): SeriesValuesT {
  return {
    popkit_orders_total: i % 3,
    popkit_revenue_cents_total: (i % 3) * 2500,
    popkit_viewers: 40 + (i % 7),
    popkit_order_duration_seconds_p95: 0.01 * (1 + (i % 5)),
    ...(i % 10 === 0 ? {} : { popkit_battery_soc_ratio: 0.9 - i / 10_000 }),
  };
}

async function writeSeconds(k: TestKit, from: number, n: number): Promise<{ t: number; v: SeriesValuesT }[]> {
  const out: { t: number; v: SeriesValuesT }[] = [];
  for (let i = 0; i < n; i++) out.push({ t: from + i, v: valuesAt(from - base + i) });
  // the recorder's own write path (core/store/series.ts)
  await writeSeries(k.store, { samples: out, markers: [] });
  return out;
}

async function api(path: string, auth = true) {
  const res = await fetch(`${hub.httpUrl}${path}`, {
    headers: auth ? { authorization: `Bearer ${hub.adminToken}` } : {},
  });
  // biome-ignore lint/suspicious/noExplicitAny: a test reads the JSON answers field by field
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function seriesRows(kitId?: string): Promise<number> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const res = await c.query(
      `SELECT count(*)::int AS n FROM "${schema}".kit_series WHERE event_id = $1 AND ($2::text IS NULL OR kit_id = $2)`,
      [eventId, kitId ?? null],
    );
    return res.rows[0].n;
  } finally {
    await c.end();
  }
}

const telemetryBacklog = (k: TestKit) =>
  k.store.outbox.getKeysCount({ start: [LANES.telemetry, ''], end: [LANES.telemetry + 1, ''] });

function startKitSync(): SyncService {
  const pub = fs.readFileSync(hub.publicKeyFile, 'utf8');
  return startSync(kit, broker.url, {
    POPKIT_HUB_PUBLIC_KEY: pub,
    POPKIT_EVENT_ID: eventId,
    POPKIT_SYNC_SERIES_INTERVAL_MS: '150',
    POPKIT_SYNC_SERIES_SETTLE_S: '0',
    POPKIT_SYNC_TELEMETRY_INTERVAL_MS: '300',
  });
}

describe('sealed telemetry: kit → Mosquitto → PostgreSQL → /v1/events/:eventId/series', () => {
  let written: { t: number; v: SeriesValuesT }[] = [];

  before(async () => {
    broker = await mosquitto();
    hub = await startHub({ schema, brokerUrl: broker.url, dataDir: hubDir });
    kit = await makeKit(uniqueId('kit'));
    // the event's catalog names its creator: the creator feed follows it
    const signing = loadOrCreateSigningKey(hubDir).privateKey;
    await hub.ledger!.storeCatalog(
      eventId,
      1,
      signCatalog(signing, { ...TEST_CATALOG, eventId, creatorId } as never),
    );
    spy = await mqtt.connectAsync(broker.url, { clientId: uniqueId('spy') });
    await spy.subscribeAsync(topics.allTelemetry, { qos: 1 });
    spy.on('message', (topic, payload) => onTelemetry.push({ topic, payload: Buffer.from(payload) }));
  });

  after(async () => {
    await sync?.stop();
    await spy?.endAsync();
    await hub?.stop();
    await broker?.stop();
    await kit?.close();
    await dropSchema(schema);
  });

  test('seconds written into the kit come back from the hub as written, sealed on the way', async () => {
    written = await writeSeconds(kit, base, 150);
    await writeSeries(kit.store, {
      samples: [],
      markers: [
        { t: base + 5, kind: 'drop_open', label: 'TEE' },
        { t: base + 130, kind: 'drop_close', label: 'TEE' },
      ],
    });
    sync = startKitSync();
    await waitFor(async () => (await seriesRows()) === 150, 30_000, 'the 150 seconds in the hub');
    const res = await api(`/v1/events/${eventId}/series?from=${base}&to=${base + 149}`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body['kits'], [kit.kitId]);
    assert.deepEqual(res.body['perKit'], [{ kitId: kit.kitId, samples: written }]);
    // one kit: the merged series is that kit's
    assert.deepEqual(res.body['samples'], written);
    assert.deepEqual(res.body['markers'], [
      { kitId: kit.kitId, t: base + 5, kind: 'drop_open', label: 'TEE' },
      { kitId: kit.kitId, t: base + 130, kind: 'drop_close', label: 'TEE' },
    ]);
    // the audience aggregate and the kit's order count came along (no viewers: nothing above k)
    await waitFor(
      async () =>
        (await api(`/v1/events/${eventId}/series?from=${base}&to=${base + 1}`)).body['audience'].length === 1,
    );
    const aud = (await api(`/v1/events/${eventId}/series?from=${base}&to=${base + 1}`)).body['audience'][0];
    assert.equal(aud.kitId, kit.kitId);
    assert.equal(aud.kitOrders, 0);
    assert.equal(aud.aggregate.eventId, eventId);
    assert.deepEqual(aud.aggregate.segments, []);
    // a metric filter keeps only those
    const one = await api(
      `/v1/events/${eventId}/series?from=${base}&to=${base + 9}&metrics=popkit_orders_total`,
    );
    assert.deepEqual(
      one.body['samples'],
      written.slice(0, 10).map((s) => ({ t: s.t, v: { popkit_orders_total: s.v.popkit_orders_total } })),
    );
    // run/sync.json says what the shipper did (written once a second)
    const st = await waitFor(
      () => {
        const s = readRunStatus(kit.dataDir, 'sync');
        return s?.series?.kid ? s : undefined;
      },
      5000,
      'run/sync.json with the seal key',
    );
    assert.equal(st.series?.kid, hub.sealKid);
    assert.ok((st.series?.batches ?? 0) >= 3, 'at least one batch per minute');
  });

  test('the broker carries ciphertext only', () => {
    const seen = onTelemetry.filter((m) => m.topic === topics.telemetry(kit.kitId));
    assert.ok(seen.length > 0);
    let sealed = 0;
    for (const m of seen) {
      const text = m.payload.toString('utf8');
      for (const name of [...METRIC_NAMES, 'drop_open', 'drop_close', eventId, 'segments', 'kitOrders'])
        assert.ok(!text.includes(name), `${name} in clear on the broker`);
      const batch = JSON.parse(text) as BatchT;
      for (const e of batch.entries as { body?: { sealed?: number; kid?: string } }[])
        if (e.body?.sealed === 1) {
          sealed++;
          assert.equal(e.body.kid, hub.sealKid);
        }
    }
    assert.ok(sealed >= 3);
  });

  test('a resent batch, a reshipped range and a hub restart store each second once', async () => {
    // the exact messages again, as a broker redelivery or a replay would bring them
    const sealedMsgs = onTelemetry.filter(
      (m) => m.topic === topics.telemetry(kit.kitId) && m.payload.includes('"sealed":1'),
    );
    for (const m of sealedMsgs) await spy.publishAsync(m.topic, m.payload, { qos: 1 });
    // the kit forgets its cursor and seals the whole range again (new entry ids, new ciphertexts)
    await sync!.stop();
    await kit.store.root.transaction(() => void kit.store.meta.remove(TELEMETRY_META.cursor));
    const kidBefore = hub.sealKid;
    await hub.stop();
    // seconds recorded while the hub is away
    const more = await writeSeconds(kit, base + 150, 60);
    hub = await startHub({ schema, brokerUrl: broker.url, dataDir: hubDir });
    sync = startKitSync();
    await waitFor(async () => (await seriesRows()) === 210, 30_000, 'the 60 new seconds');
    await waitFor(() => telemetryBacklog(kit) === 0, 20_000, 'the telemetry lane drained');
    assert.equal(await seriesRows(), 210);
    const res = await api(`/v1/events/${eventId}/series?from=${base}&to=${base + 209}`);
    assert.deepEqual(res.body['samples'], [...written, ...more]);
    // the restarted hub kept its seal key: the kit did not need a new one
    assert.equal(hub.sealKid, kidBefore);
    const st = await waitFor(
      () => {
        const s = readRunStatus(kit.dataDir, 'sync');
        return s?.series?.kid ? s : undefined;
      },
      5000,
      'run/sync.json with the seal key',
    );
    assert.equal(st.series?.kid, hub.sealKid);
  });

  test('a tampered entry is dead-lettered with its code and the lane keeps draining', async () => {
    const opener = loadOrCreateSealKey(hubDir);
    const target = { kid: opener.kid, publicKey: opener.publicKey };
    // an entry in the kit's own outbox whose ciphertext was altered after sealing
    const id = `zz-tampered-${Date.now()}`;
    const b: SeriesBatchT = {
      v: 1,
      kitId: kit.kitId,
      eventId,
      samples: [{ t: base + 300, v: { popkit_orders_total: 9 } }],
      markers: [],
    };
    const env = seal(target, Buffer.from(JSON.stringify(b)), telemetryAad({ kitId: kit.kitId, entryId: id }));
    const ct = Buffer.from(env.ct, 'base64url');
    ct[0] = (ct[0] ?? 0) ^ 0xff;
    await enqueueOutbox(kit.store, [LANES.telemetry, id], {
      kind: 'telemetry',
      body: { ...env, ct: ct.toString('base64url') },
      createdAt: Date.now(),
    });
    const later = await writeSeconds(kit, base + 210, 5);
    // written behind the cursor (a test's past seconds): the kit reships the range, the hub stores it once
    await kit.store.root.transaction(() => void kit.store.meta.remove(TELEMETRY_META.cursor));
    await waitFor(() => telemetryBacklog(kit) === 0, 20_000, 'the lane drained past the tampered entry');
    await waitFor(async () => (await seriesRows()) === 215, 20_000, 'seconds after it still arrive');
    const dead = await api(`/v1/dead-letters?kitId=${kit.kitId}`);
    const mine = dead.body['deadLetters'] as { entryId: string; reason: string; lane: string }[];
    const row = mine.find((d) => d.entryId === id);
    assert.ok(row, 'dead letter for the tampered entry');
    assert.equal(row.lane, 'telemetry');
    assert.match(row.reason, /^SEAL_OPEN_FAILED/);
    // counted on the hub's /metrics, by code
    const metrics = await (await fetch(`${hub.httpUrl}/metrics`)).text();
    assert.match(metrics, /popkit_hub_series_batches_total\{result="SEAL_OPEN_FAILED"\} [1-9]/);
    assert.match(metrics, /popkit_hub_series_batches_total\{result="opened"\} [1-9]/);
    // nothing of it was stored
    const res = await api(`/v1/events/${eventId}/series?from=${base + 300}&to=${base + 300}`);
    assert.deepEqual(res.body['samples'], []);
    assert.deepEqual(
      (await api(`/v1/events/${eventId}/series?from=${base + 210}&to=${base + 214}`)).body['samples'],
      later,
    );
  });

  test("an entry replayed under another kit's topic does not open", async () => {
    const victim = onTelemetry.find(
      (m) => m.topic === topics.telemetry(kit.kitId) && m.payload.includes('"sealed":1'),
    )!;
    const batch = JSON.parse(victim.payload.toString('utf8')) as BatchT;
    const entry = (batch.entries as { id: string; body?: { sealed?: number } }[]).find(
      (e) => e.body?.sealed === 1,
    )!;
    const other = uniqueId('kit');
    const replay: BatchT = { v: 1, kitId: other, sentAt: Date.now(), entries: [entry] };
    await spy.publishAsync(topics.telemetry(other), JSON.stringify(replay), { qos: 1 });
    const row = await waitFor(
      async () => {
        const d = await api(`/v1/dead-letters?kitId=${other}`);
        const list = d.body['deadLetters'] as { entryId: string; reason: string }[];
        return list.find((x) => x.entryId === entry.id);
      },
      20_000,
      'the replay dead-lettered',
    );
    assert.match(row.reason, /^SEAL_OPEN_FAILED/);
    assert.equal(await seriesRows(other), 0);
  });

  test('the creator feed rolls the event up per minute', async () => {
    const res = await api(`/v1/creators/${creatorId}/series?from=${base}&to=${base + 3599}`);
    assert.equal(res.status, 200);
    const ev = res.body['events'].find((e: { eventId: string }) => e.eventId === eventId);
    assert.ok(ev, 'the event is the creator’s');
    const all = (await api(`/v1/events/${eventId}/series?from=${base}&to=${base + 214}`)).body['samples'] as {
      t: number;
      v: SeriesValuesT;
    }[];
    const orders = all.reduce((n, s) => n + (s.v.popkit_orders_total ?? 0), 0);
    assert.equal(ev.totals.popkit_orders_total, orders);
    assert.equal(ev.totals.popkit_viewers, Math.max(...all.map((s) => s.v.popkit_viewers ?? 0)));
    assert.equal(ev.minutes[0].t, base);
    assert.equal(
      ev.minutes[0].v.popkit_orders_total,
      all.filter((s) => s.t < base + 60).reduce((n, s) => n + (s.v.popkit_orders_total ?? 0), 0),
    );
    assert.equal(ev.kits, 1);
    // another creator sees none of it
    assert.deepEqual((await api(`/v1/creators/${uniqueId('cr')}/series`)).body['events'], []);
  });

  test('hostile requests are refused with a code and change nothing', async () => {
    assert.equal((await api(`/v1/events/${eventId}/series`, false)).status, 401);
    const bad = [
      `/v1/events/${eventId}/series?from=abc`,
      `/v1/events/${eventId}/series?from=-1`,
      `/v1/events/${eventId}/series?from=12`,
      `/v1/events/${eventId}/series?from=99999999999`,
      `/v1/events/${eventId}/series?from=${base + 10}&to=${base}`,
      `/v1/events/${eventId}/series?from=${base}&to=${base + 6 * 3600}`,
      `/v1/events/${eventId}/series?metrics=popkit_nope`,
      `/v1/events/${eventId}/series?metrics=__proto__`,
      `/v1/events/${eventId}/series?metrics=popkit_viewers,popkit_viewers`,
      `/v1/events/${eventId}/series?metrics=${'a'.repeat(2000)}`,
      `/v1/events/${eventId}/series?kit=%00`,
      `/v1/events/${eventId}/series?kit=a/b`,
      `/v1/events/${eventId}/series?from=${base}&from=${base + 1}`,
      `/v1/events/${eventId}/series?__proto__=1`,
      `/v1/events/${eventId}/series?unknown=1`,
      `/v1/events/a%00b/series`,
      `/v1/events/${'e'.repeat(65)}/series`,
      `/v1/creators/a%20b/series`,
      `/v1/creators/${creatorId}/series?from=${base}&to=${base + 32 * 86400}`,
      `/v1/creators/${creatorId}/series?kit=x`,
    ];
    for (const p of bad) {
      const r = await api(p);
      assert.ok(r.status === 400 || r.status === 404, `${p}: ${r.status}`);
      assert.ok(
        ['VALIDATION', 'BAD_REQUEST', 'NOT_FOUND'].includes(r.body['error']?.code),
        `${p}: ${JSON.stringify(r.body)}`,
      );
    }
    assert.equal(await seriesRows(), 215);
    // a kit filter of a kit that sent nothing is an empty answer, not an error
    const none = await api(`/v1/events/${eventId}/series?from=${base}&to=${base + 10}&kit=nobody`);
    assert.equal(none.status, 200);
    assert.deepEqual(none.body['samples'], []);
  });
});

describe('sealed telemetry on the embedded hub (PGlite)', () => {
  let b2: Mosquitto;
  let h2: HubService;
  const dir = tmpDir('hub-telemetry-pglite');

  before(async () => {
    b2 = await mosquitto();
    h2 = await startHub({ dataDir: dir, brokerUrl: b2.url, databaseUrl: null });
  });
  after(async () => {
    await h2?.stop();
    await b2?.stop();
  });

  test('two kits merge: counters and viewers add, latency takes the worst kit', async () => {
    assert.equal(h2.db?.kind, 'pglite');
    const opener = loadOrCreateSealKey(dir);
    assert.equal(kidOf(opener.publicKey), h2.sealKid);
    const target = { kid: opener.kid, publicKey: opener.publicKey };
    const ev = uniqueId('ev');
    const pubc = await mqtt.connectAsync(b2.url, { clientId: uniqueId('kits') });
    const t0 = base;
    const send = async (kitId: string, v: SeriesValuesT) => {
      const id = `e-${kitId}`;
      const body: SeriesBatchT = { v: 1, kitId, eventId: ev, samples: [{ t: t0, v }], markers: [] };
      const env = seal(target, Buffer.from(JSON.stringify(body)), telemetryAad({ kitId, entryId: id }));
      const batch: BatchT = {
        v: 1,
        kitId,
        sentAt: Date.now(),
        entries: [{ lane: 'telemetry', id, at: Date.now(), body: env }],
      };
      await pubc.publishAsync(topics.telemetry(kitId), JSON.stringify(batch), { qos: 1 });
    };
    await send('kit-a', {
      popkit_orders_total: 2,
      popkit_viewers: 10,
      popkit_order_duration_seconds_p95: 0.2,
      popkit_battery_soc_ratio: 0.8,
    });
    await send('kit-b', {
      popkit_orders_total: 3,
      popkit_viewers: 5,
      popkit_order_duration_seconds_p95: 0.5,
      popkit_battery_soc_ratio: 0.4,
    });
    const get = async () => {
      const r = await fetch(`${h2.httpUrl}/v1/events/${ev}/series?from=${t0}&to=${t0}`, {
        headers: { authorization: `Bearer ${h2.adminToken}` },
      });
      return (await r.json()) as { kits: string[]; samples: { t: number; v: SeriesValuesT }[] };
    };
    const res = await waitFor(
      async () => {
        const r = await get();
        return r.kits.length === 2 ? r : undefined;
      },
      20_000,
      'both kits stored',
    );
    assert.deepEqual(res.samples, [
      {
        t: t0,
        v: {
          popkit_orders_total: 5,
          popkit_viewers: 15,
          popkit_order_duration_seconds_p95: 0.5,
          popkit_battery_soc_ratio: 0.4,
        },
      },
    ]);
    await pubc.endAsync();
  });
});
