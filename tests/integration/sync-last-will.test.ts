// Sync's last will: a `popkit sync` process killed with SIGKILL (no goodbye of its own) leaves the
// broker to publish its will, so the retained kits/<id>/status becomes `online: false` and the hub's
// fleet view shows the kit offline. Real parts: a private Mosquitto, the hub on PostgreSQL with a
// schema of its own, `popkit sync` as a child process on a real LMDB kit store.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, test } from 'node:test';
import mqtt from 'mqtt';
import { topics } from '../../core/contracts/hub-wire.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { BIN } from '../support/checkout.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  startHub,
  syncEnv,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('lastwill').replace(/-/g, '_');
let broker: Mosquitto;
let hub: HubService;
let sync: ChildProcess | undefined;
let spy: mqtt.MqttClient | undefined;

after(async () => {
  if (sync && sync.exitCode === null && sync.signalCode === null) sync.kill('SIGKILL');
  spy?.end(true);
  await hub?.stop();
  await broker?.close();
  await dropSchema(schema);
});

async function fleetOnline(kitId: string): Promise<boolean | undefined> {
  const res = await fetch(`${hub.httpUrl}/v1/kits`, {
    headers: { authorization: `Bearer ${hub.adminToken}` },
  });
  const body = (await res.json()) as { kits: Array<{ kitId: string; online: boolean }> };
  return body.kits.find((k) => k.kitId === kitId)?.online;
}

test('sync killed with SIGKILL: its retained status turns online:false, the fleet shows it offline', {
  timeout: 90_000,
}, async () => {
  broker = await mosquitto();
  hub = await startHub({ brokerUrl: broker.url, schema });
  const kit = await makeKit(uniqueId('kit-will'));
  await kit.place();
  await kit.close(); // the sync process opens the store itself

  sync = spawn(process.execPath, [BIN, 'sync'], {
    env: {
      PATH: process.env['PATH'],
      NODE_ENV: 'test',
      POPKIT_LOG_LEVEL: 'silent',
      POPKIT_BOARD: 'sim',
      ...syncEnv(kit, broker.url),
    },
    stdio: 'ignore',
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => sync?.once('exit', (_c, s) => resolve(s)));

  // a watcher of the retained status, as any fleet tool would be
  const statuses: Array<{ online: boolean; kitId: string }> = [];
  spy = mqtt.connect(broker.url, { clientId: uniqueId('spy'), reconnectPeriod: 500 });
  spy.on('message', (_t, payload) => {
    if (payload.length > 0) statuses.push(JSON.parse(payload.toString()));
  });
  await new Promise<void>((r) => spy?.once('connect', () => r()));
  await spy.subscribeAsync(topics.status(kit.kitId), { qos: 1 });

  await waitFor(() => statuses.at(-1)?.online === true, 30_000, 'sync to publish online:true');
  await waitFor(
    async () => (await fleetOnline(kit.kitId)) === true,
    30_000,
    'the fleet to show the kit online',
  );

  sync.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');

  await waitFor(() => statuses.at(-1)?.online === false, 30_000, 'the last will online:false');
  assert.equal(statuses.at(-1)?.kitId, kit.kitId);
  // retained: a client arriving later still reads offline
  const late = mqtt.connect(broker.url, { clientId: uniqueId('late') });
  try {
    const retained = await new Promise<{ online: boolean }>((resolve) => {
      late.on('message', (_t, payload) => resolve(JSON.parse(payload.toString())));
      late.on('connect', () => void late.subscribeAsync(topics.status(kit.kitId), { qos: 1 }));
    });
    assert.equal(retained.online, false);
  } finally {
    late.end(true);
  }
  await waitFor(
    async () => (await fleetOnline(kit.kitId)) === false,
    30_000,
    'the fleet to show the kit offline',
  );
});
