// bench:pglite-durability — what a power-cut-proof embedded hub costs (docs/power-cuts.md#the-hub-and-the-embedded-hub).
// The same orders (built by checkout's own OrderService, sent as sync sends them) recorded by the
// hub's Ledger on PGlite twice in this run, on the same disk: 'process-crash' (PGlite as shipped:
// fsync off, nothing reaches the disk before the OS writes it back) and 'power-cut' (the hub's:
// every commit's WAL fsynced before the ack). Each batch is one ledger transaction, as one MQTT
// batch from a kit is. Prints orders/s of each and their ratio; asserts nothing.
//
//   node --import tsx bench/pglite-durability.ts [--orders 600] [--batch 1]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BatchEntryT } from '../core/contracts/hub-wire.ts';
import { TokenVault } from '../core/token-vault.ts';
import { openPglite, type PgliteDurability } from '../services/hub/db.ts';
import { SandboxGateway } from '../services/hub/gateway.ts';
import { Ledger } from '../services/hub/ledger.ts';
import { migrate } from '../services/hub/migrations.ts';
import { toWireOrder } from '../services/sync/pump.ts';
import { makeKit, tmpDir, uniqueId } from '../tests/support/hub-link.ts';

const { values } = parseArgs({
  options: { orders: { type: 'string', default: '600' }, batch: { type: 'string', default: '1' } },
});
const N = Number(values.orders);
const BATCH = Number(values.batch);

const kit = await makeKit(uniqueId('bench-kit'));
const entries: BatchEntryT[] = [];
for (let i = 0; i < N; i++) {
  const id = await kit.place();
  entries.push({ lane: 'orders', id, order: toWireOrder(kit.store.orders.get(id)!) });
}
await kit.close();

async function run(durability: PgliteDurability): Promise<number> {
  const dir = path.join(tmpDir(`bench-pglite-${durability}`), 'hub-db');
  const db = await openPglite(dir, 'ledger', { durability });
  try {
    await migrate(db);
    const ledger = new Ledger(db, new SandboxGateway(), new TokenVault(Buffer.alloc(32, 1)));
    const t0 = performance.now();
    for (let i = 0; i < entries.length; i += BATCH)
      await ledger.recordBatch(kit.kitId, entries.slice(i, i + BATCH));
    return (entries.length / (performance.now() - t0)) * 1000;
  } finally {
    await db.close();
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  }
}

// the first PGlite of a process pays the WASM compile and JIT warm-up: a round that is not counted,
// then the two alternate, each mode's best of three
await run('process-crash');
const rounds: Record<PgliteDurability, number[]> = { 'process-crash': [], 'power-cut': [] };
for (let r = 0; r < 3; r++) {
  rounds['power-cut'].push(await run('power-cut'));
  rounds['process-crash'].push(await run('process-crash'));
}
const stock = Math.max(...rounds['process-crash']);
const durable = Math.max(...rounds['power-cut']);
console.log(
  JSON.stringify({
    orders: N,
    ordersPerBatch: BATCH,
    stockOrdersPerS: Math.round(stock),
    durableOrdersPerS: Math.round(durable),
    durableToStock: Number((durable / stock).toFixed(3)),
  }),
);
