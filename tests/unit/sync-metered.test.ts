// Sync on a metered primary link (#17, services/sync/metered.ts): the verdict from kitd's run status
// (metered only from a fresh status of the right shape with an `ok` links view that says so; hostile,
// stale, future-dated or oversized files count as "not known to be metered"), the gate that re-reads
// it at most once a second, the pump that then sends only the orders and stock lanes, and the series
// shipper that seals nothing meanwhile. Clocks are injected: no wall-clock assertion.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { contract as makeContract } from '../../core/contracts/common.ts';
import type { LinksView } from '../../core/contracts/links.ts';
import { type KitdRunStatusT, SyncUplinkStatus } from '../../core/contracts/run-status.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { LANES, readSeriesCursor } from '../../core/store/index.ts';
import { openerFromPrivate, signSealKey } from '../../core/telemetry-seal.ts';
import { LaneKeeper } from '../../services/sync/lanes.ts';
import {
  KITD_STATUS_MAX_BYTES,
  METERED_LANES,
  readKitdStatus,
  UplinkGate,
  uplinkVerdict,
} from '../../services/sync/metered.ts';
import { OutboxPump } from '../../services/sync/pump.ts';
import { SeriesShipper } from '../../services/sync/series-ship.ts';
import { makeKit, type TestKit, tmpDir, uniqueId } from '../support/hub-link.ts';
import { kitdRunStatus } from '../support/series.ts';

const uplinkStatus = makeContract(SyncUplinkStatus);
const NOW = Date.parse('2026-06-01T12:00:00.000Z');

function linksView(over: Partial<LinksView> = {}): LinksView {
  const at = new Date(NOW).toISOString();
  return {
    source: 'sim',
    state: 'ok',
    links: [
      { iface: 'eth0', type: 'ethernet', state: 'disconnected', metered: false, primary: false },
      { iface: 'wwan0', type: 'modem', state: 'connected', metered: true, primary: true },
    ],
    primaryMetered: true,
    checkedAt: at,
    lastOkAt: at,
    problems: [],
    ...over,
  };
}

/** kitd's status as kitd writes it (stamp included), dated `at`. */
function kitdFile(over: Partial<KitdRunStatusT> = {}, at = NOW): Record<string, unknown> {
  return {
    ...kitdRunStatus({ links: linksView(), ...over }),
    updatedAt: new Date(at).toISOString(),
    pid: 42,
  };
}

function writeKitd(dataDir: string, body: unknown): void {
  const file = dataLayout(dataDir).runStatus('kitd');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body));
}

const verdictOf = (dataDir: string, now = NOW) => uplinkVerdict(readKitdStatus(dataDir), now);

