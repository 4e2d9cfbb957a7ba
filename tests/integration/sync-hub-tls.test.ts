// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// TLS to the hub: a private CA and a server certificate made with openssl, Mosquitto with a TLS-only
// listener on a free port, the hub and sync both on mqtts:// with the CA: the kit's orders reach the
// PostgreSQL ledger. Sync given another CA is refused (the certificate does not verify) and delivers
// nothing; a plain mqtt:// client gets no session on the TLS port.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  connectOutcome,
  dropSchema,
  freePort,
  ledgerOrderIds,
  type Mosquitto,
  makeKit,
  mosquitto,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';
import { makeTestPki } from '../support/test-pki.ts';

const schema = uniqueId('tls').replace(/-/g, '_');
const dir = tmpDir('popkit-tls');
const file = (name: string) => path.join(dir, name);
let broker: Mosquitto;
let hub: HubService;
let url: string;
const stops: Array<() => Promise<void>> = [];

before(async () => {
  makeTestPki(dir, { cas: ['popkit-test-ca', 'other-ca'], san: 'IP:127.0.0.1,DNS:localhost' });

  const port = await freePort();
  const brokerDir = path.join(dir, 'mosq');
  fs.mkdirSync(brokerDir);
  broker = await mosquitto({
    port,
    dir: brokerDir,
    rawConf: [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      `cafile ${file('popkit-test-ca.crt')}`,
      `certfile ${file('server.crt')}`,
      `keyfile ${file('server.key')}`,
      'max_queued_messages 0',
      'persistence false',
      `log_dest file ${path.join(brokerDir, 'mosquitto.log')}`,
      '',
    ].join('\n'),
  });
  url = `mqtts://127.0.0.1:${port}`;
  hub = await startHub({
    brokerUrl: url,
    schema,
    env: { POPKIT_HUB_BROKER_CA_FILE: file('popkit-test-ca.crt') },
  });
});

after(async () => {
  for (const s of stops.reverse()) await s();
  await hub?.stop();
  await broker?.close();
  await dropSchema(schema);
});

async function kitWithOrders(n: number): Promise<{ kit: TestKit; ids: string[] }> {
  const kit = await makeKit(uniqueId('kit-tls'));
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await kit.place());
  return { kit, ids };
}

function sync(kit: TestKit, ca: string): SyncService {
  const s = startSync(kit, url, { POPKIT_HUB_CA_FILE: file(ca) });
  stops.push(async () => {
    await s.stop();
    await kit.close();
  });
  return s;
}

test("over mqtts:// with the CA, the hub ingests and the kit's orders reach the ledger", {
  timeout: 60_000,
}, async () => {
  assert.equal(hub.ingest?.connected, true, 'the hub is connected over TLS');
  const { kit, ids } = await kitWithOrders(5);
  const s = sync(kit, 'popkit-test-ca.crt');
  await waitFor(
    async () => (await ledgerOrderIds(schema, kit.kitId)).rows === ids.length,
    30_000,
    'orders in the ledger',
  );
  assert.deepEqual((await ledgerOrderIds(schema, kit.kitId)).ids, [...ids].sort());
  assert.equal(s.connected, true);
});

test('sync with another CA is refused: it never links up and delivers nothing', {
  timeout: 60_000,
}, async () => {
  // the same verification sync's client does, to see why it is refused
  const probe = mqtt.connect(url, {
    ca: fs.readFileSync(file('other-ca.crt')),
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  const err = await new Promise<Error>((resolve) => probe.once('error', resolve));
  probe.end(true);
  assert.match(err.message, /certificate/i);

  const { kit } = await kitWithOrders(3);
  const s = sync(kit, 'other-ca.crt');
  // positive evidence of refusal: several attempts, none of them up
  await waitFor(() => s.reconnects >= 3, 30_000, 'sync to retry after refusals');
  assert.equal(s.connected, false);
  assert.notEqual(s.link, 'up');
  assert.equal((await ledgerOrderIds(schema, kit.kitId)).rows, 0);
});

test('the TLS port speaks no plain MQTT', { timeout: 30_000 }, async () => {
  assert.notEqual(await connectOutcome(url.replace('mqtts:', 'mqtt:')), 'connected');
});
