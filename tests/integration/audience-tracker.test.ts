// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// The viewer tracker (services/checkout/audience/tracker.ts) against a real LMDB store with an
// injected clock: ids are keyed hashes (no address or user agent in the data file's bytes), the key
// rotates at an event switch and after its maximum age and carries over a restart, counts, joins,
// leaves and watch time follow a scripted set of requests, in_venue vs remote, nothing is recorded
// without a live event, and the retention sweep deletes records (and the consent links naming them)
// after the event's end plus the TTL. The /live route reports answered requests only.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Fastify from 'fastify';
import { ConfigError } from '../../core/config.ts';
import {
  type KitStore,
  linkOrderInTxn,
  openKitStore,
  readAudienceKey,
  readConsent,
  readEventState,
  readViewer,
  recordConsent,
  setEventState,
  viewersOfEvent,
} from '../../core/store/index.ts';
import { ViewerTracker, venueBlockList } from '../../services/checkout/audience/tracker.ts';
import { mediaRoutes } from '../../services/checkout/routes/media.ts';
import { tempDir } from '../support/checkout.ts';

const UA = 'PopkitTestAgent/9.9 (zqxj-unique-agent)';
const ADDR = '10.77.88.99';
const REMOTE = '203.0.113.77';
const T0 = 1_800_000_000_000; // ms
const LEAVE_S = 30;

const stores: KitStore[] = [];
after(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
});

function setup(opts: { keyMaxH?: number; ttlH?: number; venueNets?: string; dir?: string } = {}) {
  const dir = opts.dir ?? tempDir('popkit-viewers-');
  const store = openKitStore(dir);
  stores.push(store);
  const clock = { now: T0 };
  const tracker = new ViewerTracker(store, {
    leaveS: LEAVE_S,
    keyMaxH: opts.keyMaxH ?? 24,
    ttlH: opts.ttlH ?? 72,
    venueNets: opts.venueNets ?? '10.0.0.0/8,192.168.0.0/16,fc00::/7',
    flushMs: 0,
    sweepMs: 3_600_000,
    clock: () => clock.now,
  });
  return { dir, store, clock, tracker };
}

const expectedId = (key: string, address: string, ua: string) =>
  createHmac('sha256', Buffer.from(key, 'base64url'))
    .update(`${address}\n${ua}`)
    .digest()
    .subarray(0, 16)
    .toString('base64url');

describe('viewer ids and the event key', () => {
  test('ids are keyed hashes: no address or user agent in the LMDB file', async () => {
    const { store, tracker } = setup();
    await setEventState(store, true, 'ev-a', null);
    await tracker.tick();
    const key = readAudienceKey(store);
    assert.ok(key);
    assert.equal(key.eventId, 'ev-a');
    assert.equal(Buffer.from(key.key, 'base64url').length, 32);
    tracker.seen(ADDR, UA);
    tracker.seen(REMOTE, UA);
    await tracker.flush();
    const id = expectedId(key.key, ADDR, UA);
    assert.equal(tracker.idOf(ADDR, UA), id);
    assert.match(id, /^[A-Za-z0-9_-]{22}$/);
    assert.ok(readViewer(store, id));
    assert.equal(viewersOfEvent(store, 'ev-a').length, 2);
    const bytes = fs.readFileSync(store.file);
    for (const needle of [UA, 'zqxj-unique-agent', ADDR, REMOTE])
      assert.equal(bytes.indexOf(Buffer.from(needle)), -1, `${needle} found in the data file`);
    // the id is in there: the search itself works
    assert.notEqual(bytes.indexOf(Buffer.from(id)), -1);
  });

  test('the key rotates at an event switch and after its maximum age; the old one is gone', async () => {
    const { store, tracker, clock } = setup({ keyMaxH: 2 });
    await setEventState(store, true, 'ev-a', null);
    await tracker.tick();
    const k1 = readAudienceKey(store);
    assert.ok(k1);
    const idA = tracker.idOf(ADDR, UA);
    tracker.seen(ADDR, UA);
    // switch: stop, start another event
    await setEventState(store, false, null, null);
    await tracker.tick();
    assert.equal(readAudienceKey(store), undefined, 'no event live: the key is discarded');
    assert.equal(tracker.idOf(ADDR, UA), undefined);
    assert.deepEqual(tracker.totals().leaves, 1, 'the viewer left when the event ended');
    await setEventState(store, true, 'ev-b', null);
    await tracker.tick();
    const k2 = readAudienceKey(store);
    assert.ok(k2);
    assert.equal(k2.eventId, 'ev-b');
    assert.notEqual(k2.key, k1.key);
    const idB = tracker.idOf(ADDR, UA);
    assert.notEqual(idB, idA, 'the same person is another id at another event');
    // max age: 2 h later, same event, a new key
    clock.now += 2 * 3600_000 - 1000;
    await tracker.tick();
    assert.equal(readAudienceKey(store)?.key, k2.key);
    clock.now += 1000;
    await tracker.tick();
    const k3 = readAudienceKey(store);
    assert.equal(k3?.eventId, 'ev-b');
    assert.notEqual(k3?.key, k2.key);
    assert.notEqual(tracker.idOf(ADDR, UA), idB);
    // one key at a time in meta: the old ones are not kept beside it (LMDB's freed pages: docs/security.md)
    const kept = [...store.meta.getRange()].filter(({ value }) => JSON.stringify(value).includes('"key"'));
    assert.deepEqual(
      kept.map(({ value }) => (value as { key: string }).key),
      [k3?.key],
    );
  });

  test('a checkout restart mid-event keeps the key: the same viewer is not counted twice', async () => {
    const first = setup();
    await setEventState(first.store, true, 'ev-r', null);
    await first.tracker.tick();
    first.tracker.seen(ADDR, UA);
    first.clock.now += 4000;
    first.tracker.seen(ADDR, UA);
    await first.tracker.flush();
    const id = first.tracker.idOf(ADDR, UA);
    await first.store.close();
    // a new process 10 s later
    const second = setup({ dir: first.dir });
    second.clock.now = first.clock.now + 10_000;
    await second.tracker.tick();
    assert.equal(second.tracker.idOf(ADDR, UA), id);
    second.tracker.seen(ADDR, UA);
    assert.equal(second.tracker.totals().joins, 0, 'a continuing viewer, not a new join');
    assert.equal(second.tracker.current(), 1);
    await second.tracker.flush();
    assert.equal(viewersOfEvent(second.store, 'ev-r').length, 1);
    const rec = readViewer(second.store, id ?? '');
    assert.equal(rec?.watchSeconds, 14);
    assert.equal(rec?.sessions.length, 1);
  });

  test('no live event: nothing is recorded, no key is kept', async () => {
    const { store, tracker } = setup();
    await tracker.tick();
    tracker.seen(ADDR, UA);
    await tracker.flush();
    assert.equal(tracker.current(), 0);
    assert.equal(readAudienceKey(store), undefined);
    assert.equal([...store.viewers.getKeys()].length, 0);
  });
});

