// The kit's data is its own: the data dir and the logs dir 0700, kit.lmdb, its lock file and the
// logs 0600, whatever the umask (this file runs with umask 000, the worst case), and a kit upgraded
// from a release that left them open gets them tightened at start.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { dataLayout } from '../../core/data-dir.ts';
import { ensurePrivateDir } from '../../core/file-modes.ts';
import { ProcessSupervisor } from '../../core/process-supervisor.ts';
import { openKitStore } from '../../core/store/index.ts';
import { createCheckout } from '../../services/checkout/main.ts';
import { kitEnv, tempDir } from '../support/checkout.ts';
import { waitFor } from '../support/hub-link.ts';

const mode = (file: string) => (fs.statSync(file).mode & 0o7777).toString(8).padStart(4, '0');

const cleanups: Array<() => Promise<void>> = [];
let umask = 0;
before(() => {
  umask = process.umask(0o000);
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  process.umask(umask);
});

test('checkout start: data dir 0700, kit.lmdb and its lock 0600 under umask 000', async () => {
  const dataDir = path.join(tempDir('popkit-modes-'), 'data');
  const kit = await createCheckout(kitEnv(dataDir));
  cleanups.push(() => kit.close());
  const layout = dataLayout(dataDir);
  assert.equal(mode(dataDir), '0700');
  assert.equal(mode(layout.store), '0600');
  assert.equal(mode(`${layout.store}-lock`), '0600');
});

test('an existing data dir and store left open by an older release are tightened at open', async () => {
  const dataDir = tempDir('popkit-modes-old-');
  const layout = dataLayout(dataDir);
  const first = openKitStore(dataDir);
  await first.close();
  fs.chmodSync(dataDir, 0o755);
  fs.chmodSync(layout.store, 0o664);
  fs.chmodSync(`${layout.store}-lock`, 0o666);
  const store = openKitStore(dataDir);
  cleanups.push(() => store.close());
  assert.equal(mode(dataDir), '0700');
  assert.equal(mode(layout.store), '0600');
  assert.equal(mode(`${layout.store}-lock`), '0600');
});

test('supervised children log into 0600 files in a 0700 logs dir', async () => {
  const logs = path.join(tempDir('popkit-modes-logs-'), 'logs');
  fs.mkdirSync(logs, { mode: 0o755 });
  fs.chmodSync(logs, 0o755);
  fs.writeFileSync(path.join(logs, 'old.log'), 'from an older release\n', { mode: 0o644 });
  const sup = new ProcessSupervisor(logs, { minBackoffMs: 10_000 });
  cleanups.push(() => sup.stop(2000));
  for (const name of ['old', 'fresh']) {
    sup.add({ name, command: process.execPath, args: ['-e', 'console.log("hello")'], env: {} });
  }
  await waitFor(
    () =>
      ['old', 'fresh'].every((n) => fs.readFileSync(path.join(logs, `${n}.log`), 'utf8').includes('hello')),
    20_000,
    'both children logged',
  );
  assert.equal(mode(logs), '0700');
  assert.equal(mode(path.join(logs, 'old.log')), '0600');
  assert.equal(mode(path.join(logs, 'fresh.log')), '0600');
});

test('a shared sticky dir (like /tmp) is never chmodded', () => {
  const shared = path.join(tempDir('popkit-modes-sticky-'), 'shared');
  fs.mkdirSync(shared);
  fs.chmodSync(shared, 0o1777);
  assert.equal(ensurePrivateDir(shared), 0o1777);
  assert.equal(mode(shared), '1777');
});
