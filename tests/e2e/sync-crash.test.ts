// Crash: `popkit sync` and `popkit hub` run as their own processes and are each killed with SIGKILL
// mid-drain, several times. Afterwards every order is in the ledger exactly once, with the state the
// kit shows, and nothing is left in the outbox.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { LANES } from '../../core/contracts/lanes.ts';
import type { JournalLine } from '../../services/hub/gateway.ts';
import {
  dropSchema,
  freePort,
  hubProcessEnv,
  type Mosquitto,
  makeKit,
  mosquitto,
  PG_URL,
  REPO,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_crash').replace(/-/g, '_');
const hubDir = tmpDir('crash-hub');
// the sandbox gateway's charges, kept outside the hub process that the test kills
const journal = path.join(tmpDir('crash-gateway'), 'charges.jsonl');
let broker: Mosquitto;
let kit: TestKit;
let hubPort = 0;
const children = new Set<ChildProcess>();

function popkit(cmd: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [path.join(REPO, 'bin/popkit.js'), cmd], {
    env: { ...process.env, POPKIT_LOG_LEVEL: 'silent', ...env },
    stdio: 'ignore',
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const startHub = () =>
  popkit('hub', {
    ...hubProcessEnv({
      dataDir: hubDir,
      brokerUrl: broker.url,
      schema,
      port: hubPort,
      workerId: 'crash-worker',
    }),
    POPKIT_GATEWAY_SANDBOX_JOURNAL: journal,
  });

const startSync = () =>
  popkit('sync', {
    POPKIT_KIT_ID: kit.kitId,
    POPKIT_DATA_DIR: kit.dataDir,
    POPKIT_HUB_URL: broker.url,
    // small messages and a short ack timeout, so a drain lasts long enough to be interrupted
    POPKIT_SYNC_BATCH_MAX: '20',
    POPKIT_SYNC_WINDOW: '2',
    POPKIT_SYNC_ACK_TIMEOUT_MS: '1500',
    POPKIT_SYNC_BACKOFF_MIN_MS: '100',
    POPKIT_SYNC_BACKOFF_MAX_MS: '500',
    POPKIT_SYNC_POLL_MS: '20',
  });

let db: pg.Client;
async function ledgerCount(): Promise<number> {
  try {
    const r = await db.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".orders`);
    return Number(r.rows[0]?.n ?? 0);
  } catch {
    return 0; // before the hub's first migration
  }
}

before(async () => {
  broker = await mosquitto();
  hubPort = await freePort();
  kit = await makeKit(uniqueId('kit'));
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

after(async () => {
  for (const c of children) await kill9(c);
  await db?.end();
  await broker?.stop();
  await kit?.close();
  await dropSchema(schema);
});

/** Charges per idempotency key in the gateway's journal (`charge: true` lines; repeats are not charges). */
function chargesByKey(lines: JournalLine[]): Map<string, JournalLine[]> {
  const m = new Map<string, JournalLine[]>();
  for (const l of lines.filter((x) => x.charge)) m.set(l.key, [...(m.get(l.key) ?? []), l]);
  return m;
}

/** What is wrong with the journal for these card orders: a missing, doubled or unknown charge. */
function chargeProblems(lines: JournalLine[], cardKeys: Set<string>): string[] {
  const byKey = chargesByKey(lines);
  const problems: string[] = [];
  for (const k of cardKeys) {
    const n = byKey.get(k)?.length ?? 0;
    if (n !== 1) problems.push(`${k} charged ${n} times`);
  }
  for (const k of byKey.keys()) if (!cardKeys.has(k)) problems.push(`${k} charged but not a card order`);
  return problems;
}

test('SIGKILL of sync and of the hub mid-drain loses and duplicates nothing', async () => {
  const placed: string[] = [];
  const cards = new Set<string>();
  for (let i = 0; i < 1200; i++) {
    const card = i % 5 === 0;
    const id = await kit.place(card ? { method: 'token', token: `tok_crash_${i}` } : undefined);
    placed.push(id);
    if (card) cards.add(`${kit.kitId}:${id}`);
  }
  const backlog = () =>
    kit.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] });

  let hub = startHub();
  let sync = startSync();
  let kills = 0;
  // alternate: kill sync, then the hub, each time after the ledger has visibly moved on
  for (let round = 0; round < 6 && backlog() > 0; round++) {
    const before = await ledgerCount();
    await waitFor(async () => (await ledgerCount()) >= before + 60 || backlog() === 0, 30_000, 'progress');
    if (backlog() === 0) break;
    if (round % 2 === 0) {
      await kill9(sync);
      sync = startSync();
    } else {
      await kill9(hub);
      hub = startHub();
    }
    kills++;
  }
  assert.ok(kills >= 4, `only ${kills} kills happened before the drain finished`);
  await waitFor(() => backlog() === 0, 60_000, 'drain after the crashes');

  const res = await db.query<{ order_id: string; state: string; total_cents: string }>(
    `SELECT order_id, state, total_cents FROM "${schema}".orders WHERE kit_id = $1 ORDER BY order_id`,
    [kit.kitId],
  );
  assert.deepEqual(
    res.rows.map((r) => r.order_id),
    [...placed].sort(),
  );
  for (const r of res.rows) {
    const o = kit.store.orders.get(r.order_id)!;
    assert.equal(o.syncState, r.state, `order ${r.order_id}: kit says ${o.syncState}, ledger ${r.state}`);
    assert.equal(o.totalCents, Number(r.total_cents));
  }
  // every card token was exchanged and dropped from the kit
  assert.equal([...kit.store.tokens.getKeys()].length, 0);
  // every card order charged exactly once across the hub's restarts, by the gateway's own records
  const lines = fs
    .readFileSync(journal, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as JournalLine);
  // self-check of the judge: a second charge of one order, or a lost one, is seen
  const first = [...cards][0]!;
  const one = {
    key: first,
    charge: true,
    amountCents: 1,
    currency: 'EUR',
    result: { outcome: 'approved', ref: 'r' },
  } as const;
  assert.deepEqual(chargeProblems([one, one], new Set([first])), [`${first} charged 2 times`]);
  assert.deepEqual(chargeProblems([], new Set([first])), [`${first} charged 0 times`]);
  assert.deepEqual(chargeProblems(lines, cards), []);
  const refs = await db.query<{ order_id: string; gateway_ref: string | null; total_cents: string }>(
    `SELECT order_id, gateway_ref, total_cents FROM "${schema}".orders WHERE kit_id = $1 AND gateway_ref IS NOT NULL`,
    [kit.kitId],
  );
  assert.equal(refs.rows.length, cards.size, 'every card order has its gateway ref in the ledger');
  const byKey = chargesByKey(lines);
  for (const r of refs.rows) {
    const [charge] = byKey.get(`${kit.kitId}:${r.order_id}`) ?? [];
    assert.ok(charge?.result.outcome === 'approved');
    assert.equal(charge.result.ref, r.gateway_ref, `order ${r.order_id}: the ledger's ref is the one charge`);
    assert.equal(charge.amountCents, Number(r.total_cents));
  }
  console.log(
    `gateway journal: ${lines.length} exchanges, ${lines.filter((l) => !l.charge).length} repeats of a charged key`,
  );
  await kill9(sync);
  await kill9(hub);
});
