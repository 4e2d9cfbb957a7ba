// The small board's kit (POPKIT_KIT_MODE=combined): checkout, sync and kitd are threads of one `popkit
// kit` process under `popkit up`. A part restarted on its own (as kitd's watchdog asks over the local
// bus) comes back in a new thread while the others keep their threads and checkout keeps selling, and
// every order checkout acknowledged (201) reaches the embedded hub's ledger. (An uncaught exception
// ending one worker only: tests/integration/worker-supervisor.test.ts, on real threads.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import mqtt from 'mqtt';
import { localTopics } from '../../core/contracts/local-bus.ts';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { ROOT, tempDir } from '../support/checkout.ts';
import { freePort, waitUntil } from '../support/net.ts';
import { spawnPopkitUp } from '../support/up.ts';

type Part = 'checkout' | 'sync' | 'kitd';

function partsOf(
  dataDir: string,
): Map<string, { threadId: number | null; restarts: number; running: boolean }> {
  return new Map((readRunStatus(dataDir, 'kit')?.parts ?? []).map((p) => [p.name, p]));
}

test('combined kit: a part restarted alone; checkout keeps selling; no acknowledged order is lost', {
  timeout: 240_000,
}, async () => {
  if (!process.env['POPKIT_TEST_DIST_BUILT'] || !fs.existsSync(path.join(ROOT, 'dist/.built')))
    execFileSync('bash', ['scripts/build.sh'], { cwd: ROOT, stdio: 'ignore' });
  const dataDir = tempDir('popkit-kit-combined-');
  const [port, hubPort] = [await freePort(), await freePort()];
  const run = spawnPopkitUp(['--no-media'], {
    POPKIT_RUNTIME: 'dist',
    POPKIT_KIT_MODE: 'combined',
    POPKIT_DATA_DIR: dataDir,
    POPKIT_HTTP_PORT: String(port),
    POPKIT_HUB_HTTP_PORT: String(hubPort),
    POPKIT_KIT_ID: 'kit-combined-e2e',
    POPKIT_BUYER_RATE_PER_MIN: '100000',
  });
  const base = `http://127.0.0.1:${port}`;
  const acknowledged: string[] = [];
  let failed = 0;
  let n = 0;
  const sell = async () => {
    n++;
    const res = await fetch(`${base}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        lines: [{ sku: 'TEE-BLK-M', qty: 1 }],
        payment: { method: 'token', token: `tok_sandbox_approve_combined_${n}` },
      }),
    });
    if (res.status === 201) acknowledged.push(((await res.json()) as { id: string }).id);
    else failed++;
    return res.status;
  };
  let bus: mqtt.MqttClient | undefined;
  try {
    await waitUntil(() => run.output().includes('Popkit is up'), 90_000, `popkit up:\n${run.output()}`);
    assert.match(run.output(), /kit \(checkout, sync, kitd as threads\)/);
    const busUrl = /local bus\s+(mqtt:\/\/\S+)/.exec(run.output())?.[1];
    assert.ok(busUrl, 'the banner names the local bus');
    assert.equal(await sell(), 201);
    await waitUntil(() => partsOf(dataDir).size === 3, 10_000, 'run/kit.json with the three parts');
    bus = await mqtt.connectAsync(busUrl, { clientId: `kit-combined-test-${process.pid}` });
    const topic = localTopics().supervisorCmd;

    for (const victim of ['sync', 'checkout'] as Part[]) {
      const before = partsOf(dataDir);
      const others = (['checkout', 'sync', 'kitd'] as Part[]).filter((p) => p !== victim);
      // the watchdog's request: restart one part
      await bus.publishAsync(topic, JSON.stringify({ v: 1, cmd: 'restart', service: victim }), { qos: 1 });
      // keep selling while it goes and comes back
      const statuses: number[] = [];
      await waitUntil(
        async () => {
          statuses.push(await sell().catch(() => 0));
          const p = partsOf(dataDir).get(victim);
          return (
            p?.running === true &&
            p.restarts === (before.get(victim)?.restarts ?? 0) + 1 &&
            p.threadId !== before.get(victim)?.threadId
          );
        },
        60_000,
        `${victim} restarted in a new thread`,
      );
      const after = partsOf(dataDir);
      for (const o of others) {
        assert.equal(after.get(o)?.threadId, before.get(o)?.threadId, `${o} kept its thread`);
        assert.equal(after.get(o)?.restarts, before.get(o)?.restarts, `${o} was not restarted`);
      }
      // checkout answered throughout the sync restart (its own restart refuses connections briefly)
      if (victim === 'sync')
        assert.ok(
          statuses.every((s) => s === 201),
          `checkout sold while sync restarted: ${statuses.join(',')}`,
        );
      // and sells after the restart either way
      await waitUntil(async () => (await sell().catch(() => 0)) === 201, 30_000, 'a sale after the restart');
    }
    assert.ok(acknowledged.length >= 4, `orders acknowledged: ${acknowledged.length} (${failed} refused)`);

    // every acknowledged order reaches the hub's ledger
    const hubToken = fs.readFileSync(path.join(dataDir, 'hub', 'keys', 'hub-admin.token'), 'utf8').trim();
    let missing: string[] = acknowledged;
    await waitUntil(
      async () => {
        const ledger = (await (
          await fetch(`http://127.0.0.1:${hubPort}/v1/kits/kit-combined-e2e/orders?limit=1000`, {
            headers: { authorization: `Bearer ${hubToken}` },
          })
        ).json()) as { orders: Array<{ id: string }> };
        const ids = new Set(ledger.orders.map((o) => o.id));
        missing = acknowledged.filter((id) => !ids.has(id));
        return missing.length === 0;
      },
      90_000,
      'every acknowledged order in the hub ledger',
    );
    assert.deepEqual(missing, []);
  } finally {
    await bus?.endAsync(true);
    run.proc.kill('SIGTERM');
    assert.equal(await run.exited, 0, run.output());
  }
});
