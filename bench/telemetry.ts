// bench:telemetry — what sealing the kit's series costs (#12, docs/contracts.md#sealed-telemetry), on a
// real LMDB store: an hour of per-second samples (every metric) shipped as 60 per-minute batches by
// sync's SeriesShipper (read, seal, one write transaction with the cursor), against the same batches
// queued as plaintext JSON in one transaction (the baseline, measured in the same run). Also the hub's
// side per batch: opening and checking a sealed batch against JSON.parse + check of the plaintext.
//
//   npm run bench:telemetry -- [--hours 1] [--rounds 5]
import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { LANES } from '../core/contracts/lanes.ts';
import {
  METRIC_NAMES,
  type SeriesBatchT,
  type SeriesValuesT,
  seriesBatch,
} from '../core/contracts/series.ts';
import { openKitStore, queueSeriesEntries, readSeriesCursor } from '../core/store/index.ts';
import { open, openerFromPrivate, signSealKey, telemetryAad } from '../core/telemetry-seal.ts';
import { LaneKeeper } from '../services/sync/lanes.ts';
import { SeriesShipper } from '../services/sync/series-ship.ts';
import { tmpDir } from '../tests/support/hub-link.ts';

const { values } = parseArgs({
  options: { hours: { type: 'string', default: '1' }, rounds: { type: 'string', default: '5' } },
});
const HOURS = Number(values.hours);
const ROUNDS = Number(values.rounds);
const SECONDS = HOURS * 3600;

const hub = openerFromPrivate(generateKeyPairSync('x25519').privateKey);
const catalogKey = generateKeyPairSync('ed25519');
const limits = {
  stock: { ttlMs: 1e12, quotaBytes: 1e12 },
  health: { ttlMs: 1e12, quotaBytes: 1e12 },
  telemetry: { ttlMs: 1e12, quotaBytes: 1e12 },
};
const values1 = (i: number): SeriesValuesT =>
  Object.fromEntries(METRIC_NAMES.map((m, j) => [m, ((i * 31 + j * 7) % 1000) / 10])) as SeriesValuesT;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function round(): Promise<{
  sealedMs: number;
  plainMs: number;
  sealedBytes: number;
  plainBytes: number;
  batches: SeriesBatchT[];
  entries: { id: string; body: unknown }[];
}> {
  const store = openKitStore(tmpDir('bench-telemetry'));
  const base = 1_800_000_000 - (1_800_000_000 % 60);
  await store.root.transaction(() => {
    for (let i = 0; i < SECONDS; i++) void store.series.put(base + i, values1(i));
  });
  const now = (base + SECONDS + 60) * 1000;
  const lanes = new LaneKeeper(store, limits, () => now);
  const shipper = new SeriesShipper(
    store,
    lanes,
    {
      kitId: 'kit-bench',
      enabled: true,
      hubPublicKey: catalogKey.publicKey,
      minGroup: 5,
      settleS: 10,
      audienceEveryMs: 60_000,
      maxDeferMs: 60_000,
    },
    () => 'ev-bench',
    undefined,
    () => now,
  );
  await shipper.receiveKey(Buffer.from(JSON.stringify(signSealKey(catalogKey.privateKey, hub))));
  // sealed: as many ticks as it takes (30 minutes per tick)
  let t0 = performance.now();
  while ((readSeriesCursor(store) ?? 0) < base + SECONDS - 1) if ((await shipper.tick()) === 0) break;
  const sealedMs = performance.now() - t0;
  const entries: { id: string; body: unknown }[] = [];
  let sealedBytes = 0;
  for (const { key, value } of store.outbox.getRange({
    start: [LANES.telemetry, ''],
    end: [LANES.telemetry + 1, ''],
  })) {
    entries.push({ id: key[1] as string, body: value.body });
    sealedBytes += JSON.stringify(value.body).length;
  }
  // baseline: the same per-minute batches, plaintext, one transaction
  const batches: SeriesBatchT[] = [];
  t0 = performance.now();
  for (let m = 0; m < SECONDS / 60; m++) {
    const samples = [];
    for (const { key, value } of store.series.getRange({ start: base + m * 60, end: base + m * 60 + 60 }))
      samples.push({ t: key, v: value });
    batches.push({ v: 1, kitId: 'kit-bench', eventId: 'ev-bench', samples, markers: [] });
  }
  await queueSeriesEntries(
    store,
    batches.map((b, i) => ({
      key: [LANES.telemetry, `plain-${String(i).padStart(6, '0')}`],
      entry: { kind: 'telemetry' as const, body: b as unknown as Record<string, unknown>, createdAt: now },
    })),
    base + SECONDS - 1,
  );
  const plainMs = performance.now() - t0;
  const plainBytes = batches.reduce((n, b) => n + JSON.stringify(b).length, 0);
  await store.close();
  return { sealedMs, plainMs, sealedBytes, plainBytes, batches, entries };
}

const rows: Awaited<ReturnType<typeof round>>[] = [];
for (let r = 0; r < ROUNDS; r++) rows.push(await round());
const last = rows[rows.length - 1]!;
// the hub's side: open + check each sealed batch vs parse + check the plaintext
const plainTexts = last.batches.map((b) => JSON.stringify(b));
let t0 = performance.now();
for (let r = 0; r < ROUNDS; r++) for (const p of plainTexts) seriesBatch.check(JSON.parse(p));
const hubPlainMs = (performance.now() - t0) / ROUNDS;
t0 = performance.now();
for (let r = 0; r < ROUNDS; r++)
  for (const e of last.entries)
    seriesBatch.check(
      JSON.parse(open(hub, e.body, telemetryAad({ kitId: 'kit-bench', entryId: e.id })).toString('utf8')),
    );
const hubSealedMs = (performance.now() - t0) / ROUNDS;

const sealedMs = median(rows.map((r) => r.sealedMs));
const plainMs = median(rows.map((r) => r.plainMs));
const n = last.entries.length;
console.log(
  `bench:telemetry — ${HOURS} h of seconds (${SECONDS} samples × ${METRIC_NAMES.length} metrics), ${n} batches, median of ${ROUNDS} rounds`,
);
console.log(
  `kit  plaintext queue (baseline) : ${plainMs.toFixed(1)} ms  (${(plainMs / n).toFixed(3)} ms/batch)`,
);
console.log(
  `kit  sealed ship (read+seal+txn): ${sealedMs.toFixed(1)} ms  (${(sealedMs / n).toFixed(3)} ms/batch)  ratio ${(sealedMs / plainMs).toFixed(2)}×`,
);
console.log(
  `wire bytes plaintext ${last.plainBytes}  sealed ${last.sealedBytes}  ratio ${(last.sealedBytes / last.plainBytes).toFixed(2)}×`,
);
console.log(`hub  parse+check plaintext      : ${(hubPlainMs / n).toFixed(3)} ms/batch`);
console.log(
  `hub  open+parse+check sealed    : ${(hubSealedMs / n).toFixed(3)} ms/batch  ratio ${(hubSealedMs / hubPlainMs).toFixed(2)}×`,
);
