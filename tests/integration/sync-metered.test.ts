// Sync on a metered primary link (#17) against a real hub (private Mosquitto, real PostgreSQL in a
// schema of its own). kitd's side is the real link monitor on the sim board's links file
// (firmware/links.ts SimLinkReader → LinkMonitor) written into run/kitd.json the way kitd does, once a
// few hundred ms. With orders (one a card) and telemetry queued and the modem primary and metered, the
// orders reach the ledger and the telemetry stays in the outbox (a subscriber on the broker sees none of
// it) while run/sync.json says what is held and why; once the links file makes the Ethernet primary,
// the telemetry goes too. No wall-clock assertion: the waits are failure bounds.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import mqtt from 'mqtt';
import { topics } from '../../core/contracts/hub-wire.ts';
import type { SimLinksFileT } from '../../core/contracts/links.ts';
import { readRunStatus, writeRunStatus } from '../../core/contracts/run-status.ts';
import { LANES } from '../../core/store/index.ts';
import { LinkMonitor, SimLinkReader } from '../../firmware/links.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import { LaneKeeper } from '../../services/sync/lanes.ts';
import { telemetryBody } from '../../services/sync/reports.ts';
import { hubLinkRig, ledgerOrderIds, startSync, uniqueId, waitFor } from '../support/hub-link.ts';
import { kitdRunStatus } from '../support/series.ts';

const rig = hubLinkRig('metered', () => new SandboxGateway());
let spy: mqtt.MqttClient | undefined;
let kitdLoop: NodeJS.Timeout | undefined;
const seen: { orders: number; telemetry: number } = { orders: 0, telemetry: 0 };

const MODEM_PRIMARY: SimLinksFileT = {
  links: [
    { iface: 'eth0', type: 'ethernet', state: 'disconnected', metered: false, primary: false },
    { iface: 'wwan0', type: 'modem', state: 'connected', metered: true, primary: true },
  ],
};
const ETHERNET_PRIMARY: SimLinksFileT = {
  links: [
    { iface: 'eth0', type: 'ethernet', state: 'connected', metered: false, primary: true },
    { iface: 'wwan0', type: 'modem', state: 'connected', metered: true, primary: false },
  ],
};

const laneCount = (lane: number) =>
  rig.kit.store.outbox.getKeysCount({ start: [lane, ''], end: [lane + 1, ''] });

rig.cleanup = async () => {
  if (kitdLoop) clearInterval(kitdLoop);
  await spy?.endAsync(true);
};

test('metered primary link: orders go, telemetry waits in the outbox; an unmetered primary lets it go', {
  timeout: 120_000,
}, async () => {
  const { broker, kit, schema } = rig;
  // kitd's part: the sim board's links file, read by the real monitor, written into run/kitd.json
  const linksFile = path.join(kit.dataDir, 'links-sim.json');
  fs.writeFileSync(linksFile, JSON.stringify(MODEM_PRIMARY));
  const monitor = new LinkMonitor(new SimLinkReader(linksFile), {
    everyMs: 200,
    graceMs: 60_000,
    now: Date.now,
  });
  const kitdWrite = async () =>
    writeRunStatus(kit.dataDir, 'kitd', kitdRunStatus({ links: await monitor.poll() }));
  await kitdWrite();
  assert.equal(readRunStatus(kit.dataDir, 'kitd')?.links?.primaryMetered, true);
  kitdLoop = setInterval(() => void kitdWrite().catch(() => undefined), 250);

  // queued during an outage: orders (one in three by card) and sync's own telemetry
  const placed: string[] = [];
  for (let i = 0; i < 9; i++)
    placed.push(
      await kit.place(i % 3 === 0 ? { method: 'token', token: `tok_visa_metered_${i}` } : { method: 'cash' }),
    );
  const lanes = new LaneKeeper(kit.store, {
    stock: { ttlMs: 1e12, quotaBytes: 1e9 },
    health: { ttlMs: 1e12, quotaBytes: 1e9 },
    telemetry: { ttlMs: 1e12, quotaBytes: 1e9 },
  });
  for (let i = 0; i < 4; i++)
    await lanes.enqueue(
      'telemetry',
      'telemetry',
      telemetryBody({ published: i, drained: 0, resent: 0, reconnects: 0 }, {}),
    );
  assert.equal(laneCount(LANES.telemetry), 4);

  // what crosses the broker for this kit
  spy = mqtt.connect(broker.url, { clientId: uniqueId('spy'), reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    spy!.once('connect', () => resolve());
    spy!.once('error', reject);
  });
  await spy.subscribeAsync([topics.orders(kit.kitId), topics.telemetry(kit.kitId)], { qos: 1 });
  spy.on('message', (topic) => {
    if (topic === topics.orders(kit.kitId)) seen.orders++;
    if (topic === topics.telemetry(kit.kitId)) seen.telemetry++;
  });

  rig.sync = startSync(kit, broker.url, {
    // nothing new is queued by sync itself meanwhile: the telemetry in the outbox is the test's
    POPKIT_SYNC_TELEMETRY_INTERVAL_MS: '3600000',
    POPKIT_SYNC_HEALTH_INTERVAL_MS: '3600000',
  });

  // the orders (cards with their tokens) reach the ledger and leave the outbox
  await waitFor(() => laneCount(LANES.orders) === 0, 60_000, 'the orders lane to drain on the metered link');
  const ledger = await ledgerOrderIds(schema, kit.kitId);
  assert.deepEqual(ledger.ids, [...placed].sort());
  assert.ok(seen.orders > 0, 'orders crossed the broker');
  // sync's status, written after the orders were acked, says what it holds and why; by then the pump has
  // run many times with the telemetry lane within its window
  const status = await waitFor(
    () => {
      const s = readRunStatus(kit.dataDir, 'sync');
      return s?.uplink?.metered && s.backlog['orders'] === 0 && s.drained >= placed.length ? s : undefined;
    },
    30_000,
    "sync's status to show the metered link",
  );
  assert.deepEqual(status.uplink, {
    mode: 'essential',
    metered: true,
    basis: 'metered',
    primary: 'wwan0',
    // the hub is on this machine: the connection is not bound to a link
    via: null,
    held: ['health', 'telemetry', 'series', 'product-media'],
    heldSince: status.uplink?.heldSince,
  });
  assert.ok(status.uplink?.heldSince);
  assert.equal(laneCount(LANES.telemetry), 4, 'the telemetry is still in the outbox');
  assert.equal(seen.telemetry, 0, 'no telemetry crossed the broker');

  // the venue's Ethernet comes up and becomes primary: kitd's next reading lets the telemetry go
  fs.writeFileSync(linksFile, JSON.stringify(ETHERNET_PRIMARY));
  await waitFor(() => laneCount(LANES.telemetry) === 0, 60_000, 'the telemetry lane to drain on Ethernet');
  assert.ok(seen.telemetry > 0, 'telemetry crossed the broker');
  const after = await waitFor(
    () => {
      const s = readRunStatus(kit.dataDir, 'sync');
      return s?.uplink && !s.uplink.metered ? s : undefined;
    },
    30_000,
    "sync's status to show the unmetered link",
  );
  assert.equal(after.uplink?.basis, 'unmetered');
  assert.equal(after.uplink?.primary, 'eth0');
  assert.deepEqual(after.uplink?.held, []);
  assert.equal(after.uplink?.heldSince, null);
  // each order once in the ledger, whatever was resent
  assert.equal((await ledgerOrderIds(schema, kit.kitId)).rows, placed.length);
});
