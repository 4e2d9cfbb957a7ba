// Product images reach the kit: a hub on real PostgreSQL renders uploads, signs a catalog naming them
// by hash and publishes it through a private Mosquitto; sync (real LMDB) accepts the catalog and its
// image fetcher copies every rendition into <data>/product-media over the hub's HTTP API, through a
// TCP relay this test can cut. Shown here: missing images fetched and verified; a transfer cut half-way
// continues from its part file (a Range request, fewer bytes than the whole); bytes that do not match
// their hash are refused and not kept; the disk budget holds (unreferenced images evicted first, what
// does not fit reported); while checkout takes orders the fetcher waits (a download in flight is cut)
// and the orders reach the hub; on a metered primary link it fetches nothing (a download in flight is
// cut) until the link is unmetered.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { catalogImageHashes } from '../../core/contracts/product-media.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { LANES, readStoredCatalog, scanOutbox } from '../../core/store/index.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { CheckoutLoad } from '../../services/sync/load.ts';
import { MediaFetcher } from '../../services/sync/media-fetch.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  PG_URL,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';
import { photoJpeg } from '../support/product-images.ts';

const schema = uniqueId('t_syncmedia').replace(/-/g, '_');
const eventId = uniqueId('ev');
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * A TCP relay kit → hub. It counts the hub's bytes, remembers the Range headers asked for, and can cut
 * every connection once `cutAfter` bytes went through, or hold the hub's bytes after `holdAfter` until
 * release() (a slow link, so that something can happen mid-transfer).
 */
class Relay {
  server: net.Server;
  port = 0;
  down = 0;
  ranges: string[] = [];
  cutAfter = Number.POSITIVE_INFINITY;
  holdAfter = Number.POSITIVE_INFINITY;
  private held: Array<() => void> = [];
  private sockets = new Set<net.Socket>();

  constructor(private readonly target: number) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      client.on('data', (d: Buffer) => {
        for (const m of d.toString('latin1').matchAll(/^range: *(.*)$/gim)) this.ranges.push(m[1]!.trim());
        upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => {
        const room = this.cutAfter - this.down;
        if (room <= 0) return close();
        const chunk = d.length > room ? d.subarray(0, room) : d;
        const send = () => {
          this.down += chunk.length;
          client.write(chunk);
          if (chunk.length < d.length || this.down >= this.cutAfter) close();
        };
        if (this.down + chunk.length > this.holdAfter) {
          upstream.pause();
          this.held.push(() => {
            send();
            upstream.resume();
          });
        } else send();
      });
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  reset(): void {
    this.down = 0;
    this.ranges = [];
    this.cutAfter = Number.POSITIVE_INFINITY;
    this.holdAfter = Number.POSITIVE_INFINITY;
  }

  get holding(): boolean {
    return this.held.length > 0;
  }

  release(): void {
    this.holdAfter = Number.POSITIVE_INFINITY;
    for (const f of this.held.splice(0)) f();
  }

  async close(): Promise<void> {
    this.release();
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

let broker: Mosquitto;
let hub: HubService;
let relay: Relay;
let kit: TestKit;
let sync: SyncService;
const uploads: Array<{ phone: string; screen: string; sizes: Record<string, number> }> = [];

async function upload(seed: number) {
  const res = await fetch(`${hub.httpUrl}/v1/images`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'image/jpeg' },
    body: (await photoJpeg(1400, 1000, seed)) as unknown as BodyInit,
  });
  assert.equal(res.status, 201);
  const b = (await res.json()) as {
    image: { phone: string; screen: string };
    renditions: Record<string, { sha256: string; bytes: number }>;
  };
  return {
    ...b.image,
    sizes: Object.fromEntries(Object.values(b.renditions).map((r) => [r.sha256, r.bytes])),
  };
}

let version = 0;
/** Sign a catalog at the hub naming `images` (one item each) and wait until the kit holds it. */
async function publishCatalog(images: Array<{ phone: string; screen: string }>) {
  version++;
  const catalog = {
    version,
    currency: 'EUR',
    items: [
      { sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 100_000 },
      { sku: 'CAP', name: 'Cap', priceCents: 1500, stock: 100_000 },
      ...images.map(({ phone, screen }, i) => ({
        sku: `IMG${i}`,
        name: `Item ${i}`,
        priceCents: 1000,
        stock: 100_000,
        image: { phone, screen },
      })),
    ],
  };
  const put = await fetch(`${hub.httpUrl}/v1/events/${eventId}/catalog`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(catalog),
  });
  assert.equal(put.status, 200, await put.text());
  await waitFor(
    () =>
      readStoredCatalog(kit.store)?.eventId === eventId && readStoredCatalog(kit.store)?.version === version,
    20_000,
    `catalog v${version} on the kit`,
  );
}

