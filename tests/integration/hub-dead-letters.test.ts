// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// One bad order never blocks a kit: orders an older kit stored with text or arithmetic the hub cannot
// store (NUL, escape sequences, `__proto__` SKUs, a wrong total) travel in the same batches as good
// ones; the good ones land in the ledger, the bad ones in the hub's dead letters with a reason, and the
// kit hears 'rejected': the outbox empties, the risk budget and the token are released, and the host
// sees the rejection with the declines.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { isSafeText } from '../../core/contracts/common.ts';
import { type AckT, topics, type WireOrderT } from '../../core/contracts/hub-wire.ts';
import {
  getOrder,
  readRecentDeclines,
  readRiskCounters,
  readSealedToken,
  type StoredOrder,
} from '../../core/store/index.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
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
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_deadletter').replace(/-/g, '_');
let broker: Mosquitto;
let hub: HubService;
let kit: TestKit;
let sync: SyncService | undefined;

before(async () => {
  broker = await mosquitto();
  hub = await startHub({ schema, gateway: new SandboxGateway(), brokerUrl: broker.url });
  kit = await makeKit(uniqueId('kit'));
});

after(async () => {
  await sync?.stop();
  await hub?.stop();
  await broker?.stop();
  await kit?.close();
  await dropSchema(schema);
});

/** rewrite a stored order as an older kit version could have stored it (straight into LMDB) */
async function corrupt(id: string, change: (o: StoredOrder) => StoredOrder): Promise<void> {
  const o = getOrder(kit.store, id)!;
  await kit.store.orders.put(id, change(o));
}

