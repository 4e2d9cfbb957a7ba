// Card tokens never cross a plaintext link: sync refuses a hub URL of mqtt://, ws:// or tcp:// to anything
// but this machine (coded CONFIG_INVALID, a message that says what to do), unless
// POPKIT_HUB_ALLOW_PLAINTEXT=1; mqtts:// and wss:// are accepted anywhere. `popkit up` with such a
// remote hub stops before it starts anything. A real sync on a loopback Mosquitto still links up.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { isKitError } from '../../core/errors.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  freePort,
  makeKit,
  mosquitto,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';
import { spawnPopkitUp } from '../support/up.ts';

const kits: TestKit[] = [];
const syncs: SyncService[] = [];
after(async () => {
  for (const s of syncs) await s.stop();
  for (const k of kits) await k.close();
});

async function kit(): Promise<TestKit> {
  const k = await makeKit(uniqueId('kit-plain'));
  kits.push(k);
  return k;
}

function refusal(fn: () => unknown): { code: string; message: string } | undefined {
  try {
    syncs.push(fn() as SyncService);
    return undefined;
  } catch (err) {
    assert.ok(isKitError(err), `a coded error, not ${String(err)}`);
    return { code: err.code, message: err.message };
  }
}

test('plaintext to another machine is refused, coded, with the way out in the message', async () => {
  const k = await kit();
  for (const url of [
    'mqtt://192.0.2.10:1883',
    'ws://hub.example:8080/mqtt',
    'tcp://10.0.0.2:1883',
    'mqtt://user:hunter2-secret@hub.example:1883',
    // look-alikes of loopback are other machines
    'mqtt://127.0.0.1.evil.example:1883',
    'mqtt://localhost.evil.example:1883',
    'mqtt://0.0.0.0:1883',
  ]) {
    const r = refusal(() => startSync(k, url));
    assert.ok(r, `${url} was accepted`);
    assert.equal(r.code, 'CONFIG_INVALID');
    assert.match(r.message, /plaintext/);
    assert.match(r.message, /mqtts:\/\//);
    assert.match(r.message, /POPKIT_HUB_ALLOW_PLAINTEXT=1/);
    assert.doesNotMatch(r.message, /hunter2/, 'the password in the URL is not printed');
  }
});

test('encrypted URLs anywhere, loopback, or the explicit opt-in are accepted', async () => {
  const k = await kit();
  const accepted = [
    ['mqtts://hub.example:8883', {}],
    ['wss://hub.example/mqtt', {}],
    ['mqtt://192.0.2.10:1883', { POPKIT_HUB_ALLOW_PLAINTEXT: '1' }],
  ] as const;
  for (const [url, env] of accepted) {
    const r = refusal(() => startSync(k, url, { ...env, POPKIT_SYNC_BACKOFF_MIN_MS: '60000' }));
    assert.equal(r, undefined, `${url} was refused: ${r?.message}`);
  }
  // loopback: a real link to a private Mosquitto comes up
  const broker = await mosquitto();
  try {
    for (const url of [broker.url, broker.url.replace('127.0.0.1', 'localhost')]) {
      const s = startSync(k, url);
      syncs.push(s);
      await waitFor(() => s.connected, 15_000, `link up on ${url}`);
      await s.stop();
    }
  } finally {
    await broker.close();
  }
});

test('popkit up with a plaintext remote hub stops before it starts anything', {
  timeout: 60_000,
}, async () => {
  const dataDir = tmpDir('up-plain');
  const up = spawnPopkitUp([], {
    POPKIT_DATA_DIR: dataDir,
    POPKIT_HUB_URL: 'mqtt://192.0.2.10:1883',
    POPKIT_HTTP_PORT: String(await freePort()),
  });
  try {
    const code = await Promise.race([
      up.exited,
      new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000)),
    ]);
    assert.notEqual(code, 'running', 'popkit up kept running');
    assert.notEqual(code, 0);
    assert.match(up.output(), /plaintext/);
    assert.match(up.output(), /POPKIT_HUB_ALLOW_PLAINTEXT=1/);
    // nothing was started: no broker dir, no store
    assert.deepEqual(fs.readdirSync(dataDir), []);
    assert.equal(fs.existsSync(path.join(dataDir, 'bus')), false);
  } finally {
    // SIGTERM: a popkit up that did start stops its children too
    if (up.proc.exitCode === null) {
      up.proc.kill('SIGTERM');
      await Promise.race([up.exited, new Promise((r) => setTimeout(r, 20_000))]);
    }
  }
});