describe('uplink verdict from kitd status', () => {
  const dir = tmpDir('metered');

  test('a fresh status whose links view says the primary link is metered: metered, with its interface', () => {
    writeKitd(dir, kitdFile());
    assert.deepEqual(verdictOf(dir), { metered: true, basis: 'metered', primary: 'wwan0', links: [] });
  });

  test('unmetered, unknown, unavailable, off and missing views are not metered', () => {
    const eth = linksView({
      links: [{ iface: 'eth0', type: 'ethernet', state: 'connected', metered: false, primary: true }],
      primaryMetered: false,
    });
    writeKitd(dir, kitdFile({ links: eth }));
    assert.deepEqual(verdictOf(dir), { metered: false, basis: 'unmetered', primary: 'eth0', links: [] });
    writeKitd(dir, kitdFile({ links: linksView({ primaryMetered: null }) }));
    assert.deepEqual(verdictOf(dir), {
      metered: false,
      basis: 'metered-unknown',
      primary: 'wwan0',
      links: [],
    });
    // kitd's source stopped answering: its last reading said metered, but it is no longer a reading
    writeKitd(
      dir,
      kitdFile({
        links: linksView({ state: 'unavailable', code: 'LINKS_TIMEOUT', reason: 'x', primaryMetered: true }),
      }),
    );
    assert.equal(verdictOf(dir).basis, 'links-unavailable');
    assert.equal(verdictOf(dir).metered, false);
    writeKitd(dir, kitdFile({ links: linksView({ state: 'off', source: 'off', primaryMetered: true }) }));
    assert.deepEqual(verdictOf(dir), { metered: false, basis: 'links-off', primary: null, links: [] });
    const old = kitdFile();
    delete (old as { links?: unknown }).links;
    writeKitd(dir, old);
    assert.equal(verdictOf(dir).basis, 'links-off', 'an older kitd without links');
  });

  test('stale: older than 10 s, or dated more than 10 s ahead', () => {
    writeKitd(dir, kitdFile({}, NOW - 10_000));
    assert.deepEqual(verdictOf(dir), { metered: false, basis: 'kitd-stale', primary: null, links: [] });
    writeKitd(dir, kitdFile({}, NOW - 9_999));
    assert.equal(verdictOf(dir).metered, true, 'just under the bound is fresh');
    writeKitd(dir, kitdFile({}, NOW + 3_600_000));
    assert.equal(verdictOf(dir).basis, 'kitd-stale', 'a status from the future does not hold forever');
    const noStamp = kitdFile();
    noStamp['updatedAt'] = 'yesterday';
    writeKitd(dir, noStamp);
    assert.equal(verdictOf(dir).basis, 'kitd-stale', 'an unparseable stamp has no age: stale');
    noStamp['updatedAt'] = 'x'.repeat(41);
    writeKitd(dir, noStamp);
    assert.equal(verdictOf(dir).basis, 'kitd-absent', 'a stamp longer than IsoTime is of the wrong shape');
  });

  test('hostile files: wrong types, __proto__, NUL, huge arrays, oversized, not a file → not metered', () => {
    const cases: [string, unknown][] = [
      ['not JSON', '{"links":'],
      ['null', 'null'],
      ['an array', '[1,2,3]'],
      ['primaryMetered a string', kitdFile({ links: { ...linksView(), primaryMetered: 'yes' as never } })],
      ['primaryMetered 1', kitdFile({ links: { ...linksView(), primaryMetered: 1 as never } })],
      ['links a string', kitdFile({ links: 'metered' as never })],
      ['links.links not an array', kitdFile({ links: { ...linksView(), links: {} as never } })],
      ['state unknown', kitdFile({ links: { ...linksView(), state: 'METERED' as never } })],
      ['updatedAt a number', { ...kitdFile(), updatedAt: NOW }],
      // another field of kitd's status of the wrong type: the whole file is of the wrong shape
      ['power a string', kitdFile({ power: 'lots' as never })],
      [
        'NUL in an interface name',
        kitdFile({
          links: linksView({
            links: [
              { iface: 'ww\u0000an0', type: 'modem', state: 'connected', metered: true, primary: true },
            ],
          }),
        }),
      ],
      [
        'more links than a view holds',
        kitdFile({
          links: linksView({
            links: Array.from({ length: 5000 }, (_, i) => ({
              iface: `m${i}`,
              type: 'modem' as const,
              state: 'connected' as const,
              metered: true,
              primary: i === 0,
            })),
          }),
        }),
      ],
      [
        'more problems than a view holds',
        kitdFile({ links: linksView({ problems: Array.from({ length: 10_000 }, () => 'x') }) }),
      ],
    ];
    for (const [what, body] of cases) {
      writeKitd(dir, body);
      const v = verdictOf(dir);
      assert.equal(v.metered, false, what);
      assert.equal(v.basis, 'kitd-absent', what);
    }
    // __proto__ carrying the verdict: JSON.parse makes it an own key, never the prototype; without an
    // own primaryMetered the view is of the wrong shape
    const links = linksView() as Record<string, unknown>;
    delete links['primaryMetered'];
    const protoText = JSON.stringify(kitdFile({ links: links as never })).replace(
      '"source":"sim"',
      '"__proto__":{"primaryMetered":true,"state":"ok"},"source":"sim"',
    );
    assert.match(protoText, /"__proto__":\{"primaryMetered":true/);
    writeKitd(dir, protoText);
    assert.equal(verdictOf(dir).metered, false, '__proto__ inside the links view');
    writeKitd(dir, `{"__proto__":${JSON.stringify(kitdFile())}}`);
    assert.equal(verdictOf(dir).metered, false, 'a whole status under __proto__');
    assert.equal(({} as Record<string, unknown>)['primaryMetered'], undefined, 'no prototype was polluted');
    // a valid status padded past the size bound is not read at all
    const padded = { ...kitdFile(), pad: 'x'.repeat(KITD_STATUS_MAX_BYTES) };
    writeKitd(dir, padded);
    assert.ok(fs.statSync(dataLayout(dir).runStatus('kitd')).size > KITD_STATUS_MAX_BYTES);
    assert.equal(verdictOf(dir).basis, 'kitd-absent', 'oversized');
    // and the same status under the bound is read (the bound, not the padding, refused it)
    writeKitd(dir, { ...kitdFile(), pad: 'x'.repeat(1000) });
    assert.equal(verdictOf(dir).metered, true, 'extra fields under the bound are fine');
    // a directory where the file should be
    fs.rmSync(dataLayout(dir).runStatus('kitd'));
    fs.mkdirSync(dataLayout(dir).runStatus('kitd'));
    assert.equal(verdictOf(dir).basis, 'kitd-absent', 'a directory');
    fs.rmSync(dataLayout(dir).runStatus('kitd'), { recursive: true });
    assert.equal(verdictOf(dir).basis, 'kitd-absent', 'no file');
  });
});

describe('uplink gate', () => {
  test('essential: holds all but orders and stock while metered; re-reads kitd at most once a second', () => {
    const dir = tmpDir('metered-gate');
    let now = NOW;
    const gate = new UplinkGate(dir, 'essential', () => now);
    assert.equal(gate.holds(), false, 'no kitd status yet');
    assert.equal(gate.lanes(), undefined);
    writeKitd(dir, kitdFile({}, now));
    assert.equal(gate.holds(), false, 'the last reading is less than a second old');
    now += 1000;
    assert.equal(gate.holds(), true);
    assert.deepEqual(gate.lanes(), METERED_LANES);
    assert.deepEqual([...METERED_LANES], ['orders', 'stock']);
    const held = gate.status();
    assert.ok(uplinkStatus.check(held), uplinkStatus.errors(held).join('; '));
    assert.deepEqual(held, {
      mode: 'essential',
      metered: true,
      basis: 'metered',
      primary: 'wwan0',
      via: null,
      held: ['health', 'telemetry', 'series', 'product-media'],
      heldSince: new Date(now).toISOString(),
    });
    // kitd stops writing: its status goes stale and sync goes back to normal
    now += 10_000;
    assert.equal(gate.holds(), false);
    assert.deepEqual(gate.status().held, []);
    assert.equal(gate.status().heldSince, null);
    assert.equal(gate.status().basis, 'kitd-stale');
    // an unmetered link becomes primary
    writeKitd(dir, kitdFile({}, now));
    assert.equal(gate.refresh(true).metered, true);
    writeKitd(
      dir,
      kitdFile(
        {
          links: linksView({
            links: [{ iface: 'eth0', type: 'ethernet', state: 'connected', metered: false, primary: true }],
            primaryMetered: false,
          }),
        },
        now,
      ),
    );
    now += 1000;
    assert.equal(gate.holds(), false);
    assert.equal(gate.status().primary, 'eth0');
  });

  test('all: nothing is held, but the status still says the link is metered', () => {
    const dir = tmpDir('metered-all');
    writeKitd(dir, kitdFile());
    const gate = new UplinkGate(dir, 'all', () => NOW);
    assert.equal(gate.holds(), false);
    assert.equal(gate.lanes(), undefined);
    const s = gate.status();
    assert.ok(uplinkStatus.check(s));
    assert.equal(s.metered, true);
    assert.deepEqual(s.held, []);
  });
});

describe('pump and series shipper behind the gate', () => {
  let kit: TestKit;
  after(() => kit?.close());
  const limits = {
    stock: { ttlMs: 1e12, quotaBytes: 1e9 },
    health: { ttlMs: 1e12, quotaBytes: 1e9 },
    telemetry: { ttlMs: 1e12, quotaBytes: 1e9 },
  };

  test('pump: only orders and stock while held (telemetry stays queued), everything once released', async () => {
    kit = await makeKit(uniqueId('metered'));
    const lanes = new LaneKeeper(kit.store, limits);
    for (let i = 0; i < 3; i++) await lanes.enqueue('telemetry', 'telemetry', { n: i });
    await lanes.enqueue('health', 'health', { ok: true });
    const orders = [await kit.place(), await kit.place()];
    await lanes.snapshotStock();
    const sent: { topic: string; ids: string[]; lanes: string[] }[] = [];
    let allowed: readonly ('orders' | 'stock' | 'health' | 'telemetry')[] | undefined = METERED_LANES;
    const pump = new OutboxPump(
      kit.store,
      kit.vault,
      {
        ready: () => true,
        send: (topic, payload) => {
          const entries = (JSON.parse(payload) as { entries: { lane: string; id: string }[] }).entries;
          sent.push({ topic, ids: entries.map((e) => e.id), lanes: entries.map((e) => e.lane) });
        },
      },
      { kitId: kit.kitId, batchMax: 100, batchBytes: 256 * 1024, window: 8, ackTimeoutMs: 60_000 },
      undefined,
      () => allowed,
    );
    pump.pump();
    const lanesSent = new Set(sent.flatMap((s) => s.lanes));
    assert.deepEqual([...lanesSent].sort(), ['orders', 'stock']);
    assert.ok(sent.every((s) => s.topic.endsWith('/orders')));
    for (const id of orders)
      assert.ok(
        sent.some((s) => s.ids.includes(id)),
        `order ${id} sent`,
      );
    // a later pump while still held sends nothing more (and the telemetry is still there)
    const before = sent.length;
    pump.pump();
    assert.equal(sent.length, before);
    assert.equal(
      kit.store.outbox.getKeysCount({ start: [LANES.telemetry, ''], end: [LANES.telemetry + 1, ''] }),
      3,
    );
    // an unmetered link is primary: health and telemetry go
    allowed = undefined;
    pump.pump();
    const later = sent.slice(before);
    assert.deepEqual([...new Set(later.flatMap((s) => s.lanes))].sort(), ['health', 'telemetry']);
    assert.equal(later.flatMap((s) => s.lanes).filter((l) => l === 'telemetry').length, 3);
    assert.ok(later.every((s) => s.topic.endsWith('/telemetry')));
  });

  test('series shipper: seals nothing while held, the cursor stays; ships the range once released', async () => {
    const k = await makeKit(uniqueId('metered-series'));
    try {
      const hub = openerFromPrivate(generateKeyPairSync('x25519').privateKey);
      const catalogKey = generateKeyPairSync('ed25519');
      const base = 1_800_000_000 - (1_800_000_000 % 60);
      const clock = (base + 3600) * 1000;
      await k.store.root.transaction(() => {
        for (let i = 0; i < 120; i++) void k.store.series.put(base + i, { popkit_orders_total: i % 2 });
      });
      let held = true;
      const s = new SeriesShipper(
        k.store,
        new LaneKeeper(k.store, limits, () => clock),
        {
          kitId: k.kitId,
          enabled: true,
          hubPublicKey: catalogKey.publicKey,
          minGroup: 5,
          settleS: 10,
          audienceEveryMs: 60_000,
          maxDeferMs: 60_000,
        },
        () => 'default',
        { busy: () => false },
        () => clock,
        () => held,
      );
      await s.receiveKey(Buffer.from(JSON.stringify(signSealKey(catalogKey.privateKey, hub))));
      const telemetry = () =>
        k.store.outbox.getKeysCount({ start: [LANES.telemetry, ''], end: [LANES.telemetry + 1, ''] });
      assert.equal(await s.tick(), 0);
      assert.equal(telemetry(), 0);
      assert.equal(readSeriesCursor(k.store), undefined, 'the cursor has not moved');
      assert.equal(s.status().state, 'held');
      assert.match(s.status().message ?? '', /metered/);
      held = false;
      assert.equal(await s.tick(), 2, 'both minutes ship once released');
      assert.equal(telemetry(), 2);
      assert.equal(s.status().state, 'shipping');
    } finally {
      await k.close();
    }
  });
});