describe('counts from a scripted set of requests', () => {
  test('joins, leaves, current and watch seconds; in_venue vs remote', async () => {
    const { store, tracker, clock } = setup();
    await setEventState(store, true, 'ev-c', null);
    await tracker.tick();
    const A = ['192.168.1.20', 'Phone A'] as const; // venue, watches 0..60 s every 2 s
    const B = [REMOTE, 'Laptop B'] as const; // remote, 0..10 s, away 40 s, back 50..60 s
    const C = ['::ffff:10.1.2.3', 'Phone C'] as const; // venue (IPv4-mapped), one request at 20 s
    const D = ['2001:db8::5', 'Tablet D'] as const; // remote IPv6, 30..40 s
    for (let t = 0; t <= 60; t += 2) {
      clock.now = T0 + t * 1000;
      tracker.seen(...A);
      if (t <= 10 || t >= 50) tracker.seen(...B);
      if (t === 20) tracker.seen(...C);
      if (t >= 30 && t <= 40) tracker.seen(...D);
      if (t === 44) {
        // B last seen at 10 s: 34 s ago, past the leave timeout
        await tracker.tick();
        assert.equal(tracker.current(), 3, 'A, C (20 s ago) and D');
      }
    }
    assert.equal(tracker.current(), 4, 'B came back');
    assert.deepEqual(
      { joins: tracker.totals().joins, leaves: tracker.totals().leaves },
      { joins: 5, leaves: 1 },
    );
    // at 95 s: A (last 60) and B (60) have been away 35 s, D (40) 55 s, C (20) 75 s
    clock.now = T0 + 95_000;
    await tracker.tick();
    assert.equal(tracker.current(), 0);
    const totals = tracker.totals();
    assert.equal(totals.leaves, 5);
    // A 60 + B 10 + 10 + C 0 + D 10
    assert.equal(totals.watchSeconds, 90);
    await tracker.flush();
    const recs = new Map(viewersOfEvent(store, 'ev-c').map((v) => [v.id, v]));
    const rec = (who: readonly [string, string]) => recs.get(tracker.idOf(...who) ?? '');
    assert.equal(rec(A)?.inVenue, true);
    assert.equal(rec(C)?.inVenue, true);
    assert.equal(rec(B)?.inVenue, false);
    assert.equal(rec(D)?.inVenue, false);
    assert.deepEqual(rec(B)?.sessions, [
      [1_800_000_000, 1_800_000_010],
      [1_800_000_050, 1_800_000_060],
    ]);
    assert.equal(rec(B)?.watchSeconds, 20);
    assert.equal(rec(A)?.watchSeconds, 60);
    // written once the viewers left, they leave the tracker's memory too (a return reads the record)
    clock.now = T0 + 100_000;
    tracker.seen(...A);
    assert.equal(tracker.totals().joins, 6);
    assert.equal(rec(A)?.firstSeen, 1_800_000_000);
  });

  test('venue ranges: a bad CIDR is a configuration error; custom ranges apply', () => {
    assert.throws(() => venueBlockList('10.0.0.0/8,not-a-net'), ConfigError);
    assert.throws(() => venueBlockList('10.0.0.0/33'), ConfigError);
    assert.throws(() => venueBlockList('10.0.0.0'), ConfigError);
    const { tracker } = setup({ venueNets: '100.64.0.0/10' });
    assert.equal(tracker.inVenue('100.64.3.4'), true);
    assert.equal(tracker.inVenue('192.168.1.1'), false);
    assert.equal(tracker.inVenue('garbage'), false);
  });
});

