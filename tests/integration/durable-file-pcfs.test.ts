// core/durable-file.ts on pcfs (tests/support/pcfs.ts), a filesystem that forgets every write not made
// durable at a "power cut": what the helper wrote is whole after the cut, and so is every secret and
// run-status file written through it, the buyer device key and kitd's update-lock lease. The first
// test shows the hazard the helper exists for.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { readRunStatus, writeRunStatus } from '../../core/contracts/run-status.ts';
import { dataLayout, hubDataLayout } from '../../core/data-dir.ts';
import { writeFileDurable } from '../../core/durable-file.ts';
import { loadOrCreateKey, loadOrCreateToken } from '../../core/secrets.ts';
import { openKitStore } from '../../core/store/index.ts';
import { DeviceTokens } from '../../services/checkout/devices.ts';
import { loadOrCreateSigningKey } from '../../services/hub/keys.ts';
import { tempDir } from '../support/checkout.ts';
import { mountPcfs } from '../support/pcfs.ts';

async function onPcfs<T>(root: string, body: (dir: string) => T | Promise<T>): Promise<{ value: T }> {
  const fsys = await mountPcfs(path.join(root, 'backing'), path.join(root, 'mnt'));
  let value: T;
  try {
    value = await body(fsys.mount);
  } catch (err) {
    await fsys.unmount();
    throw err;
  }
  const res = await fsys.cut();
  assert.equal(res.cut, true);
  return { value };
}

test('self-check: a file written and renamed without fsync is empty after the cut', async () => {
  const root = tempDir('popkit-pcfs-hazard-');
  await onPcfs(root, (dir) => {
    fs.writeFileSync(path.join(dir, 'key.tmp'), 'a secret that matters');
    fs.renameSync(path.join(dir, 'key.tmp'), path.join(dir, 'key'));
  });
  assert.equal(fs.readFileSync(path.join(root, 'backing', 'key'), 'utf8'), '');
});

test('writeFileDurable: whole after a cut; exclusive never replaces; the mode whatever the umask', async () => {
  const root = tempDir('popkit-pcfs-durable-');
  const old = process.umask(0);
  try {
    await onPcfs(root, (dir) => {
      writeFileDurable(path.join(dir, 'a'), 'first');
      writeFileDurable(path.join(dir, 'a'), 'second, longer');
      assert.equal(writeFileDurable(path.join(dir, 'b'), 'one', { mode: 0o600, exclusive: true }), true);
      assert.equal(writeFileDurable(path.join(dir, 'b'), 'two', { mode: 0o600, exclusive: true }), false);
    });
  } finally {
    process.umask(old);
  }
  const b = path.join(root, 'backing');
  assert.equal(fs.readFileSync(path.join(b, 'a'), 'utf8'), 'second, longer');
  assert.equal(fs.readFileSync(path.join(b, 'b'), 'utf8'), 'one');
  assert.equal(fs.statSync(path.join(b, 'b')).mode & 0o777, 0o600);
  assert.deepEqual(
    fs.readdirSync(b).filter((f) => f.endsWith('.tmp')),
    [],
    'no temp file left behind',
  );
});

test('property: after a cut following any number of rewrites, the file holds the last one written', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 5000 }), { minLength: 1, maxLength: 6 }),
      async (versions) => {
        const root = tempDir('popkit-pcfs-prop-');
        await onPcfs(root, (dir) => {
          for (const v of versions) writeFileDurable(path.join(dir, 'state.json'), v);
        });
        const got = fs.readFileSync(path.join(root, 'backing', 'state.json'));
        assert.deepEqual(new Uint8Array(got), versions[versions.length - 1]);
      },
    ),
    { numRuns: 8 },
  );
});