const dir = () => dataLayout(kit.dataDir).productMedia;
const onDisk = () => fs.readdirSync(dir()).filter((n) => /^[0-9a-f]{64}$/.test(n));
const fetcher = (o: Partial<ConstructorParameters<typeof MediaFetcher>[1]> = {}) =>
  new MediaFetcher(kit.store, { dir: dir(), hubHttpUrl: relay.url, budgetBytes: 256 * 1024 * 1024, ...o });

async function corrupt(hash: string) {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    // a damaged copy at the hub (a bad replica, a disk): the bytes no longer hash to their name
    await c.query(
      `UPDATE "${schema}".product_images SET bytes = set_byte(bytes, 40, (get_byte(bytes, 40) + 1) % 256) WHERE sha256 = $1`,
      [hash],
    );
  } finally {
    await c.end();
  }
}

before(async () => {
  broker = await mosquitto();
  hub = await startHub({ schema, brokerUrl: broker.url });
  relay = await new Relay(Number(new URL(hub.httpUrl).port)).listen();
  kit = await makeKit(uniqueId('kit-media'));
  sync = startSync(kit, broker.url, {
    POPKIT_HUB_PUBLIC_KEY: fs.readFileSync(hub.publicKeyFile, 'utf8'),
    POPKIT_EVENT_ID: eventId,
  });
  for (let i = 0; i < 4; i++) uploads.push(await upload(i));
});

after(async () => {
  await sync?.stop();
  await relay?.close();
  await hub?.stop();
  await broker?.stop();
  await kit?.close();
  await dropSchema(schema);
});