describe('retention', () => {
  test('records get the event end plus the TTL, and are swept with their consent links', async () => {
    const { store, tracker, clock } = setup({ ttlH: 1 });
    await setEventState(store, true, 'ev-t', null);
    await tracker.tick();
    tracker.seen(ADDR, UA);
    const id = tracker.idOf(ADDR, UA) ?? '';
    await recordConsent(store, 'dev1', { granted: true, textVersion: 't1', at: new Date(T0).toISOString() });
    await store.root.transaction(() =>
      linkOrderInTxn(store, 'dev1', { viewerId: id, orderId: 'o1', eventId: 'ev-t' }),
    );
    await tracker.flush();
    // while live: nothing is due, the sweep writes nothing
    assert.deepEqual(await tracker.sweep(), { deleted: 0, stamped: 0 });
    assert.equal(readViewer(store, id)?.expiresAt, undefined);
    await setEventState(store, false, null, null);
    await tracker.tick();
    const ended = Math.floor(Date.parse(readEventState(store).stoppedAt ?? '') / 1000);
    assert.deepEqual(await tracker.sweep(), { deleted: 0, stamped: 1 });
    const expiresAt = readViewer(store, id)?.expiresAt ?? 0;
    assert.equal(expiresAt, Math.max(ended, 1_800_000_000) + 3600);
    assert.deepEqual(await tracker.sweep(expiresAt - 1), { deleted: 0, stamped: 0 });
    assert.equal(readConsent(store, 'dev1')?.links.length, 1);
    clock.now = expiresAt * 1000;
    assert.deepEqual(await tracker.sweep(), { deleted: 1, stamped: 0 });
    assert.equal(readViewer(store, id), undefined);
    assert.deepEqual(readConsent(store, 'dev1')?.links, []);
    assert.equal(readConsent(store, 'dev1')?.granted, true, 'the consent itself stays');
  });
});

describe('the /live route reports answered requests', () => {
  test('a served playlist or segment counts its viewer; a 404 or a refused name does not', async () => {
    const { store, tracker, dir } = setup();
    await setEventState(store, true, 'ev-m', null);
    await tracker.tick();
    const hls = path.join(dir, 'hls-test');
    fs.mkdirSync(hls, { recursive: true });
    fs.writeFileSync(
      path.join(hls, 'live.m3u8'),
      '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00001.ts\n',
    );
    fs.writeFileSync(path.join(hls, 'seg_00001.ts'), Buffer.from([0x47, 0, 0, 0]));
    const app = Fastify();
    await app.register(mediaRoutes, { hlsDir: hls, viewers: tracker });
    after(() => app.close());
    const get = (file: string, ip: string, ua: string) =>
      app.inject({ method: 'GET', url: `/live/${file}`, remoteAddress: ip, headers: { 'user-agent': ua } });
    assert.equal((await get('nothing.m3u8', '10.0.0.9', 'X')).statusCode >= 400, true);
    assert.equal((await get('seg_99999.ts', '10.0.0.9', 'X')).statusCode >= 400, true);
    assert.equal((await get('..%2Fsecret.ts', '10.0.0.9', 'X')).statusCode >= 400, true);
    assert.equal(tracker.current(), 0);
    assert.equal((await get('live.m3u8', '10.0.0.9', 'X')).statusCode, 200);
    assert.equal((await get('seg_00001.ts', '10.0.0.9', 'X')).statusCode, 200);
    assert.equal((await get('live.m3u8', '203.0.113.9', 'Y')).statusCode, 200);
    assert.equal(tracker.current(), 2);
    assert.equal(tracker.totals().joins, 2);
  });
});
