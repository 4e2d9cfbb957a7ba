// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Sync's series shipper on a real LMDB store (services/sync/series-ship.ts): nothing leaves in clear
// without a verified hub seal key (and it says so), one sealed batch per minute that only the hub key
// opens, bound to its entry id; the audience aggregate keeps groups under k out; the order count rides
// along; POPKIT_SYNC_SERIES=0 is off; while checkout sells a tick waits, but not forever.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type SeriesBatchT, seriesBatch } from '../../core/contracts/series.ts';
import { LANES, readSealKey, readSeriesCursor } from '../../core/store/index.ts';
import { writeSeries } from '../../core/store/series.ts';
import { open, openerFromPrivate, signSealKey, telemetryAad } from '../../core/telemetry-seal.ts';
import { LaneKeeper } from '../../services/sync/lanes.ts';
import { SeriesShipper } from '../../services/sync/series-ship.ts';
import { makeKit, type TestKit, uniqueId } from '../support/hub-link.ts';

const hub = openerFromPrivate(generateKeyPairSync('x25519').privateKey);
const catalogKey = generateKeyPairSync('ed25519');
const signedKey = Buffer.from(JSON.stringify(signSealKey(catalogKey.privateKey, hub)));
const limits = {
  stock: { ttlMs: 1e9, quotaBytes: 1e9 },
  health: { ttlMs: 1e9, quotaBytes: 1e9 },
  telemetry: { ttlMs: 1e9, quotaBytes: 1e9 },
};
const base = 1_800_000_000 - (1_800_000_000 % 60);
let kit: TestKit;
let clock = (base + 3600) * 1000;

function shipper(over: Partial<ConstructorParameters<typeof SeriesShipper>[2]> = {}, busy = () => false) {
  return new SeriesShipper(
    kit.store,
    new LaneKeeper(kit.store, limits, () => clock),
    {
      kitId: kit.kitId,
      enabled: true,
      hubPublicKey: catalogKey.publicKey,
      minGroup: 5,
      settleS: 10,
      audienceEveryMs: 60_000,
      maxDeferMs: 60_000,
      ...over,
    },
    () => 'default',
    { busy },
    () => clock,
  );
}

function telemetryEntries() {
  return [...kit.store.outbox.getRange({ start: [LANES.telemetry, ''], end: [LANES.telemetry + 1, ''] })];
}

function opened(): SeriesBatchT[] {
  return telemetryEntries().map(({ key, value }) => {
    const plain = open(hub, value.body, telemetryAad({ kitId: kit.kitId, entryId: key[1] as string }));
    const b = JSON.parse(plain.toString('utf8'));
    assert.ok(seriesBatch.check(b), seriesBatch.errors(b).join('; '));
    return b as SeriesBatchT;
  });
}

async function clearLane() {
  const keys = telemetryEntries().map((e) => e.key);
  await kit.store.root.transaction(() => {
    for (const k of keys) void kit.store.outbox.remove(k);
  });
}