describe('sync fetches product images from the hub', () => {
  test('missing images are fetched, verified and kept under their hash', async () => {
    await publishCatalog(uploads.slice(0, 2));
    const f = fetcher();
    const s = await f.pass();
    assert.equal(s.wanted, 4);
    assert.equal(s.warm, 4, JSON.stringify(s));
    assert.equal(s.state, 'idle');
    const want = catalogImageHashes(readStoredCatalog(kit.store)!.items);
    assert.deepEqual(onDisk().sort(), [...want].sort());
    for (const h of want) assert.equal(sha(fs.readFileSync(path.join(dir(), h))), h);
    // the status file says the same
    const file = JSON.parse(fs.readFileSync(path.join(dir(), 'status.json'), 'utf8'));
    assert.equal(file.warm, 4);
    // nothing to do on the next pass: no request at all
    relay.reset();
    await f.pass();
    assert.equal(relay.down, 0);
  });

  test('a transfer cut half-way continues from its part file, not from zero', async () => {
    const img = uploads[2]!;
    await publishCatalog([img]);
    const size = img.sizes[img.screen]!;
    const phoneSize = img.sizes[img.phone]!;
    // the phone rendition goes whole, the screen one is cut near its middle
    relay.reset();
    relay.cutAfter = phoneSize + 600 + Math.floor(size / 2);
    const first = await fetcher().pass();
    assert.equal(first.warm, 1, JSON.stringify(first));
    assert.equal(first.state, 'hub-unreachable');
    const part = path.join(dir(), `${img.screen}.part`);
    const have = fs.statSync(part).size;
    assert.ok(have > 0 && have < size, `part holds ${have} of ${size}`);
    assert.ok(!fs.existsSync(path.join(dir(), img.screen)), 'not visible before it is whole');
    // a new fetcher (a restarted sync) continues with a range
    relay.reset();
    const second = await fetcher().pass();
    assert.equal(second.warm, 2, JSON.stringify(second));
    assert.deepEqual(relay.ranges, [`bytes=${have}-`]);
    assert.ok(relay.down < size, `second transfer ${relay.down} bytes, the image is ${size}`);
    assert.equal(sha(fs.readFileSync(path.join(dir(), img.screen))), img.screen);
    assert.ok(!fs.existsSync(part));
  });

  test('bytes that do not match their hash are refused and not kept', async () => {
    const img = uploads[3]!;
    await corrupt(img.screen);
    await publishCatalog([img]);
    const f = fetcher();
    const s = await f.pass();
    assert.equal(s.warm, 1);
    assert.deepEqual(s.mismatched, [img.screen]);
    // not asked for again on the next pass (a damaged copy stays damaged for a while), still reported
    relay.reset();
    const again = await f.pass();
    assert.equal(relay.down, 0);
    assert.deepEqual(again.mismatched, [img.screen]);
    assert.match(s.lastError ?? '', /MEDIA_HASH_MISMATCH/);
    assert.ok(!fs.existsSync(path.join(dir(), img.screen)));
    assert.ok(!fs.existsSync(path.join(dir(), `${img.screen}.part`)));
    // and served by checkout never: only verified names exist
    assert.ok(onDisk().every((h) => sha(fs.readFileSync(path.join(dir(), h))) === h));
  });

  test('the disk budget holds: unreferenced images are evicted first, what does not fit is reported', async () => {
    // the catalog now names uploads 0 and 1; some of their files are on disk, the others are not referenced
    await publishCatalog(uploads.slice(0, 2));
    const want = catalogImageHashes(readStoredCatalog(kit.store)!.items);
    for (const h of want) fs.rmSync(path.join(dir(), h), { force: true });
    const stale = onDisk().filter((h) => !want.includes(h));
    assert.ok(stale.length >= 2, 'images of earlier catalogs are on disk');
    const sizeOf = (h: string) => uploads.map((u) => u.sizes[h]).find((n) => n !== undefined)!;
    const phones = want.slice(0, 2).reduce((n, h) => n + sizeOf(h), 0);
    // room for both phone renditions and nothing else
    const budget = phones + 16;
    const s = await fetcher({ budgetBytes: budget }).pass();
    const used = fs.readdirSync(dir()).filter((n) => /^[0-9a-f]{64}/.test(n));
    const bytes = used.reduce((n, f) => n + fs.statSync(path.join(dir(), f)).size, 0);
    assert.ok(bytes <= budget, `${bytes} bytes on disk, budget ${budget}`);
    assert.equal(s.warm, 2, JSON.stringify(s));
    assert.deepEqual(s.didNotFit.sort(), want.slice(2).sort());
    for (const h of stale) assert.ok(!fs.existsSync(path.join(dir(), h)), 'unreferenced evicted');
    for (const h of want.slice(0, 2)) assert.ok(fs.existsSync(path.join(dir(), h)));
  });

  test('while checkout takes orders the fetcher waits, and the orders reach the hub', async () => {
    for (const h of onDisk()) fs.rmSync(path.join(dir(), h));
    const load = new CheckoutLoad(kit.store, 400);
    const f = fetcher({ load });
    // a slow link: the hub's bytes stop after 2 KB until released
    relay.reset();
    relay.holdAfter = 2048;
    const pass = f.pass();
    await waitFor(() => relay.holding, 10_000, 'a download in flight');
    // checkout sells while that download is in flight
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await kit.place());
    relay.release();
    const s = await pass;
    assert.equal(s.state, 'waiting-for-checkout');
    assert.equal(s.warm, 0, 'the download in flight was cut');
    const parts = fs.readdirSync(dir()).filter((n) => n.endsWith('.part'));
    assert.equal(parts.length, 1, 'what came is kept for later');
    // the orders reached the hub's ledger meanwhile
    await waitFor(
      () => ![...scanOutbox(kit.store)].some((e) => e.key[0] === LANES.orders),
      20_000,
      'orders acked',
    );
    // more orders keep it waiting
    await kit.place();
    assert.equal((await f.pass()).state, 'waiting-for-checkout');
    // once checkout is quiet (the hold passed), it completes
    await waitFor(() => !load.busy(), 5_000, 'checkout quiet');
    const done = await f.pass();
    assert.equal(done.warm, done.wanted, JSON.stringify(done));
    assert.ok(relay.ranges.length >= 1, 'the cut download resumed with a range');
  });

  test('on a metered primary link nothing is fetched and a download in flight is cut; unmetered, it completes', async () => {
    for (const n of fs.readdirSync(dir()).filter((x) => /^[0-9a-f]{64}/.test(x)))
      fs.rmSync(path.join(dir(), n));
    let metered = true;
    const f = fetcher({ uplink: { holds: () => metered } });
    relay.reset();
    const held = await f.pass();
    assert.equal(held.state, 'held-metered');
    assert.equal(held.warm, 0);
    assert.equal(relay.down, 0, 'not one byte over the metered link');
    // the link turns metered while a download is in flight
    metered = false;
    relay.holdAfter = 2048;
    const pass = f.pass();
    await waitFor(() => relay.holding, 10_000, 'a download in flight');
    metered = true;
    relay.release();
    const cut = await pass;
    assert.equal(cut.state, 'held-metered');
    assert.equal(cut.warm, 0, 'the download in flight was cut');
    assert.equal(fs.readdirSync(dir()).filter((n) => n.endsWith('.part')).length, 1, 'its part is kept');
    // an unmetered link is primary: it resumes and completes
    metered = false;
    relay.reset();
    const done = await f.pass();
    assert.equal(done.warm, done.wanted, JSON.stringify(done));
    assert.equal(done.state, 'idle');
    assert.ok(relay.ranges.length >= 1, 'the cut download resumed with a range');
  });
});