test('secrets and run status written at first boot survive a cut right after, unchanged', async () => {
  const root = tempDir('popkit-pcfs-secrets-');
  const { value: before } = await onPcfs(root, (dir) => {
    const kit = dataLayout(path.join(dir, 'kit'));
    const hub = path.join(dir, 'hub');
    writeRunStatus(kit.root, 'checkout', { state: 'up', port: 8080, ordersPerSec: 0 });
    return {
      admin: loadOrCreateToken(kit.adminToken).value,
      key: loadOrCreateKey(kit.tokenKey).value.toString('hex'),
      hubAdmin: loadOrCreateToken(hubDataLayout(hub).adminToken).value,
      held: loadOrCreateKey(hubDataLayout(hub).heldTokenKey).value.toString('hex'),
      signingPub: loadOrCreateSigningKey(hub).publicPem,
    };
  });
  const kit = dataLayout(path.join(root, 'backing', 'kit'));
  const hub = path.join(root, 'backing', 'hub');
  const after = {
    admin: loadOrCreateToken(kit.adminToken).value,
    key: loadOrCreateKey(kit.tokenKey).value.toString('hex'),
    hubAdmin: loadOrCreateToken(hubDataLayout(hub).adminToken).value,
    held: loadOrCreateKey(hubDataLayout(hub).heldTokenKey).value.toString('hex'),
    signingPub: loadOrCreateSigningKey(hub).publicPem,
  };
  assert.deepEqual(after, before);
  assert.equal(readRunStatus(kit.root, 'checkout')?.state, 'up');
});

test('the buyer device key survives a cut right after its first write, whole and unchanged', async () => {
  const root = tempDir('popkit-pcfs-devicekey-');
  let key = '';
  await onPcfs(root, async (dir) => {
    const data = path.join(dir, 'kit');
    const store = openKitStore(data);
    try {
      const devices = DeviceTokens.open(dataLayout(data).deviceKey, store);
      assert.equal(devices.status.state, 'ok');
      key = fs.readFileSync(dataLayout(data).deviceKey).toString('hex');
    } finally {
      await store.close();
    }
  });
  const file = dataLayout(path.join(root, 'backing', 'kit')).deviceKey;
  assert.equal(fs.readFileSync(file).toString('hex'), key);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
});

test("kitd's update-lock lease: taken, rewritten with a new reason, then a cut: the last whole lease", async () => {
  const root = tempDir('popkit-pcfs-lock-');
  await onPcfs(root, (dir) => {
    // kitd as its own process, killed by the cut: its descriptors (the host OS flock among them) go
    // with it, as at a real power cut; only then can the filesystem be cut under it
    const script = [
      "import { UpdateLock } from './firmware/update-lock.ts';",
      `const lock = new UpdateLock(60_000, { POPKIT_HOST_ROOT: ${JSON.stringify(dir)} });`,
      "if (!lock.reconcile('event live').held) process.exit(3);",
      "if (lock.reconcile('orders unsynced').reason !== 'orders unsynced') process.exit(4);",
      'if (!lock.hostOsLockHeld()) process.exit(5);',
      "process.kill(process.pid, 'SIGKILL');",
    ].join('\n');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: path.resolve(import.meta.dirname, '../..'),
      env: { ...process.env, POPKIT_LOG_LEVEL: 'silent' },
      encoding: 'utf8',
    });
    assert.equal(r.signal, 'SIGKILL', `the lock holder ended with ${r.status}: ${r.stderr}`);
  });
  const content = JSON.parse(
    fs.readFileSync(path.join(root, 'backing', 'tmp', 'balena', 'updates.lock'), 'utf8'),
  ) as { owner: string; reason: string };
  assert.equal(content.owner, 'popkit-kitd');
  assert.equal(content.reason, 'orders unsynced');
});

test('self-check of the judge: the same lease written plainly is lost by the cut', async () => {
  const root = tempDir('popkit-pcfs-lock-plain-');
  await onPcfs(root, (dir) => {
    fs.mkdirSync(path.join(dir, 'tmp', 'balena'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'tmp', 'balena', 'updates.lock'), '{"owner":"popkit-kitd"}');
  });
  assert.equal(fs.readFileSync(path.join(root, 'backing', 'tmp', 'balena', 'updates.lock'), 'utf8'), '');
});
