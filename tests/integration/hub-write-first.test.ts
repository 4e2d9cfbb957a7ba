// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Write first, then charge: the gateway is only ever asked to charge an order the ledger already holds
// (checked by the gateway itself, against PostgreSQL, at the moment of the call), at most
// POPKIT_HUB_GATEWAY_CONCURRENCY calls at a time; and an order whose exchange was cut off by a crash
// after the insert is finished by the next worker's retry loop under the same idempotency key.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { getOrder } from '../../core/store/index.ts';
import {
  type ExchangeRequest,
  type ExchangeResult,
  type JournalLine,
  type PaymentGateway,
  SandboxGateway,
} from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  ledgerOrderIds,
  type Mosquitto,
  makeKit,
  mosquitto,
  outboxOrders,
  PG_URL,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_writefirst').replace(/-/g, '_');
let broker: Mosquitto;
let db: pg.Client;
let kit: TestKit;
let sync: SyncService | undefined;
const hubs: HubService[] = [];

before(async () => {
  broker = await mosquitto();
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  kit = await makeKit(uniqueId('kit'));
});

after(async () => {
  await sync?.stop();
  for (const h of hubs) await h.stop();
  await broker?.stop();
  await db?.end();
  await kit?.close();
  await dropSchema(schema);
});

/** The sandbox, with a look into the ledger at every call: is the order already there? */
class LedgerCheckingGateway implements PaymentGateway {
  readonly name = 'sandbox';
  readonly sandbox = true;
  readonly testToken = 'tok_sandbox_test';
  readonly sandboxGw: SandboxGateway;
  /** calls for an order the ledger did not hold at that moment */
  readonly notInLedger: string[] = [];
  inFlight = 0;
  peak = 0;
  calls = 0;
  /** when set, calls never answer (a worker that dies mid-exchange) */
  hang = false;

  constructor(journal: string) {
    this.sandboxGw = new SandboxGateway(journal);
  }

  async exchange(req: ExchangeRequest): Promise<ExchangeResult> {
    this.calls++;
    this.inFlight++;
    this.peak = Math.max(this.peak, this.inFlight);
    try {
      const [kitId, orderId] = req.idempotencyKey.split(':');
      const r = await db.query(`SELECT 1 FROM "${schema}".orders WHERE kit_id = $1 AND order_id = $2`, [
        kitId,
        orderId,
      ]);
      if (r.rowCount !== 1) this.notInLedger.push(req.idempotencyKey);
      if (this.hang) return await new Promise<never>(() => undefined);
      await new Promise((res) => setTimeout(res, 10));
      return await this.sandboxGw.exchange(req);
    } finally {
      this.inFlight--;
    }
  }
}

test('every charge is for an order already in the ledger, at most N exchanges at once', {
  timeout: 60_000,
}, async () => {
  const journal = path.join(tmpDir('journal'), 'charges.jsonl');
  const gateway = new LedgerCheckingGateway(journal);
  hubs.push(
    await startHub({
      schema,
      gateway,
      brokerUrl: broker.url,
      env: { POPKIT_HUB_GATEWAY_CONCURRENCY: '3' },
    }),
  );
  const ids: string[] = [];
  for (let i = 0; i < 30; i++)
    ids.push(await kit.place({ method: 'token', token: i % 5 === 4 ? `tok_decline_${i}` : `tok_ok_${i}` }));
  sync = startSync(kit, broker.url, { POPKIT_SYNC_BATCH_MAX: '100' });
  await waitFor(() => outboxOrders(kit) === 0, 30_000, 'the outbox to empty');
  assert.deepEqual(gateway.notInLedger, [], 'a charge was asked for an order the ledger did not hold');
  assert.ok(gateway.calls >= 30);
  assert.equal(gateway.peak, 3, `gateway calls under way at once: ${gateway.peak}`);
  const lines = fs
    .readFileSync(journal, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as JournalLine);
  const charged = lines.filter((l) => l.charge).map((l) => l.key.split(':')[1]!);
  assert.deepEqual(charged.sort(), [...ids].sort());
  assert.deepEqual((await ledgerOrderIds(schema, kit.kitId)).ids, [...ids].sort());
  for (const [i, id] of ids.entries())
    assert.equal(getOrder(kit.store, id)!.syncState, i % 5 === 4 ? 'declined' : 'settled');
});

test('a worker that dies between the insert and the charge: the next one finishes it, same key, one charge', {
  timeout: 60_000,
}, async () => {
  await sync?.stop();
  sync = undefined;
  // the first test's worker would hear this kit too
  for (const h of hubs.splice(0)) await h.stop();
  const dataDir = tmpDir('hub-crash');
  const journal = path.join(tmpDir('journal2'), 'charges.jsonl');
  const first = new LedgerCheckingGateway(journal);
  first.hang = true;
  const hubA = await startHub({ schema, dataDir, gateway: first, brokerUrl: broker.url });
  hubs.push(hubA);
  const id = await kit.place({ method: 'token', token: 'tok_after_crash' });
  sync = startSync(kit, broker.url);
  await waitFor(() => first.calls > 0, 20_000, 'the exchange to start');
  const row = await db.query<{ state: string; sealed: boolean }>(
    `SELECT state, sealed_token IS NOT NULL AS sealed FROM "${schema}".orders WHERE order_id = $1`,
    [id],
  );
  assert.deepEqual(row.rows[0], { state: 'forwarded', sealed: true });
  await sync.stop();
  sync = undefined;
  // the worker is gone (its exchange never answered); a new one on the same data dir (same held-token key)
  await hubA.stop();
  hubs.splice(hubs.indexOf(hubA), 1);
  const second = new LedgerCheckingGateway(journal);
  hubs.push(
    await startHub({
      schema,
      dataDir,
      gateway: second,
      brokerUrl: broker.url,
      env: { POPKIT_HUB_GATEWAY_RETRY_S: '1' },
    }),
  );
  await waitFor(
    async () =>
      (await db.query(`SELECT 1 FROM "${schema}".orders WHERE order_id = $1 AND state = 'settled'`, [id]))
        .rowCount === 1,
    20_000,
    'the retry loop to settle the order',
  );
  const keys = fs
    .readFileSync(journal, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as JournalLine)
    .filter((l) => l.charge);
  assert.deepEqual(
    keys.map((l) => l.key),
    [`${kit.kitId}:${id}`],
  );
  assert.deepEqual(second.notInLedger, []);
});
