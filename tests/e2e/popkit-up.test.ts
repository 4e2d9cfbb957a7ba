// `popkit up` as `npm start` runs it (compiled dist/ with the hub's prebuilt database, plain node): the
// whole kit comes up, sells, the order reaches the embedded hub, and Ctrl-C (SIGTERM here) stops every
// process it started.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { readAdminToken } from '../../core/checkout-client.ts';
import { kitStatusView } from '../../core/contracts/kit-status.ts';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { ROOT, tempDir } from '../support/checkout.ts';
import { freePort, waitUntil } from '../support/net.ts';
import { processesUsing } from '../support/processes.ts';
import { spawnPopkitUp } from '../support/up.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Mosquitto processes started with a config inside `dir` (the kit's local bus and the hub's broker). */
function mosquittosIn(dir: string): number[] {
  const pids: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const conf = argv[argv.indexOf('-c') + 1];
      if (path.basename(argv[0] ?? '') === 'mosquitto' && argv.includes('-c') && conf?.startsWith(dir))
        pids.push(Number(pid));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

// both kit modes: split (each service a process, as the containers of a board) and combined (checkout,
// sync and kitd as threads of one `popkit kit` process, a small board's; POPKIT_KIT_MODE)
for (const mode of ['split', 'combined'] as const)
  test(`popkit up (${mode}): kit sells, the order reaches the embedded hub, SIGTERM stops everything`, {
    timeout: 180_000,
  }, async () => {
    // scripts/test.sh builds dist/ once before any test starts (POPKIT_TEST_DIST_BUILT): rebuilding it here
    // would empty dist/ under every other test running beside this one. Run alone, the file builds it.
    if (!process.env['POPKIT_TEST_DIST_BUILT'] || !fs.existsSync(path.join(ROOT, 'dist/.built')))
      execFileSync('bash', ['scripts/build.sh', '--hub-template'], { cwd: ROOT, stdio: 'ignore' });
    const dataDir = tempDir('popkit-up-');
    const [port, hubPort] = [await freePort(), await freePort()];
    // media on: the sim board streams videotestsrc through GStreamer
    const run = spawnPopkitUp([], {
      POPKIT_RUNTIME: 'dist',
      POPKIT_DATA_DIR: dataDir,
      POPKIT_HTTP_PORT: String(port),
      POPKIT_HUB_HTTP_PORT: String(hubPort),
      POPKIT_KIT_ID: 'kit-up-e2e',
      POPKIT_LOG_LEVEL: 'info',
      POPKIT_KIT_MODE: mode,
    });
    const { proc: up, exited } = run;
    try {
      await waitUntil(
        () => run.output().includes('Popkit is up'),
        90_000,
        `popkit up to print its summary:\n${run.output()}`,
      );
      assert.match(run.output(), new RegExp(`http://localhost:${port}/`));
      assert.match(run.output(), /hub\s+embedded/);
      const base = `http://127.0.0.1:${port}`;
      const cat = (await (await fetch(`${base}/v1/catalog`)).json()) as {
        items: Array<{ sku: string; hero?: boolean }>;
      };
      assert.ok(cat.items.length >= 20, 'demo catalog of a couple of dozen SKUs');
      assert.equal(cat.items.filter((i) => i.hero).length, 1, 'one hero drop item');
      const res = await fetch(`${base}/v1/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          lines: [{ sku: 'TEE-BLK-M', qty: 1 }],
          payment: { method: 'token', token: 'tok_sandbox_approve_up_e2e' },
        }),
      });
      assert.equal(res.status, 201);
      const order = (await res.json()) as { id: string };
      // the order travels kit -> sync -> embedded broker -> hub -> ledger, and the ack comes back
      await waitUntil(
        async () => {
          const o = (await (await fetch(`${base}/v1/orders/${order.id}`)).json()) as { syncState: string };
          return o.syncState === 'settled';
        },
        60_000,
        'the order to be settled by the hub',
      );
      const hubToken = fs.readFileSync(path.join(dataDir, 'hub', 'keys', 'hub-admin.token'), 'utf8').trim();
      const ledger = (await (
        await fetch(`http://127.0.0.1:${hubPort}/v1/kits/kit-up-e2e/orders`, {
          headers: { authorization: `Bearer ${hubToken}` },
        })
      ).json()) as { count: number; orders: Array<{ id: string }> };
      assert.ok(
        ledger.orders.some((o) => o.id === order.id),
        'the order is in the hub ledger',
      );
      // as npm start builds it: the hub's first start copied the prebuilt database, no initdb
      assert.match(
        fs.readFileSync(path.join(dataDir, 'logs', 'hub.log'), 'utf8'),
        /hub database created from the prebuilt template/,
      );
      // /v1/status needs a credential: the admin token checkout generated on first boot
      const admin = readAdminToken(dataDir);
      const status: unknown = await (
        await fetch(`${base}/v1/status`, { headers: { authorization: `Bearer ${admin}` } })
      ).json();
      assert.ok(kitStatusView.check(status), kitStatusView.errors(status).join('; '));
      assert.equal(status.sync.link, 'up');
      assert.equal(status.sync.backlog['orders'], 0);
      // media is running too, so SIGTERM has a GStreamer pipeline to stop
      await waitUntil(
        () => ['playing', 'degraded'].includes(readRunStatus(dataDir, 'media')?.state ?? ''),
        60_000,
        'media to play',
      );
    } finally {
      const sup = readRunStatus(dataDir, 'supervisor');
      const brokers = mosquittosIn(dataDir);
      const before = processesUsing(dataDir);
      up.kill('SIGTERM');
      assert.equal(await exited, 0, run.output());
      assert.ok(sup, 'popkit up wrote run/supervisor.json of its contract');
      const names = sup.children.filter((c) => c.pid).map((c) => c.name);
      for (const name of ['checkout', 'sync', 'kitd', 'media', 'hub'])
        assert.ok(names.includes(name), `${name} ran as a child (children: ${names.join(', ')})`);
      // combined: the three parts are threads of the one kit process, split: each a process of its own
      const pidOf = (name: string) => sup.children.find((c) => c.name === name && c.pid)?.pid;
      const partPids = new Set(['checkout', 'sync', 'kitd'].map(pidOf));
      if (mode === 'combined') {
        assert.ok(names.includes('kit'), `the kit process ran (children: ${names.join(', ')})`);
        assert.deepEqual([...partPids], [pidOf('kit')], 'checkout, sync and kitd in the kit process');
      } else {
        assert.ok(!names.includes('kit'), 'no combined process in split mode');
        assert.equal(partPids.size, 3, 'checkout, sync and kitd each a process');
      }
      assert.notEqual(pidOf('media'), pidOf('checkout'), 'media is a process of its own');
      // positive control: both brokers were found running before the signal
      assert.equal(brokers.length, 2, `the local bus and the hub broker: ${before.join('; ')}`);
      for (const c of sup.children)
        if (c.pid) assert.ok(!alive(c.pid), `${c.name} (${c.pid}) still running after popkit up stopped`);
      for (const pid of brokers)
        assert.ok(!alive(pid), `mosquitto ${pid} still running after popkit up stopped`);
      assert.deepEqual(processesUsing(dataDir), [], 'nothing started for this kit outlives popkit up');
    }
  });

test('Ctrl-C during start-up leaves no broker or service running', { timeout: 120_000 }, async () => {
  const dataDir = tempDir('popkit-up-abort-');
  const run = spawnPopkitUp(['--no-media'], {
    POPKIT_DATA_DIR: dataDir,
    POPKIT_HTTP_PORT: String(await freePort()),
    POPKIT_HUB_HTTP_PORT: String(await freePort()),
  });
  const { proc: up, exited } = run;
  // both brokers are up and the hub is starting: the kit is mid start-up
  await waitUntil(
    () => fs.existsSync(path.join(dataDir, 'hub-broker', 'mosquitto.conf')),
    60_000,
    'the hub broker',
  );
  await waitUntil(() => processesUsing(dataDir).length >= 3, 30_000, 'brokers and the hub to be running');
  up.kill('SIGTERM');
  assert.equal(await exited, 130, run.output());
  assert.match(run.output(), /stopping during start-up/);
  assert.doesNotMatch(run.output(), /Popkit is up/);
  assert.deepEqual(processesUsing(dataDir), []);
});
