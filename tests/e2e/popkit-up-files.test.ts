// `popkit up` (compiled dist/, plain node, umask 000, an external hub broker so no embedded hub, no
// media): the data dir is 0700, kit.lmdb and its lock 0600, the logs dir 0700 and every service log,
// rotated ones included, 0600; with POPKIT_LOG_MAX_MB tiny the logs rotate while it runs, keeping
// POPKIT_LOG_FILES rotated files at most.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { dataLayout } from '../../core/data-dir.ts';
import { ROOT, tempDir } from '../support/checkout.ts';
import { mosquitto } from '../support/hub-link.ts';
import { freePort, waitUntil } from '../support/net.ts';
import { spawnPopkitUp } from '../support/up.ts';

const mode = (file: string) => (fs.statSync(file).mode & 0o7777).toString(8).padStart(4, '0');

test('popkit up: private data dir, store, lock and logs under umask 000; logs rotate', {
  timeout: 180_000,
}, async () => {
  if (!process.env['POPKIT_TEST_DIST_BUILT'] || !fs.existsSync(path.join(ROOT, 'dist/.built')))
    execFileSync('bash', ['scripts/build.sh', '--hub-template'], { cwd: ROOT, stdio: 'ignore' });
  const broker = await mosquitto();
  const dataDir = path.join(tempDir('popkit-up-files-'), 'data');
  const layout = dataLayout(dataDir);
  const port = await freePort();
  const umask = process.umask(0o000);
  const run = spawnPopkitUp(['--no-media'], {
    POPKIT_RUNTIME: 'dist',
    POPKIT_DATA_DIR: dataDir,
    POPKIT_HTTP_PORT: String(port),
    POPKIT_HUB_URL: broker.url,
    POPKIT_KIT_ID: 'kit-up-files',
    POPKIT_LOG_LEVEL: 'debug',
    POPKIT_LOG_MAX_MB: '0.001',
    POPKIT_LOG_FILES: '2',
  });
  process.umask(umask);
  const { proc: up, exited } = run;
  try {
    await waitUntil(() => run.output().includes('Popkit is up'), 90_000, `popkit up:\n${run.output()}`);
    const base = `http://127.0.0.1:${port}`;
    // the services' start-up logs alone pass 1 KB (kitd's does); a rotated file shows the rotation
    await waitUntil(
      () => fs.readdirSync(layout.logs).some((f) => f.endsWith('.log.1')),
      60_000,
      `a log to rotate: ${fs.existsSync(layout.logs) ? fs.readdirSync(layout.logs).join(', ') : 'no logs dir'}`,
    );
    assert.equal((await fetch(`${base}/v1/catalog`)).status, 200);
    assert.equal(mode(dataDir), '0700');
    assert.equal(mode(layout.store), '0600');
    assert.equal(mode(`${layout.store}-lock`), '0600');
    assert.equal(mode(layout.logs), '0700');
    const logs = fs.readdirSync(layout.logs);
    assert.ok(logs.includes('checkout.log') && logs.includes('sync.log'), logs.join(', '));
    for (const f of logs) assert.equal(mode(path.join(layout.logs, f)), '0600', `${f} is not 0600`);
    assert.ok(!logs.some((f) => f.endsWith('.log.3')), `at most 2 rotated files: ${logs.join(', ')}`);
  } finally {
    up.kill('SIGTERM');
    assert.equal(await exited, 0, run.output());
    await broker.stop();
  }
});
