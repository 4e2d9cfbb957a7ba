import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isKitError } from '../../core/errors.ts';
import { SupervisorClient } from '../../firmware/supervisor-client.ts';
import { type SupervisorStandIn, startSupervisorStandIn } from '../support/supervisor-stand-in.ts';

describe('supervisor client against the stand-in', () => {
  let root: string;
  let lockFile: string;
  let sup: SupervisorStandIn;
  let client: SupervisorClient;

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-sup-'));
    lockFile = path.join(root, 'tmp/balena/updates.lock');
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    sup = await startSupervisorStandIn({ lockFile });
    client = SupervisorClient.fromEnv({
      BALENA_SUPERVISOR_ADDRESS: sup.address,
      BALENA_SUPERVISOR_API_KEY: sup.apiKey,
      BALENA_APP_ID: sup.appId,
    })!;
  });
  after(async () => {
    await sup.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('fromEnv is undefined off balena', () => {
    assert.equal(SupervisorClient.fromEnv({}), undefined);
    assert.equal(
      SupervisorClient.fromEnv({ BALENA_SUPERVISOR_ADDRESS: 'http://127.0.0.1:48484' }),
      undefined,
    );
  });

  test('ping, blink and device state, with the apikey as a query parameter', async () => {
    assert.equal(await client.ping(), true);
    await client.blink();
    const d = await client.device();
    assert.equal(d.update_pending, false);
    assert.equal(d.status, 'Idle');
    assert.equal(typeof d.commit, 'string');
    assert.ok(sup.calls.some((c) => c.path === '/v1/blink' && c.status === 200));
  });

  test('a wrong key is SUPERVISOR_AUTH', async () => {
    const bad = new SupervisorClient({ address: sup.address, apiKey: 'nope', appId: sup.appId });
    await assert.rejects(bad.device(), (e: unknown) => isKitError(e) && e.code === 'SUPERVISOR_AUTH');
  });

  test('an unreachable supervisor is SUPERVISOR_UNAVAILABLE, ping false', async () => {
    const gone = new SupervisorClient({ address: 'http://127.0.0.1:1', apiKey: 'k', timeoutMs: 500 });
    assert.equal(await gone.ping(), false);
    await assert.rejects(gone.reboot(), (e: unknown) => isKitError(e) && e.code === 'SUPERVISOR_UNAVAILABLE');
  });

  test('reboot, shutdown and restart-service are refused with LOCKED while the lock exists; force overrides', async () => {
    fs.writeFileSync(lockFile, '');
    try {
      await assert.rejects(
        client.reboot(),
        (e: unknown) => isKitError(e) && e.code === 'LOCKED' && e.status === 423,
      );
      await assert.rejects(client.shutdown(), (e: unknown) => isKitError(e) && e.code === 'LOCKED');
      await assert.rejects(
        client.restartService('media'),
        (e: unknown) => isKitError(e) && e.code === 'LOCKED',
      );
      await client.shutdown({ force: true });
      await client.restartService('media', { force: true });
      const forced = sup.calls.filter((c) => c.body?.['force'] === true);
      assert.deepEqual(
        forced.map((c) => [c.path, c.status]),
        [
          ['/v1/shutdown', 202],
          [`/v2/applications/${sup.appId}/restart-service`, 200],
        ],
      );
    } finally {
      fs.rmSync(lockFile, { force: true });
    }
    await client.reboot();
    await client.restartService('sync');
    const last = sup.calls.at(-1);
    assert.deepEqual(last?.body, { serviceName: 'sync', force: false });
  });

  test('update check: the lock defers a pending update, the same call applies it once unlocked', async () => {
    sup.device['update_pending'] = true;
    fs.writeFileSync(lockFile, '');
    await client.update();
    assert.equal((await client.device()).update_pending, true);
    fs.rmSync(lockFile);
    await client.update();
    const d = await client.device();
    assert.equal(d.update_pending, false);
    assert.equal(d.commit, 'next-release-commit');
  });

  test('bad input is refused before any request', async () => {
    const n = sup.calls.length;
    await assert.rejects(
      client.restartService('../etc'),
      (e: unknown) => isKitError(e) && e.code === 'BAD_REQUEST',
    );
    await assert.rejects(
      client.restartService('nosuch'),
      (e: unknown) => isKitError(e) && e.code === 'SUPERVISOR_ERROR',
    );
    assert.equal(sup.calls.length, n + 1);
    const noApp = new SupervisorClient({ address: sup.address, apiKey: sup.apiKey });
    await assert.rejects(
      noApp.restartService('media'),
      (e: unknown) => isKitError(e) && e.code === 'SUPERVISOR_UNAVAILABLE',
    );
  });
});
