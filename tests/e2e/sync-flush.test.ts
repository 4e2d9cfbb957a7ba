// kitd's "flush" over the local bus makes a real `popkit sync` process try the hub link at once instead of
// sitting out its reconnect backoff (critical power: push what the link takes before the battery goes).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { localTopics } from '../../core/contracts/local-bus.ts';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { BIN } from '../support/checkout.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  startHub,
  syncEnv,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_flush').replace(/-/g, '_');
let broker: Mosquitto;
let hub: HubService;
let kit: TestKit;
let sync: ChildProcess;

before(async () => {
  broker = await mosquitto();
  hub = await startHub({ schema, brokerUrl: broker.url });
  kit = await makeKit(uniqueId('kit'));
  sync = spawn(process.execPath, [BIN, 'sync'], {
    env: {
      PATH: process.env['PATH'],
      NODE_ENV: 'test',
      ...syncEnv(kit, broker.url, {
        // one reconnect attempt a minute: only a flush can bring the link back within this test
        POPKIT_SYNC_BACKOFF_MIN_MS: '60000',
        POPKIT_SYNC_BACKOFF_MAX_MS: '60000',
        POPKIT_LOCAL_BUS_URL: broker.url,
      }),
    },
    stdio: 'ignore',
  });
});

after(async () => {
  const exited = new Promise((r) => sync.once('exit', r));
  sync.kill('SIGTERM');
  await exited;
  await hub?.stop();
  await broker?.stop();
  await kit?.close();
  await dropSchema(schema);
});

const stateOf = (id: string) => kit.store.orders.get(id)?.syncState;

test('a flush on the local bus reconnects sync now and drains the backlog', {
  timeout: 120_000,
}, async () => {
  const first = await kit.place({ method: 'token', token: 'tok_sandbox_approve_flush1' } as never);
  await waitFor(() => stateOf(first) === 'settled', 30_000, 'the first order to settle');

  await broker.stop();
  await waitFor(
    () => readRunStatus(kit.dataDir, 'sync')?.link === 'down',
    20_000,
    'sync to see the link down',
  );
  const second = await kit.place();
  await broker.start();
  // the broker is back, but sync's next attempt is a minute away. Not a sleep: wait for two status beats
  // of sync written after the broker answered again (so sync has been running with the broker up), and
  // only then check that it stayed away.
  const upAgain = Date.now();
  const beats: string[] = [];
  await waitFor(
    () => {
      const st = readRunStatus(kit.dataDir, 'sync');
      if (st && Date.parse(st.updatedAt) > upAgain && !beats.includes(st.updatedAt)) beats.push(st.updatedAt);
      return beats.length >= 2;
    },
    20_000,
    'two sync status beats with the broker back',
  );
  assert.equal(readRunStatus(kit.dataDir, 'sync')?.link, 'down');
  assert.equal(stateOf(second), 'pending');
  const before = readRunStatus(kit.dataDir, 'sync')?.reconnects ?? 0;

  const bus = await mqtt.connectAsync(broker.url, { clientId: uniqueId('kitd') });
  try {
    await waitFor(
      async () => {
        await bus.publishAsync(localTopics().syncCmd, JSON.stringify({ v: 1, cmd: 'flush' }), { qos: 1 });
        return stateOf(second) === 'settled';
      },
      // well inside the 30 s that sync's backoff waits at the least (equal jitter of 60 s)
      15_000,
      'the flushed order to settle',
    );
  } finally {
    await bus.endAsync();
  }
  assert.ok((readRunStatus(kit.dataDir, 'sync')?.reconnects ?? 0) > before);
});