test('bad orders go to dead letters and are acked rejected; good ones in the same batch land', {
  timeout: 60_000,
}, async () => {
  const good = [await kit.place(), await kit.place({ method: 'token', token: 'tok_ok_1' })];
  const bad: Record<string, string> = {};
  const nul = await kit.place({ method: 'token', token: 'tok_nul' });
  await corrupt(nul, (o) => ({ ...o, lines: o.lines.map((l) => ({ ...l, name: 'Tee\u0000' })) }));
  bad[nul] = 'name';
  const total = await kit.place();
  await corrupt(total, (o) => ({ ...o, totalCents: o.totalCents + 1 }));
  bad[total] = 'totalCents';
  const proto = await kit.place();
  await corrupt(proto, (o) => ({ ...o, lines: o.lines.map((l) => ({ ...l, sku: '__proto__' })) }));
  bad[proto] = 'sku';
  // (LMDB itself stores a lone surrogate as U+FFFD: an older kit could not have kept one)
  const esc = await kit.place();
  await corrupt(esc, (o) => ({ ...o, lines: o.lines.map((l) => ({ ...l, name: '\u001b[2J' })) }));
  bad[esc] = 'name';
  const when = await kit.place();
  await corrupt(when, (o) => ({ ...o, createdAt: 'yesterday' }));
  bad[when] = 'createdAt';
  const line = await kit.place();
  await corrupt(line, (o) => ({
    ...o,
    lines: o.lines.map((l) => ({ ...l, lineCents: l.lineCents + 1 })),
    totalCents: o.totalCents + o.lines.length,
  }));
  bad[line] = 'lineCents';
  good.push(await kit.place());
  assert.ok(readSealedToken(kit.store, nul), 'the bad card order holds a token before sync');
  assert.ok(readRiskCounters(kit.store).unsyncedTokenOrders >= 2);

  sync = startSync(kit, broker.url);
  await waitFor(() => outboxOrders(kit) === 0, 30_000, 'the outbox to empty');

  assert.deepEqual((await ledgerOrderIds(schema, kit.kitId)).ids, [...good].sort());
  for (const id of good) assert.ok(['settled', 'declined'].includes(getOrder(kit.store, id)!.syncState));
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const dl = await c.query<{ entry_id: string; reason: string; raw: Buffer }>(
      `SELECT entry_id, reason, raw FROM "${schema}".dead_letters WHERE kit_id = $1`,
      [kit.kitId],
    );
    assert.deepEqual(dl.rows.map((r) => r.entry_id).sort(), Object.keys(bad).sort());
    for (const r of dl.rows) {
      assert.match(r.reason, new RegExp(bad[r.entry_id]!), `reason of ${r.entry_id}: ${r.reason}`);
      // the entry as sent, NUL and lone surrogate included (escaped JSON), nothing dropped
      const raw = JSON.parse(r.raw.toString('utf8')) as { id: string; order: { id: string } };
      assert.equal(raw.order.id, r.entry_id);
    }
    const nulRaw = dl.rows.find((r) => r.entry_id === nul)!.raw.toString('utf8');
    assert.ok(nulRaw.includes('Tee\\u0000'));
  } finally {
    await c.end();
  }
  // the kit: rejected, token dropped, risk released, shown with the declines as a rejection
  for (const id of Object.keys(bad)) {
    const o = getOrder(kit.store, id)!;
    assert.equal(o.syncState, 'rejected', id);
    assert.ok(o.declineReason && o.declineReason.length > 0);
  }
  assert.equal(readSealedToken(kit.store, nul), undefined, 'the rejected order token is dropped');
  assert.equal(readRiskCounters(kit.store).unsyncedTokenOrders, 0, 'the risk budget is released');
  const notices = readRecentDeclines(kit.store).filter((d) => d.state === 'rejected');
  assert.deepEqual(notices.map((d) => d.orderId).sort(), Object.keys(bad).sort());

  // the hub API (admin) and the metric
  const unauth = await fetch(`${hub.httpUrl}/v1/dead-letters`);
  assert.equal(unauth.status, 401);
  const res = await fetch(`${hub.httpUrl}/v1/dead-letters?kitId=${kit.kitId}`, {
    headers: { authorization: `Bearer ${hub.adminToken}` },
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { deadLetters: Array<{ entryId: string; reason: string; raw: string }> };
  assert.equal(body.deadLetters.length, Object.keys(bad).length);
  assert.ok(body.deadLetters.every((d) => d.reason.length > 0 && isSafeText(d.raw)));
  const metrics = await fetch(`${hub.httpUrl}/metrics`).then((r) => r.text());
  assert.match(metrics, new RegExp(`popkit_hub_dead_letters_total ${Object.keys(bad).length}\\b`));
});

test('an order the database itself refuses dies alone: the rest of its batch lands (savepoints)', {
  timeout: 60_000,
}, async () => {
  await sync?.stop();
  sync = undefined;
  // a rule the contract does not know, standing for any value PostgreSQL refuses (a data error)
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(`ALTER TABLE "${schema}".orders ADD CONSTRAINT no_poison CHECK (event_id <> 'poison-ev')`);
    const before = (await ledgerOrderIds(schema, kit.kitId)).ids;
    const a = await kit.place({ method: 'token', token: 'tok_ok_2' });
    const poison = await kit.place({ method: 'token', token: 'tok_poison' });
    await corrupt(poison, (o) => ({ ...o, eventId: 'poison-ev' }));
    const b = await kit.place();
    sync = startSync(kit, broker.url);
    await waitFor(() => outboxOrders(kit) === 0, 30_000, 'the outbox to empty');
    assert.deepEqual((await ledgerOrderIds(schema, kit.kitId)).ids, [...before, a, b].sort());
    const dl = await c.query<{ reason: string }>(
      `SELECT reason FROM "${schema}".dead_letters WHERE kit_id = $1 AND entry_id = $2`,
      [kit.kitId, poison],
    );
    assert.match(dl.rows[0]?.reason ?? '', /23514/);
    assert.equal(getOrder(kit.store, poison)!.syncState, 'rejected');
    assert.equal(readSealedToken(kit.store, poison), undefined);
    assert.equal(getOrder(kit.store, a)!.syncState, 'settled');
  } finally {
    await c.end();
  }
});

test("an order resent with other content: the ledger's row and verdict stand, the copy is kept and counted", {
  timeout: 30_000,
}, async (t) => {
  const id = (await ledgerOrderIds(schema, kit.kitId)).ids[0]!;
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  const client = await mqtt.connectAsync(broker.url, { clientId: uniqueId('resender') });
  t.after(async () => {
    await client.endAsync(true);
    await c.end();
  });
  const row = await c.query<{ body: WireOrderT; state: string }>(
    `SELECT body, state FROM "${schema}".orders WHERE kit_id = $1 AND order_id = $2`,
    [kit.kitId, id],
  );
  const original = row.rows[0]!;
  const line = original.body.lines[0]!;
  const other: WireOrderT = {
    ...original.body,
    lines: [{ ...line, qty: line.qty + 1, lineCents: (line.qty + 1) * line.unitPriceCents }],
    totalCents: (line.qty + 1) * line.unitPriceCents,
  };
  const acks: AckT[] = [];
  await client.subscribeAsync(topics.acks(kit.kitId), { qos: 1 });
  client.on('message', (_t, p) => acks.push(JSON.parse(p.toString()) as AckT));
  const batch = {
    v: 1,
    kitId: kit.kitId,
    sentAt: Date.now(),
    entries: [{ lane: 'orders', id, order: other }],
  };
  await client.publishAsync(topics.orders(kit.kitId), JSON.stringify(batch), { qos: 1 });
  await client.publishAsync(topics.orders(kit.kitId), JSON.stringify(batch), { qos: 1 });
  const mine = () => acks.flatMap((a) => a.acks).filter((a) => a.id === id);
  await waitFor(() => mine().length >= 2, 15_000, 'the acks of the resent order');
  for (const ack of mine()) assert.equal(ack.state, original.state);
  const after = await c.query<{ body: WireOrderT }>(
    `SELECT body FROM "${schema}".orders WHERE order_id = $1`,
    [id],
  );
  assert.deepEqual(after.rows[0]!.body, original.body, "the ledger's row is unchanged");
  const kept = await c.query<{ body: WireOrderT }>(
    `SELECT body FROM "${schema}".order_conflicts WHERE order_id = $1`,
    [id],
  );
  assert.equal(kept.rows.length, 1, 'the other copy kept once');
  assert.equal(kept.rows[0]!.body.totalCents, other.totalCents);
  const metrics = await fetch(`${hub.httpUrl}/metrics`).then((r) => r.text());
  assert.match(metrics, /popkit_hub_order_conflicts_total 2\b/);
});

