// The small board's memory (docs/scaling.md#small-boards): no MQTT client of the kit fills mqtt-packet's
// number cache (65 536 two-byte Buffers, ~8 MB of V8 heap per isolate: core/mqtt-options.ts). Checked
// where it matters, in each isolate of the combined kit (`popkit kit`: the main thread, sync's and
// kitd's worker threads) and in `popkit media`, after each has talked to the local bus: a probe loaded
// with --import (tests/support/mqtt-number-cache-probe.mjs) reports what mqtt-packet holds per isolate.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import mqtt from 'mqtt';
import { localTopics } from '../../core/contracts/local-bus.ts';
import { BIN, kitEnv, tempDir } from '../support/checkout.ts';
import { freePort, type Mosquitto, mosquitto, waitFor } from '../support/hub-link.ts';

const PROBE = path.join(import.meta.dirname, '../support/mqtt-number-cache-probe.mjs');
const children: ChildProcess[] = [];
let broker: Mosquitto | undefined;
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await broker?.stop();
});

interface Report {
  name: string;
  loaded: boolean;
  cached: number;
}

test('no isolate of the kit fills mqtt-packet number cache (combined kit and media)', {
  timeout: 180_000,
}, async () => {
  broker = await mosquitto();
  const dataDir = tempDir('popkit-kit-mqtt-mem-');
  const probeDir = tempDir('popkit-kit-mqtt-probe-');
  const topics = localTopics(`test/${process.pid}/mqtt-mem`);
  const env = kitEnv(dataDir, {
    POPKIT_HTTP_HOST: '127.0.0.1',
    POPKIT_HTTP_PORT: String(await freePort()),
    POPKIT_LOCAL_BUS_URL: broker.url,
    POPKIT_LOCAL_BUS_PREFIX: topics.prefix,
    // the local broker stands in for the hub's: sync's hub link connects too
    POPKIT_HUB_URL: broker.url,
    POPKIT_HUB_ALLOW_PLAINTEXT: '1',
    POPKIT_MEDIA_WIDTH: '320',
    POPKIT_MEDIA_HEIGHT: '240',
    POPKIT_MEDIA_BITRATE_KBPS: '300',
    NODE_OPTIONS: `--import ${PROBE}`,
    POPKIT_TEST_NUMBER_CACHE_DIR: probeDir,
  });
  for (const cmd of ['kit', 'media'])
    children.push(spawn(process.execPath, [BIN, cmd], { env, stdio: ['ignore', 'ignore', 'inherit'] }));

  // each client has written packets: kitd's and media's retained messages reach a subscriber, and the
  // main thread's and sync's clients have subscribed (their subscriptions are what a command needs)
  const seen = new Set<string>();
  const bus = await mqtt.connectAsync(broker.url, { clientId: `mqtt-mem-test-${process.pid}` });
  try {
    bus.on('message', (t) => seen.add(t));
    await bus.subscribeAsync([topics.kitdStatus, topics.mediaStats], { qos: 0 });
    await waitFor(
      () => seen.has(topics.kitdStatus) && seen.has(topics.mediaStats),
      120_000,
      'kitd and media',
    );
  } finally {
    await bus.endAsync(true);
  }
  const reports = (): Report[] =>
    fs.readdirSync(probeDir).flatMap((f) => {
      try {
        return [JSON.parse(fs.readFileSync(path.join(probeDir, f), 'utf8')) as Report];
      } catch {
        return []; // a file being written
      }
    });
  await waitFor(
    () => ['main', 'sync', 'kitd'].every((n) => reports().some((r) => r.name === n && r.loaded)),
    60_000,
    'the kit threads load mqtt',
  );
  // a few more seconds of bus traffic (heartbeats, status) after the clients connected
  await new Promise((r) => setTimeout(r, 4000));
  const now = reports();
  const withClient = now.filter((r) => r.loaded);
  // the kit process's main thread, sync, kitd and the media process's main thread
  assert.ok(withClient.length >= 4, JSON.stringify(now));
  for (const r of withClient)
    assert.equal(r.cached, 0, `${r.name} filled the number cache: ${JSON.stringify(now)}`);
});
