// Issue #18: a power cut while sync applies the hub's acks. The kit's data dir is on pcfs
// (tests/support/pcfs.ts, a FUSE fs that forgets every write not made durable); `popkit checkout` and
// `popkit sync` run on it as their own processes; a real hub (HubService on PostgreSQL, a private
// Mosquitto) stores the orders and acks them. Buyers keep ordering (cash and card) while sync drains,
// so acks land in small paced transactions between checkout's commits. fast-check picks the moment:
// once the hub has stored N of this kit's orders, after a few more ms, checkout and sync are SIGKILLed
// and the filesystem rolled back together, as a power cut does. Then both start again, as the device
// does at boot, and sync drains to the end. Checked:
// - right after the cut (what the next boot finds): every acknowledged (201) order is in the store;
//   every order the hub has not acked is still in the outbox; the offline-risk counters equal what the
//   outbox still holds (an ack is never counted twice, an unacked card order never dropped); stock +
//   sold = initial;
// - after the drain: the ledger holds each of the kit's orders exactly once (rows = distinct ids = the
//   kit's orders), with the kit's amount and state; the outbox is empty.
// Moments that once failed are replayed first (tests/e2e/power-cut-seeds.json, see
// tests/support/powercut-seeds.ts): a run that fails here APPENDS its moment and seed to that file,
// commit it. Replay one run: POPKIT_POWERCUT_SEED=<seed>; more runs: POPKIT_POWERCUT_RUNS=<n>.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import { LANES } from '../../core/contracts/lanes.ts';
import { openKitStore, readRiskCounters } from '../../core/store/index.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import {
  ADMIN,
  BIN,
  captureOutput,
  inspectStore,
  kitEnv,
  smallCatalog,
  tempDir,
} from '../support/checkout.ts';
import {
  dropSchema,
  freePort,
  type Mosquitto,
  mosquitto,
  PG_URL,
  startHub,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';
import { mountPcfs, type Pcfs } from '../support/pcfs.ts';
import { keepFailure, keptMoments, powercutRuns, powercutSeed } from '../support/powercut-seeds.ts';

const TEST = 'power-cut-sync';
const INITIAL = { A: 100_000, B: 100_000 };

interface Moment {
  /** cut once the hub has stored this many of the kit's orders (acks for them are on their way) */
  storedBeforeCut: number;
  /** then wait this many ms more */
  extraMs: number;
}

const schema = uniqueId('t_pcsync').replace(/-/g, '_');
let broker: Mosquitto;
let hub: HubService;
let db: pg.Client;
const mountPoints: string[] = [];
const children = new Set<ChildProcess>();

before(async () => {
  broker = await mosquitto();
  hub = await startHub({ schema, brokerUrl: broker.url });
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

after(async () => {
  for (const c of children) await kill9(c);
  // a run that failed half-way may leave its mount: detached, so nothing hangs
  for (const m of mountPoints) spawnSync('fusermount', ['-uz', m]);
  await db?.end();
  await hub?.stop();
  await broker?.stop();
  await dropSchema(schema);
});

const headers = { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function popkit(
  cmd: 'checkout' | 'sync',
  env: NodeJS.ProcessEnv,
): { proc: ChildProcess; output: () => string } {
  const proc = spawn(process.execPath, [BIN, cmd], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return { proc, output: captureOutput(proc) };
}

async function kill9(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGKILL');
  await gone;
}

async function ledger(kitId: string): Promise<{ id: string; state: string; cents: number }[]> {
  try {
    const r = await db.query<{ order_id: string; state: string; total_cents: string }>(
      `SELECT order_id, state, total_cents FROM "${schema}".orders WHERE kit_id = $1`,
      [kitId],
    );
    return r.rows.map((x) => ({ id: x.order_id, state: x.state, cents: Number(x.total_cents) }));
  } catch {
    return []; // before the hub's first migration
  }
}

/** checkout and sync on the data dir, checkout listening */
async function startKit(dataDir: string, kitId: string, port: number) {
  const env = kitEnv(dataDir, {
    POPKIT_KIT_ID: kitId,
    POPKIT_HTTP_PORT: String(port),
    POPKIT_HTTP_HOST: '127.0.0.1',
    POPKIT_HUB_URL: broker.url,
    // small batches and a short ack timeout: many acks, each a transaction of its own, during the load
    POPKIT_SYNC_BATCH_MAX: '10',
    POPKIT_SYNC_WINDOW: '2',
    POPKIT_SYNC_ACK_TIMEOUT_MS: '2000',
    POPKIT_SYNC_BACKOFF_MIN_MS: '100',
    POPKIT_SYNC_BACKOFF_MAX_MS: '500',
    POPKIT_SYNC_POLL_MS: '20',
    // the risk budget would pause card orders long before the cut: not what is tested here
    POPKIT_RISK_MAX_UNSYNCED_ORDERS: '1000000',
    POPKIT_RISK_MAX_UNSYNCED_CENTS: '100000000000',
  });
  const checkout = popkit('checkout', env);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (checkout.proc.exitCode !== null) throw new Error(`checkout exited: ${checkout.output()}`);
      return (await fetch(`${base}/healthz`).catch(() => null)) !== null;
    },
    30_000,
    'checkout to listen',
  );
  const sync = popkit('sync', env);
  return { checkout, sync, base };
}

async function backlog(base: string): Promise<number> {
  const r = await fetch(`${base}/v1/status`, { headers });
  const s = (await r.json()) as { sync: { backlog: Record<string, number> } };
  return s.sync.backlog['orders'] ?? Number.NaN;
}

/** What the next boot finds right after the cut: the invariants that hold whatever the moment. */
async function checkAfterCut(dataDir: string, acked: Set<string>): Promise<number> {
  const state = await inspectStore(dataDir);
  const ids = new Set(state.orders.map((o) => o.id));
  assert.equal(ids.size, state.orders.length, 'no order stored twice');
  for (const id of acked) assert.ok(ids.has(id), `acknowledged order ${id} lost by the cut`);
  const outboxOrders = new Map(
    state.outbox.filter((e) => e.key[0] === LANES.orders).map((e) => [String(e.key[1]), e.value]),
  );
  for (const o of state.orders) {
    if (o.syncState === 'pending')
      assert.ok(outboxOrders.has(o.id), `order ${o.id} not acked by the hub, yet gone from the outbox`);
  }
  for (const key of outboxOrders.keys()) {
    const orderId = key.split('~')[0] ?? key;
    assert.ok(ids.has(orderId), `outbox entry ${key} for an order the store does not have`);
  }
  for (const [sku, initial] of Object.entries(INITIAL)) {
    const sold = state.orders.reduce(
      (n, o) => n + o.lines.filter((l) => l.sku === sku).reduce((a, l) => a + l.qty, 0),
      0,
    );
    assert.equal((state.stock[sku] ?? 0) + sold, initial, `${sku}: stock ${state.stock[sku]} + sold ${sold}`);
  }
  // the offline-risk budget moves in the same transaction as the outbox: it equals what is still there
  const riskEntries = [...outboxOrders.values()].filter(
    (v) => (v as { riskCents?: number }).riskCents !== undefined,
  ) as { riskCents: number }[];
  const store = openKitStore(dataDir);
  try {
    const counters = readRiskCounters(store);
    assert.deepEqual(
      counters,
      {
        unsyncedTokenOrders: riskEntries.length,
        unsyncedTokenCents: riskEntries.reduce((a, v) => a + v.riskCents, 0),
      },
      'risk counters against the card orders still in the outbox',
    );
    assert.equal(store.riskq.getKeysCount(), riskEntries.length, 'risk queue against the outbox');
  } finally {
    await store.close();
  }
  return outboxOrders.size;
}

/** For a failure report: the acknowledged orders missing after the cut, and whether each was there before it. */
async function beforeRollback(precut: string, acked: Set<string>, real: string): Promise<string> {
  try {
    const after = new Set((await inspectStore(real)).orders.map((o) => o.id));
    const before = new Set((await inspectStore(precut)).orders.map((o) => o.id));
    const lost = [...acked].filter((id) => !after.has(id));
    if (lost.length === 0) return 'no acknowledged order missing';
    return lost
      .slice(0, 5)
      .map(
        (id) => `${id} ${before.has(id) ? 'was in the store before the rollback' : 'was never in the store'}`,
      )
      .join('; ');
  } catch (err) {
    return `cannot compare with the store before the rollback: ${(err as Error).message}`;
  }
}

async function oneCut(m: Moment): Promise<void> {
  const root = tempDir('popkit-pcsync-');
  const backing = path.join(root, 'backing');
  const mnt = path.join(root, 'mnt');
  mountPoints.push(mnt);
  const kitId = uniqueId('pcs');
  const port = await freePort();
  const acked = new Set<string>();
  let fsys: Pcfs = await mountPcfs(backing, mnt);
  const dataDir = path.join(mnt, 'data');
  let kit = await startKit(dataDir, kitId, port);
  try {
    const put = await fetch(`${kit.base}/v1/catalog`, {
      method: 'PUT',
      headers,
      body: JSON.stringify(smallCatalog(INITIAL)),
    });
    assert.equal(put.status, 200, await put.text());
    let cut = false;
    const worker = async (w: number) => {
      for (let i = 0; !cut; i++) {
        const card = (w + i) % 4 === 0;
        try {
          const r = await fetch(`${kit.base}/v1/orders`, {
            method: 'POST',
            headers,
            body: JSON.stringify({
              lines: [{ sku: w % 2 ? 'A' : 'B', qty: 1 + (i % 3) }],
              payment: card ? { method: 'token', token: `tok_sandbox_pc_${w}_${i}` } : { method: 'cash' },
            }),
          });
          const body = (await r.json()) as { id?: string };
          if (r.status === 201 && body.id && !cut) acked.add(body.id);
        } catch {
          // the process died: that request was never acknowledged
        }
      }
    };
    const load = Promise.all(Array.from({ length: 4 }, (_, w) => worker(w)));
    try {
      await waitFor(
        async () => {
          if (kit.sync.proc.exitCode !== null) throw new Error(`sync exited: ${kit.sync.output()}`);
          return (await ledger(kitId)).length >= m.storedBeforeCut;
        },
        60_000,
        `the hub to store ${m.storedBeforeCut} orders`,
      );
      await sleep(m.extraMs);
    } finally {
      cut = true;
      await Promise.all([kill9(kit.checkout.proc), kill9(kit.sync.proc)]);
      await load;
    }
  } finally {
    await Promise.all([kill9(kit.checkout.proc), kill9(kit.sync.proc)]);
  }
  const storedAtCut = (await ledger(kitId)).length;
  // what the processes left, before the rollback: a lost order says whether it was ever stored (a
  // commit lost between the two writers) or was stored and then rolled back (a durability gap)
  const precut = path.join(root, 'precut');
  fs.cpSync(path.join(backing, 'data'), precut, { recursive: true });
  const report = await fsys.cut();
  assert.equal(report.cut, true);
  const real = path.join(backing, 'data');
  let left: number;
  try {
    left = await checkAfterCut(real, acked);
  } catch (err) {
    throw new Error(`${(err as Error).message} [${await beforeRollback(precut, acked, real)}]`, {
      cause: err,
    });
  }
  process.stdout.write(
    `# ${TEST}: cut at ${JSON.stringify(m)}: ${acked.size} orders acknowledged, ${storedAtCut} stored by the hub, ${left} left in the outbox, ${report.bytes_rolled_back} bytes rolled back (${report.fsyncs} fsyncs)\n`,
  );

  // the device boots again: the same two commands, then sync drains to the end
  fsys = await mountPcfs(backing, mnt);
  kit = await startKit(dataDir, kitId, port);
  try {
    await waitFor(
      async () => {
        if (kit.sync.proc.exitCode !== null) throw new Error(`sync exited: ${kit.sync.output()}`);
        return (await backlog(kit.base)) === 0;
      },
      90_000,
      'sync to drain after the cut',
    );
  } finally {
    await Promise.all([kill9(kit.checkout.proc), kill9(kit.sync.proc)]);
    await fsys.unmount();
  }
  const state = await inspectStore(real);
  const rows = await ledger(kitId);
  const rowIds = rows.map((r) => r.id);
  assert.equal(new Set(rowIds).size, rowIds.length, 'an order twice in the ledger');
  assert.deepEqual(
    [...rowIds].sort(),
    state.orders.map((o) => o.id).sort(),
    'the ledger holds exactly the kit’s orders',
  );
  for (const id of acked) assert.ok(rowIds.includes(id), `acknowledged order ${id} not in the ledger`);
  const byId = new Map(state.orders.map((o) => [o.id, o]));
  for (const r of rows) {
    const o = byId.get(r.id);
    assert.equal(o?.totalCents, r.cents, `order ${r.id}: amount`);
    assert.equal(o?.syncState, r.state, `order ${r.id}: the kit says ${o?.syncState}, the ledger ${r.state}`);
  }
  assert.equal(
    state.outbox.filter((e) => e.key[0] === LANES.orders).length,
    0,
    'outbox drained after the restart',
  );
  assert.ok(acked.size > 0, 'no order was acknowledged before the cut');
}

test('a power cut while sync applies acks: every acknowledged order reaches the ledger exactly once', {
  timeout: 900_000,
}, async () => {
  const seed = powercutSeed();
  const kept = keptMoments<Moment>(TEST);
  process.stdout.write(
    `# ${TEST} seed ${seed} (replay: POPKIT_POWERCUT_SEED=${seed}); ${kept.length} kept moments first\n`,
  );
  const moment = fc.record({
    storedBeforeCut: fc.integer({ min: 1, max: 300 }),
    extraMs: fc.integer({ min: 0, max: 60 }),
  });
  await fc.assert(
    fc.asyncProperty(moment, async (m) => {
      try {
        await oneCut(m);
      } catch (err) {
        process.stdout.write(
          `# ${TEST}: cut at ${JSON.stringify(m)} failed (seed ${seed}): ${(err as Error).message}\n`,
        );
        keepFailure(TEST, seed, m, err);
        throw err;
      }
    }),
    {
      seed,
      numRuns: powercutRuns(5) + kept.length,
      examples: kept.map((m) => [m] as [Moment]),
      endOnFailure: true,
    },
  );
});
