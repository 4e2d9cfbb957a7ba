// What counting viewers costs checkout's /live route (#12): GET /live/<segment> through app.inject with
// the viewer tracker and without it (the baseline, same run, alternating rounds), the tracker's
// seen() alone per call, and one batched flush of 5 000 dirty viewer records into real LMDB.
// Prints figures and the ratio; nothing is asserted. `npm run bench:audience` (about 30 s).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { openKitStore, setEventState } from '../core/store/index.ts';
import { ViewerTracker } from '../services/checkout/audience/tracker.ts';
import { mediaRoutes } from '../services/checkout/routes/media.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-bench-audience-'));
const hls = path.join(dir, 'hls');
fs.mkdirSync(hls);
fs.writeFileSync(path.join(hls, 'seg1.ts'), Buffer.alloc(188 * 100, 0x47));
const store = openKitStore(dir);
await setEventState(store, true, 'bench-ev', null);
const tracker = new ViewerTracker(store, {
  leaveS: 30,
  keyMaxH: 24,
  ttlH: 72,
  venueNets: '10.0.0.0/8,192.168.0.0/16',
  flushMs: 3_600_000,
  sweepMs: 3_600_000,
});
await tracker.tick();

const bare = Fastify();
await bare.register(mediaRoutes, { hlsDir: hls });
const counted = Fastify();
await counted.register(mediaRoutes, { hlsDir: hls, viewers: tracker });

const VIEWERS = 5000;
const addr = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const ua = (i: number) => `Mozilla/5.0 (bench phone ${i % 50})`;

async function injectRound(app: typeof bare, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const v = i % VIEWERS;
    await app.inject({
      method: 'GET',
      url: '/live/seg1.ts',
      remoteAddress: addr(v),
      headers: { 'user-agent': ua(v) },
    });
  }
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

const N = 4000;
await injectRound(bare, 500);
await injectRound(counted, 500);
const rates: { bare: number[]; counted: number[] } = { bare: [], counted: [] };
for (let r = 0; r < 4; r++) {
  rates.bare.push(await injectRound(bare, N));
  rates.counted.push(await injectRound(counted, N));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const bareRate = median(rates.bare);
const countedRate = median(rates.counted);

// seen() alone
const M = 200_000;
const t0 = process.hrtime.bigint();
for (let i = 0; i < M; i++) tracker.seen(addr(i % VIEWERS), ua(i % VIEWERS));
const seenNs = Number(process.hrtime.bigint() - t0) / M;

// one batched flush of every dirty record
const t1 = process.hrtime.bigint();
const written = await tracker.flush();
const flushMs = Number(process.hrtime.bigint() - t1) / 1e6;

console.log(`GET /live/<segment> via inject, ${VIEWERS} viewers, median of 4 rounds of ${N}:`);
console.log(`  without tracker (baseline): ${bareRate.toFixed(0)} req/s`);
console.log(`  with tracker:               ${countedRate.toFixed(0)} req/s`);
console.log(`  ratio with/without:         ${(countedRate / bareRate).toFixed(3)}`);
console.log(`tracker.seen() alone: ${seenNs.toFixed(0)} ns/call (HMAC-SHA256 + map update)`);
console.log(`one flush of ${written} dirty viewer records in one transaction: ${flushMs.toFixed(1)} ms`);
console.log(`viewers watching: ${tracker.current()}`);

await bare.close();
await counted.close();
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
