// bench:product-media — what product images cost at the hub and whether they slow orders on the kit.
// A hub on real PostgreSQL renders K photos (ms per upload, bytes per rendition); a kit (real LMDB,
// sync on a private Mosquitto) then places N orders and times them until the hub acked every one:
// alone (the baseline, measured in the same run), with the image fetcher pulling every rendition
// without pacing, and with the fetcher paced by checkout's load as `popkit sync` runs it.
//
//   node --import tsx bench/product-media.ts [--photos 8] [--orders 300] [--size 3000x2000] [--rounds 3]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LANES } from '../core/contracts/lanes.ts';
import { dataLayout } from '../core/data-dir.ts';
import { readStoredCatalog, scanOutbox } from '../core/store/index.ts';
import { ALWAYS_IDLE, CheckoutLoad, type LoadSignal } from '../services/sync/load.ts';
import { MediaFetcher } from '../services/sync/media-fetch.ts';
import {
  dropSchema,
  makeKit,
  mosquitto,
  startHub,
  startSync,
  uniqueId,
  waitFor,
} from '../tests/support/hub-link.ts';
import { photoJpeg } from '../tests/support/product-images.ts';

const { values } = parseArgs({
  options: {
    photos: { type: 'string', default: '8' },
    orders: { type: 'string', default: '300' },
    size: { type: 'string', default: '3000x2000' },
    rounds: { type: 'string', default: '3' },
  },
});
const K = Number(values.photos);
const N = Number(values.orders);
const ROUNDS = Number(values.rounds);
const [W, H] = String(values.size).split('x').map(Number) as [number, number];
if (!(K > 0) || !(N > 0) || !(ROUNDS > 0) || !(W > 0) || !(H > 0)) {
  process.stderr.write('usage: bench/product-media.ts [--photos K] [--orders N] [--size WxH]\n');
  process.exit(2);
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const r1 = (n: number) => Math.round(n * 10) / 10;

const schema = uniqueId('b_media').replace(/-/g, '_');
const eventId = uniqueId('ev');
const broker = await mosquitto();
const hub = await startHub({ schema, brokerUrl: broker.url });
const kit = await makeKit(uniqueId('kit-bench'));
const sync = startSync(kit, broker.url, {
  POPKIT_HUB_PUBLIC_KEY: fs.readFileSync(hub.publicKeyFile, 'utf8'),
  POPKIT_EVENT_ID: eventId,
});
try {
  // ---- hub: render
  const renderMs: number[] = [];
  const sizes: Record<string, number[]> = { phone: [], screen: [] };
  let uploadBytes = 0;
  const images: Array<{ phone: string; screen: string }> = [];
  for (let i = 0; i < K; i++) {
    const jpeg = await photoJpeg(W, H, i);
    uploadBytes += jpeg.length;
    const t0 = performance.now();
    const res = await fetch(`${hub.httpUrl}/v1/images`, {
      method: 'POST',
      headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'image/jpeg' },
      body: jpeg as unknown as BodyInit,
    });
    renderMs.push(performance.now() - t0);
    const b = (await res.json()) as {
      image: { phone: string; screen: string };
      renditions: Record<string, { bytes: number }>;
    };
    images.push(b.image);
    for (const n of ['phone', 'screen']) sizes[n]!.push(b.renditions[n]!.bytes);
  }
  process.stdout.write(
    `hub: ${K} uploads of ${W}×${H} JPEG (${r1(uploadBytes / K / 1024)} KiB each): render p50 ${r1(pct(renderMs, 50))} ms, ` +
      `max ${r1(Math.max(...renderMs))} ms; phone ${r1(pct(sizes['phone']!, 50) / 1024)} KiB, screen ${r1(pct(sizes['screen']!, 50) / 1024)} KiB (p50)\n`,
  );
  const put = await fetch(`${hub.httpUrl}/v1/events/${eventId}/catalog`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      version: 1,
      currency: 'EUR',
      items: [
        { sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 10_000_000 },
        { sku: 'CAP', name: 'Cap', priceCents: 1500, stock: 10_000_000 },
        ...images.map((image, i) => ({ sku: `P${i}`, name: `P${i}`, priceCents: 100, stock: 10, image })),
      ],
    }),
  });
  if (put.status !== 200) throw new Error(`catalog: ${put.status} ${await put.text()}`);
  await waitFor(() => readStoredCatalog(kit.store)?.eventId === eventId, 20_000, 'catalog on the kit');
  const dir = dataLayout(kit.dataDir).productMedia;
  const ordersLeft = () => [...scanOutbox(kit.store)].filter((e) => e.key[0] === LANES.orders).length;

  /** N orders one after the other; ms per order to commit, and ms until the hub acked them all. */
  async function orders(during?: LoadSignal) {
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : [])
      fs.rmSync(path.join(dir, f), { force: true });
    const fetcher = during
      ? new MediaFetcher(kit.store, { dir, hubHttpUrl: hub.httpUrl, budgetBytes: 1 << 30, load: during })
      : undefined;
    let stop = false;
    let passes = 0;
    let warm = 0;
    const loop = (async () => {
      while (fetcher && !stop) {
        const s = await fetcher.pass();
        passes++;
        warm = s.warm;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const commit: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const a = performance.now();
      await kit.place();
      commit.push(performance.now() - a);
    }
    await waitFor(() => ordersLeft() === 0, 60_000, 'orders acked');
    const allAcked = performance.now() - t0;
    stop = true;
    await loop;
    return { commit, allAcked, passes, warm };
  }

  // a warm-up run (discarded), then rounds of the three conditions interleaved: this machine is shared,
  // so each figure is the median over the rounds and the ratios compare runs of the same moment
  await orders();
  const runs: Record<string, Array<Awaited<ReturnType<typeof orders>>>> = {
    alone: [],
    unpaced: [],
    paced: [],
  };
  for (let round = 0; round < ROUNDS; round++) {
    runs['alone']!.push(await orders());
    runs['unpaced']!.push(await orders(ALWAYS_IDLE));
    runs['paced']!.push(await orders(new CheckoutLoad(kit.store, 500)));
  }
  const med = (xs: number[]) => pct(xs, 50);
  const base = med(runs['alone']!.map((r) => r.allAcked));
  for (const [name, rs] of Object.entries(runs)) {
    const all = med(rs.map((r) => r.allAcked));
    const warm = rs.map((r) => r.warm).join('/');
    process.stdout.write(
      `${`orders ${name === 'alone' ? 'alone' : `+ fetch, ${name}`}`.padEnd(26)} commit p50 ${r1(med(rs.map((r) => pct(r.commit, 50))))} ms ` +
        `p95 ${r1(med(rs.map((r) => pct(r.commit, 95))))} ms; ${N} acked in ${Math.round(all)} ms (×${r1(all / base)} of alone)` +
        `${name === 'alone' ? '' : `; images warm by then ${warm} of ${K * 2}`}\n`,
    );
  }
} finally {
  await sync.stop();
  await hub.stop();
  await broker.stop();
  await kit.close();
  await dropSchema(schema);
}