test('SKUs named like Object members are plain keys on the hub: stock snapshot in, fleet view out', {
  timeout: 30_000,
}, async (t) => {
  const client = await mqtt.connectAsync(broker.url, { clientId: uniqueId('stock') });
  t.after(() => client.endAsync(true));
  const kitId = uniqueId('protokit');
  const acks: AckT[] = [];
  await client.subscribeAsync(topics.acks(kitId), { qos: 1 });
  client.on('message', (_t, p) => acks.push(JSON.parse(p.toString()) as AckT));
  // raw text: `__proto__` as an own key, as JSON.parse makes it
  const stock = '{"__proto__":3,"constructor":4,"valueOf":5,"toString":6,"hasOwnProperty":7}';
  await client.publishAsync(
    topics.orders(kitId),
    `{"v":1,"kitId":"${kitId}","sentAt":1,"entries":[{"lane":"stock","id":"s1","at":5,"stock":${stock}}]}`,
    { qos: 1 },
  );
  await waitFor(
    () => acks.some((a) => a.acks.some((x) => x.id === 's1' && x.state === 'stored')),
    15_000,
    'the ack',
  );
  const res = await fetch(`${hub.httpUrl}/v1/kits`, {
    headers: { authorization: `Bearer ${hub.adminToken}` },
  });
  const text = await res.text();
  const kits = (JSON.parse(text) as { kits: Array<{ kitId: string; stock: Record<string, number> }> }).kits;
  const mine = kits.find((k) => k.kitId === kitId)!;
  assert.deepEqual(Object.entries(mine.stock).sort(), Object.entries(JSON.parse(stock) as object).sort());
  assert.equal(Object.getOwnPropertyDescriptor(mine.stock, '__proto__')?.value, 3);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('a rejected entry sent again is acked rejected again and kept once', { timeout: 30_000 }, async (t) => {
  const client = await mqtt.connectAsync(broker.url, { clientId: uniqueId('again') });
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  t.after(async () => {
    await client.endAsync(true);
    await c.end();
  });
  const kitId = uniqueId('againkit');
  const acks: AckT[] = [];
  await client.subscribeAsync(topics.acks(kitId), { qos: 1 });
  client.on('message', (_t, p) => acks.push(JSON.parse(p.toString()) as AckT));
  const order = {
    id: 'o-again',
    kitId,
    eventId: 'default',
    catalogVersion: 1,
    totalCents: 100,
    currency: 'EUR',
    lines: [{ sku: 'TEE', name: 'Tee\u0000', qty: 1, unitPriceCents: 100, lineCents: 100 }],
    payment: { method: 'cash' },
    createdAt: new Date().toISOString(),
  };
  const batch = JSON.stringify({
    v: 1,
    kitId,
    sentAt: 1,
    entries: [{ lane: 'orders', id: order.id, order }],
  });
  await client.publishAsync(topics.orders(kitId), batch, { qos: 1 });
  await client.publishAsync(topics.orders(kitId), batch, { qos: 1 });
  const mine = () => acks.flatMap((a) => a.acks).filter((a) => a.id === order.id);
  await waitFor(() => mine().length >= 2, 15_000, 'two acks');
  assert.ok(mine().every((a) => a.state === 'rejected' && /name/.test(a.reason ?? '')));
  const rows = await c.query(`SELECT 1 FROM "${schema}".dead_letters WHERE kit_id = $1`, [kitId]);
  assert.equal(rows.rowCount, 1);
  assert.deepEqual((await ledgerOrderIds(schema, kitId)).ids, []);
});