describe('series shipper', () => {
  before(async () => {
    kit = await makeKit(uniqueId('kit'));
    await kit.store.root.transaction(() => {
      for (let i = 0; i < 150; i++) void kit.store.series.put(base + i, { popkit_orders_total: i % 2 });
      void kit.store.markers.put([base + 61, 0], { t: base + 61, kind: 'event_start', label: '' });
      // seven viewers, two of them in the venue: `all` and `remote` go, `in_venue` is under k = 5
      for (let i = 0; i < 7; i++)
        void kit.store.viewers.put(`v${i}`, {
          id: `v${i}`,
          eventId: 'default',
          firstSeen: base,
          lastSeen: base + 100,
          watchSeconds: 100,
          sessions: [[base, base + 100]],
          inVenue: i < 2,
        });
    });
    for (let i = 0; i < 3; i++) await kit.place();
  });
  after(() => kit?.close());

  test('without a seal key nothing is queued, and the status says why', async () => {
    const s = shipper();
    assert.equal(await s.tick(), 0);
    assert.equal(telemetryEntries().length, 0);
    assert.equal(s.status().state, 'waiting_for_key');
    assert.match(s.status().message ?? '', /nothing is sent in clear/);
    // a key nobody can verify, and a forged one, are refused and not kept
    await shipper({ hubPublicKey: undefined }).receiveKey(signedKey);
    const mallory = generateKeyPairSync('ed25519');
    await s.receiveKey(Buffer.from(JSON.stringify(signSealKey(mallory.privateKey, hub))));
    await s.receiveKey(Buffer.from('{"v":1,"__proto__":{}}'));
    assert.equal(readSealKey(kit.store), undefined);
    assert.deepEqual(s.status().keyRefused, { SEAL_KEY_FORGED: 1, SEAL_KEY_MALFORMED: 1 });
    assert.equal(await s.tick(), 0);
    assert.equal(telemetryEntries().length, 0);
  });

  test('off is off', async () => {
    const s = shipper({ enabled: false });
    await s.receiveKey(signedKey);
    assert.equal(await s.tick(), 0);
    assert.equal(s.status().state, 'off');
    assert.equal(telemetryEntries().length, 0);
  });

  test('one sealed batch per minute, only the hub opens it, audience over k only', async () => {
    const s = shipper();
    await s.receiveKey(signedKey);
    assert.equal(readSealKey(kit.store)?.kid, hub.kid);
    assert.equal(await s.tick(), 3);
    const batches = opened();
    assert.deepEqual(
      batches.map((b) => b.samples.length),
      [60, 60, 30],
    );
    assert.deepEqual(
      batches.flatMap((b) => b.samples.map((x) => x.t)),
      Array.from({ length: 150 }, (_, i) => base + i),
    );
    assert.deepEqual(batches[1]?.markers, [{ t: base + 61, kind: 'event_start', label: '' }]);
    const last = batches[2]!;
    assert.equal(last.kitOrders, 3);
    assert.equal(last.audience?.k, 5);
    // in_venue is under k, and remote is withheld with it: all minus remote would give it away
    assert.deepEqual(last.audience?.segments.map((x) => x.segment).sort(), ['all']);
    assert.deepEqual(last.audience?.suppressed.sort(), ['in_venue', 'remote']);
    assert.equal(batches[0]?.audience, undefined);
    // an entry opened as another entry does not
    const [a, b] = telemetryEntries();
    assert.throws(
      () => open(hub, a!.value.body, telemetryAad({ kitId: kit.kitId, entryId: b!.key[1] as string })),
      {
        code: 'SEAL_OPEN_FAILED',
      },
    );
    assert.equal(readSeriesCursor(kit.store), base + 3600 - 10);
    // nothing new, audience not due: nothing queued
    assert.equal(await s.tick(), 0);
    assert.equal(s.status().state, 'idle');
    await clearLane();
  });

  test('while checkout sells a tick waits, at most maxDeferMs', async () => {
    const s = shipper({ maxDeferMs: 5_000 }, () => true);
    await writeSeries(kit.store, {
      samples: [{ t: base + 3592, v: { popkit_orders_total: 1 } }],
      markers: [],
    });
    clock += 3000;
    // it has not shipped for longer than maxDeferMs (never): busy or not, it ships now
    assert.equal(await s.tick(), 1);
    assert.deepEqual(opened()[0]?.samples, [{ t: base + 3592, v: { popkit_orders_total: 1 } }]);
    await clearLane();
    await writeSeries(kit.store, {
      samples: [{ t: base + 3594, v: { popkit_orders_total: 2 } }],
      markers: [],
    });
    clock += 1000;
    assert.equal(await s.tick(), 0);
    assert.equal(s.status().state, 'paced');
    assert.equal(telemetryEntries().length, 0);
    clock += 5_000;
    assert.equal(await s.tick(), 1, 'after maxDeferMs it ships although checkout is still busy');
    assert.deepEqual(opened()[0]?.samples, [{ t: base + 3594, v: { popkit_orders_total: 2 } }]);
  });
});
