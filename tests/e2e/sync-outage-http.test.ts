// Outage, seen from the counter: a real checkout listening on a port and a `popkit sync` process on the
// same data dir; the hub's broker goes away. Every sale over HTTP still gets its 201 (card and cash),
// status answers over HTTP with the link down and the backlog, and once the broker is back the ledger
// holds exactly the orders the buyers were told about.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import type { HubService } from '../../services/hub/hub-service.ts';
import { ADMIN, BIN, kitEnv, smallCatalog, startCheckout, tempDir } from '../support/checkout.ts';
import {
  dropSchema,
  ledgerOrderIds,
  type Mosquitto,
  mosquitto,
  startHub,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_outhttp').replace(/-/g, '_');
const dataDir = tempDir('popkit-outage-http-');
let broker: Mosquitto;
let hub: HubService;
let kit: Awaited<ReturnType<typeof startCheckout>>;
let sync: ChildProcess | undefined;
let base = '';
const kitId = kitEnv(dataDir)['POPKIT_KIT_ID'] as string;

const order = (i: number) =>
  fetch(`${base}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({
      lines: [{ sku: i % 2 ? 'A' : 'B', qty: 1 }],
      payment: i % 3 === 0 ? { method: 'token', token: `tok_sandbox_outage_${i}` } : { method: 'cash' },
    }),
  });

async function status(): Promise<{ sync: { link?: string; backlog: Record<string, number> } }> {
  return (await (
    await fetch(`${base}/v1/status`, { headers: { authorization: `Bearer ${ADMIN}` } })
  ).json()) as never;
}

before(async () => {
  broker = await mosquitto();
  hub = await startHub({ schema, brokerUrl: broker.url });
  kit = await startCheckout({}, dataDir);
  await kit.app.listen({ port: 0, host: '127.0.0.1' });
  const addr = kit.app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  base = `http://127.0.0.1:${addr.port}`;
  const put = await fetch(`${base}/v1/catalog`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify(smallCatalog({ A: 10_000, B: 10_000 })),
  });
  assert.equal(put.status, 200, await put.text());
  sync = spawn(process.execPath, [BIN, 'sync'], {
    env: kitEnv(dataDir, {
      POPKIT_HUB_URL: broker.url,
      POPKIT_SYNC_ACK_TIMEOUT_MS: '2000',
      POPKIT_SYNC_BACKOFF_MIN_MS: '100',
      POPKIT_SYNC_BACKOFF_MAX_MS: '1000',
      POPKIT_SYNC_POLL_MS: '50',
    }),
    stdio: 'ignore',
  });
});

after(async () => {
  if (sync && sync.exitCode === null && sync.signalCode === null) {
    const gone = new Promise((r) => sync?.once('exit', r));
    sync.kill('SIGTERM');
    await gone;
  }
  await kit?.kit.close();
  await hub?.stop();
  await broker?.stop();
  await dropSchema(schema);
});

test('checkout over HTTP is unaffected by a broker outage; the ledger gets every 201 once', async () => {
  const told: string[] = [];
  const sell = async (i: number) => {
    const r = await order(i);
    const body = (await r.json()) as { id?: string };
    assert.equal(r.status, 201, JSON.stringify(body));
    told.push(body.id as string);
  };
  for (let i = 0; i < 10; i++) await sell(i);
  await waitFor(async () => (await ledgerOrderIds(schema, kitId)).rows === 10, 20_000, 'first drain');
  await waitFor(async () => (await status()).sync.link === 'up', 10_000, 'link up in /v1/status');

  await broker.stop();
  await waitFor(
    async () => ['down', 'connecting'].includes((await status()).sync.link ?? ''),
    15_000,
    'link down in /v1/status',
  );
  // the counter keeps selling, card and cash, concurrently, while the hub is unreachable
  await Promise.all(Array.from({ length: 60 }, (_, i) => sell(100 + i)));
  await waitFor(
    async () => (await status()).sync.backlog['orders'] === 60,
    10_000,
    'the outage backlog in /v1/status',
  );
  assert.equal((await ledgerOrderIds(schema, kitId)).rows, 10, 'nothing reached the ledger meanwhile');

  await broker.start();
  await waitFor(async () => (await status()).sync.backlog['orders'] === 0, 30_000, 'drain after the outage');
  const ledger = await ledgerOrderIds(schema, kitId);
  assert.deepEqual(ledger.ids, [...told].sort());
  assert.equal(ledger.rows, 70);
});
