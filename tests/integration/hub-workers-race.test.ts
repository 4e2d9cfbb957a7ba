// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Two hub workers on one shared subscription race a redelivered batch: the kit's batch arrives twice at
// once (a resend after an ack timeout), Mosquitto hands one copy to each worker, both commit to the same
// PostgreSQL ledger at the same moment. Each order is one ledger row, one charge at the payment gateway
// (the provider is shared, as in the field), and every ack for it carries the same verdict.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import mqtt from 'mqtt';
import { topics } from '../../core/contracts/hub-wire.ts';
import { type ExchangeRequest, SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import {
  dropSchema,
  ledgerOrderIds,
  type Mosquitto,
  makeKit,
  mosquitto,
  startHub,
  startSync,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('race').replace(/-/g, '_');
const stops: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const s of stops.reverse()) await s();
  await dropSchema(schema);
});

/** The sandbox provider with a provider's latency, so both workers are inside their exchange at once. */
class SlowSandbox extends SandboxGateway {
  override async exchange(req: ExchangeRequest) {
    await new Promise((r) => setTimeout(r, 300));
    return super.exchange(req);
  }
}

interface Ack {
  acks: Array<{ lane: string; id: string; state: string; reason?: string }>;
}

test('a batch redelivered to two workers at once: one row, one charge, one verdict per order', {
  timeout: 120_000,
}, async () => {
  const broker: Mosquitto = await mosquitto();
  stops.push(() => broker.close());
  const kit = await makeKit(uniqueId('kit-race'));
  const approved: string[] = [];
  const declined: string[] = [];
  const cash: string[] = [];
  for (let i = 0; i < 4; i++)
    approved.push(await kit.place({ method: 'token', token: `tok_sandbox_ok_${i}` }));
  for (let i = 0; i < 2; i++)
    declined.push(await kit.place({ method: 'token', token: `tok_${i}_decline_insufficient_funds` }));
  for (let i = 0; i < 2; i++) cash.push(await kit.place());
  const all = [...approved, ...declined, ...cash];

  // what sync sends for these orders, captured off the wire (no hub is listening yet)
  const spy = await mqtt.connectAsync(broker.url, { clientId: uniqueId('spy') });
  stops.push(() => spy.endAsync());
  const batches = new Map<string, Buffer>();
  const seen = new Set<string>();
  spy.on('message', (_t, payload) => {
    const batch = JSON.parse(payload.toString()) as { entries: Array<{ lane: string; id: string }> };
    batches.set(payload.toString(), payload);
    for (const e of batch.entries) if (e.lane === 'orders') seen.add(e.id);
  });
  await spy.subscribeAsync(topics.orders(kit.kitId), { qos: 1 });
  const sync = startSync(kit, broker.url);
  await waitFor(() => all.every((id) => seen.has(id)), 30_000, 'sync to publish every order');
  await sync.stop();
  await spy.unsubscribeAsync(topics.orders(kit.kitId));
  stops.push(() => kit.close());

  // two workers of one hub: one schema, one share group, one payment provider
  const gateway = new SlowSandbox();
  const group = uniqueId('g');
  const workers: HubService[] = [];
  for (const id of ['w1', 'w2']) {
    const hub = await startHub({
      brokerUrl: broker.url,
      schema,
      gateway,
      env: { POPKIT_HUB_WORKER_ID: `${id}-${group}`, POPKIT_HUB_SHARE_GROUP: group },
    });
    stops.push(() => hub.stop());
    workers.push(hub);
  }

  const acks: Ack[] = [];
  const listener = await mqtt.connectAsync(broker.url, { clientId: uniqueId('acks') });
  stops.push(() => listener.endAsync());
  listener.on('message', (_t, p) => acks.push(JSON.parse(p.toString()) as Ack));
  await listener.subscribeAsync(topics.acks(kit.kitId), { qos: 1 });

  // the redelivery: every batch twice at once, a few rounds
  const replayer = await mqtt.connectAsync(broker.url, { clientId: uniqueId('replay') });
  stops.push(() => replayer.endAsync());
  const rounds = 3;
  const copies = [...batches.values()];
  for (let r = 0; r < rounds; r++) {
    await Promise.all(
      copies.flatMap((m) => [0, 1].map(() => replayer.publishAsync(topics.orders(kit.kitId), m, { qos: 1 }))),
    );
  }
  const handled = () => workers.reduce((n, w) => n + (w.ingest?.stats.batches ?? 0), 0);
  await waitFor(() => handled() === copies.length * 2 * rounds, 30_000, 'both workers to handle the copies');
  const perWorker = workers.map((w) => w.ingest?.stats.batches ?? 0);
  assert.ok(
    perWorker.every((n) => n > 0),
    `the copies did not reach both workers: ${perWorker.join(' / ')}`,
  );

  // one ledger row per order
  const ledger = await ledgerOrderIds(schema, kit.kitId);
  assert.equal(ledger.rows, all.length);
  assert.deepEqual(ledger.ids, [...all].sort());
  // the race happened: both workers exchanged the same orders (neither saw the other's row yet) …
  assert.ok(
    gateway.exchangeCalls > approved.length + declined.length,
    `no racing exchange (${gateway.exchangeCalls} calls): the copies were handled one after the other`,
  );
  // … and still one charge per token order, whatever the number of deliveries
  assert.equal(gateway.chargeCount, approved.length + declined.length);

  // every copy was acked, and every ack of an order says the same
  await waitFor(
    () => all.every((id) => acks.flatMap((a) => a.acks).filter((a) => a.id === id).length >= 2 * rounds),
    20_000,
    'acks of every copy',
  );
  const verdicts = new Map<string, Set<string>>();
  for (const a of acks.flatMap((m) => m.acks).filter((e) => e.lane === 'orders')) {
    const v = verdicts.get(a.id) ?? new Set<string>();
    v.add(`${a.state}${a.reason ? `:${a.reason}` : ''}`);
    verdicts.set(a.id, v);
  }
  for (const id of all)
    assert.equal(verdicts.get(id)?.size, 1, `${id}: verdicts ${[...(verdicts.get(id) ?? [])]}`);
  for (const id of approved) assert.deepEqual([...verdicts.get(id)!], ['settled']);
  for (const id of declined) assert.deepEqual([...verdicts.get(id)!], ['declined:insufficient_funds']);
});
