// `popkit preflight` against a real kit: checkout (real LMDB, in-process fastify on a free port), sync
// and a hub worker over the real Mosquitto into real PostgreSQL, and kitd with simulated power
// devices. First every check passes; then each check is made to fail for its own reason.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { CheckoutClient } from '../../core/checkout-client.ts';
import { LANES } from '../../core/contracts/lanes.ts';
import { writeRunStatus } from '../../core/contracts/run-status.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { loadOrCreateKey } from '../../core/secrets.ts';
import { TokenVault } from '../../core/token-vault.ts';
import { systemTimers } from '../../firmware/edge-timer.ts';
import { Kitd } from '../../firmware/kitd.ts';
import { type PreflightOptions, type PreflightReport, runPreflight } from '../../firmware/preflight.ts';
import { UpdateLock } from '../../firmware/update-lock.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import { createPowerSources } from '../../hardware/factories/power-sources.ts';
import { BatteryModel } from '../../hardware/sim/battery-model.ts';
import { SimGpio } from '../../hardware/sim/gpio-sim.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  ADMIN,
  auth,
  BIN,
  DEMO_CATALOG,
  kitEnv,
  startCheckout,
  syncRunStatus,
  tempDir,
} from '../support/checkout.ts';
import {
  dropSchema,
  type Mosquitto,
  mosquitto,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';
import { testKitdSettings } from '../support/kitd.ts';

const schema = uniqueId('t_preflight').replace(/-/g, '_');
const board = getBoardProfile('sim');
let hub: HubService;
let gateway: SandboxGateway;
let kit: Awaited<ReturnType<typeof startCheckout>>;
let baseUrl: string;
let sync: SyncService;
let kitd: Kitd;
let battery: BatteryModel;
// a private broker: the hub's shared-subscription group on the shared Mosquitto is joined by every
// hub test running at the same time, so acks there depend on other files' workers
let broker: Mosquitto;

function options(over: Partial<PreflightOptions> = {}): PreflightOptions {
  return {
    checkout: new CheckoutClient(baseUrl, () => ADMIN),
    hubHttpUrl: hub.httpUrl,
    hubAdminToken: hub.adminToken,
    dataDir: kit.dataDir,
    plannedEventMin: 240,
    lowSocPct: 30,
    capacityWh: 1280,
    minFreeMb: 1,
    queueWaitMs: 8000,
    // the logic is under test here, not the speed of a busy CI machine
    catalogMaxMs: 5000,
    maxClockSkewS: 5,
    clockFloor: Date.UTC(2025, 0, 1),
    ...over,
  };
}

const byId = (r: PreflightReport) => Object.fromEntries(r.checks.map((c) => [c.id, c]));

async function startKitd(dataDir: string, url: string, socPct: number): Promise<Kitd> {
  battery = new BatteryModel({ socPct, loadW: 20, capacityWh: 1280 });
  battery.setSolarW(0);
  const k = new Kitd({
    kitId: 'pf',
    dataDir,
    board,
    gpio: new SimGpio(),
    powerSources: createPowerSources(board, { sim: true, battery, pollMs: 200 }),
    checkout: new CheckoutClient(url, () => ADMIN),
    lock: new UpdateLock(3_600_000, { POPKIT_HOST_ROOT: tempDir('pf-root-') }),
    timers: systemTimers,
    settings: testKitdSettings(),
  });
  await k.start();
  return k;
}

describe('pre-flight against a running kit', () => {
  before(async () => {
    gateway = new SandboxGateway();
    broker = await mosquitto();
    // the gateway goes down between checks below: no cached answer of GET /v1/gateway
    hub = await startHub({
      schema,
      gateway,
      brokerUrl: broker.url,
      env: { POPKIT_HUB_GATEWAY_CHECK_CACHE_S: '0' },
    });
    kit = await startCheckout({ POPKIT_KIT_ID: uniqueId('pf') });
    baseUrl = (await kit.app.listen({ port: 0, host: '127.0.0.1' })).replace('0.0.0.0', '127.0.0.1');
    const put = await kit.app.inject({
      method: 'PUT',
      url: '/v1/catalog',
      headers: { authorization: `Bearer ${ADMIN}` },
      payload: DEMO_CATALOG,
    });
    assert.equal(put.statusCode, 200, put.body);
    const vault = new TokenVault(loadOrCreateKey(dataLayout(kit.dataDir).tokenKey).value);
    const kitId = String(kitEnv(kit.dataDir, {})['POPKIT_KIT_ID']);
    const status = (await (await fetch(`${baseUrl}/v1/status`, { headers: auth })).json()) as {
      kitId: string;
    };
    const testKit = {
      kitId: status.kitId ?? kitId,
      dataDir: kit.dataDir,
      store: kit.kit.store,
      vault,
    } as unknown as TestKit;
    sync = startSync(testKit, broker.url, { POPKIT_HUB_PUBLIC_KEY_FILE: hub.publicKeyFile });
    kitd = await startKitd(kit.dataDir, baseUrl, 85);
    await waitFor(
      async () => {
        const s = (await (await fetch(`${baseUrl}/v1/status`, { headers: auth })).json()) as {
          sync: { link: string };
          power: unknown[] | null;
        };
        return s.sync.link === 'up' && Array.isArray(s.power) && s.power.length > 0;
      },
      20_000,
      'sync link up and kitd power in /v1/status',
    );
  });

  after(async () => {
    await kitd?.stop();
    await sync?.stop();
    await kit?.app.close();
    await kit?.kit.store.close();
    await hub?.stop();
    await broker?.stop();
    await dropSchema(schema);
  });

  test('every check passes on a healthy kit, and the probe entry is forwarded', async () => {
    const r = await runPreflight(options());
    const failed = r.checks.filter((c) => !c.ok).map((c) => `${c.id}: ${c.detail}`);
    assert.deepEqual(failed, []);
    assert.equal(r.ok, true);
    assert.deepEqual(
      r.checks.map((c) => c.id),
      [
        'edge',
        'cache',
        'images',
        'payment',
        'queue',
        'connectivity',
        'uplinks',
        'power',
        'storage',
        'clock',
        'saleClock',
      ],
    );
    const c = byId(r);
    assert.equal(c['queue']?.data?.['outcome'], 'forwarded');
    assert.equal(c['cache']?.data?.['top'], Math.min(20, DEMO_CATALOG.items.length));
    assert.equal(c['payment']?.data?.['sandbox'], true);
    assert.equal(c['connectivity']?.data?.['lossPct'], 0);
  });

  test('the CLI prints one line per check and exits 0 only when all pass (here: storage fails)', async () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [BIN, 'preflight', ...args], {
          env: {
            ...kitEnv(kit.dataDir),
            POPKIT_CHECKOUT_URL: baseUrl,
            POPKIT_HUB_HTTP_URL: hub.httpUrl,
            POPKIT_HUB_ADMIN_TOKEN: hub.adminToken,
            POPKIT_EVENT_PLANNED_MIN: '60',
            ...env,
          },
        });
        let out = '';
        child.stdout.on('data', (d) => {
          out += String(d);
        });
        child.on('exit', (code) => resolve({ code, out }));
      });
    const human = await run(['--queue-wait-ms', '8000']);

    assert.equal(human.code, 0, human.out);
    assert.equal(human.out.trim().split('\n').length, 12);
    assert.match(human.out, /^PASS {2}edge node booted/m);
    // the hub is on this machine: the links are listed, not probed one by one, and that passes
    // unless the event requires redundant uplinks
    assert.match(human.out, /^PASS {2}hub reached over each link/m);
    const json = await run(['--json', '--min-free-mb', '999999999']);
    assert.equal(json.code, 1);
    const report = JSON.parse(json.out) as PreflightReport;
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.checks.filter((c) => !c.ok).map((c) => c.id),
      ['storage'],
    );
    const bad = await run(['--min-free-mb', 'lots']);
    assert.equal(bad.code, 2);
    // the event requires redundant uplinks: the links cannot be probed one by one here, so it fails
    const redundant = await run(['--json'], { POPKIT_PREFLIGHT_REDUNDANCY: 'required' });
    assert.equal(redundant.code, 1);
    const rr = JSON.parse(redundant.out) as PreflightReport;
    assert.deepEqual(
      rr.checks.filter((c) => !c.ok).map((c) => c.id),
      ['uplinks'],
    );
    assert.match(
      rr.checks.find((c) => c.id === 'uplinks')?.detail ?? '',
      /POPKIT_PREFLIGHT_REDUNDANCY=required/,
    );
  });

  test("payment fails without the hub's admin token, and says which", async () => {
    const c = byId(await runPreflight(options({ hubAdminToken: undefined, queueWaitMs: 3000 })));
    assert.equal(c['payment']?.ok, false);
    assert.match(c['payment']?.detail ?? '', /401.*POPKIT_HUB_ADMIN_TOKEN/);
  });

  test('payment fails when the gateway cannot exchange the test token', async () => {
    gateway.setAvailable(false);
    try {
      const c = byId(await runPreflight(options({ queueWaitMs: 3000 })));
      assert.equal(c['payment']?.ok, false);
      assert.equal(c['edge']?.ok, true);
    } finally {
      gateway.setAvailable(true);
    }
  });

  test('an unreachable hub fails payment and connectivity; the clock is then not skew-checked', async () => {
    const r = await runPreflight(options({ hubHttpUrl: 'http://127.0.0.1:9', queueWaitMs: 3000 }));
    const c = byId(r);
    assert.equal(c['payment']?.ok, false);
    assert.equal(c['connectivity']?.ok, false);
    assert.match(c['connectivity']?.detail ?? '', /unreachable/);
    assert.equal(c['clock']?.ok, true);
    assert.equal(r.ok, false);
  });

  test('storage and clock fail on their own thresholds', async () => {
    const c = byId(
      await runPreflight(options({ minFreeMb: 1e12, now: () => Date.now() + 120_000, queueWaitMs: 3000 })),
    );
    assert.equal(c['storage']?.ok, false);
    assert.equal(c['clock']?.ok, false);
    assert.match(c['clock']?.detail ?? '', /off the hub/);
    const unset = byId(await runPreflight(options({ now: () => 86_400_000, queueWaitMs: 3000 })));
    assert.equal(unset['clock']?.ok, false);
    assert.match(unset['clock']?.detail ?? '', /not set/);
  });

  test('a cache that is too slow is not "served from the kit"', async () => {
    const c = byId(await runPreflight(options({ catalogMaxMs: 0, queueWaitMs: 3000 })));
    assert.equal(c['cache']?.ok, false);
    assert.match(c['cache']?.detail ?? '', /not served from the kit/);
  });

  test('power fails when SOC is low or time-to-go does not cover the planned event', async () => {
    battery.setSocPct(25);
    await waitFor(
      async () => {
        const s = (await (await fetch(`${baseUrl}/v1/status`, { headers: auth })).json()) as {
          kitd: { powerPolicy: { battery: { socPct?: number } } };
        };
        return (s.kitd?.powerPolicy?.battery?.socPct ?? 100) < 30;
      },
      10_000,
      'kitd sees the low battery',
    );
    const low = byId(await runPreflight(options({ queueWaitMs: 3000 })));
    assert.equal(low['power']?.ok, false);
    assert.match(low['power']?.detail ?? '', /low mark/);
    battery.setSocPct(85);
    battery.setLoadW(400);
    await waitFor(
      async () => {
        const s = (await (await fetch(`${baseUrl}/v1/status`, { headers: auth })).json()) as {
          kitd: { powerPolicy: { battery: { socPct?: number; ttgMin?: number } } };
        };
        const b = s.kitd?.powerPolicy?.battery;
        return (b?.socPct ?? 0) > 50 && (b?.ttgMin ?? 1e9) < 240;
      },
      10_000,
      'kitd sees the heavy load',
    );
    const short = byId(await runPreflight(options({ queueWaitMs: 3000 })));
    assert.equal(short['power']?.ok, false);
    assert.match(short['power']?.detail ?? '', /min to go/);
    battery.setLoadW(20);
  });
});

describe('pre-flight against a bare kit (no sync, no kitd, no catalog)', () => {
  let bare: Awaited<ReturnType<typeof startCheckout>>;
  let url: string;
  before(async () => {
    bare = await startCheckout({ POPKIT_KIT_ID: uniqueId('bare') });
    url = (await bare.app.listen({ port: 0, host: '127.0.0.1' })).replace('0.0.0.0', '127.0.0.1');
  });
  after(async () => {
    await bare?.app.close();
    await bare?.kit.store.close();
  });
  const opts = (over: Partial<PreflightOptions> = {}) =>
    options({
      checkout: new CheckoutClient(url, () => ADMIN),
      dataDir: bare.dataDir,
      queueWaitMs: 1500,
      ...over,
    });

  test('no catalog (not ready to sell), a cold cache, no sync and no power readings each fail', async () => {
    const c = byId(await runPreflight(opts()));
    assert.equal(c['edge']?.ok, false);
    assert.match(c['edge']?.detail ?? '', /not ready \(\/healthz 503: no catalog loaded\)/);
    assert.equal(c['cache']?.ok, false);
    assert.match(c['cache']?.detail ?? '', /no catalog/);
    assert.equal(c['queue']?.ok, false);
    assert.match(c['queue']?.detail ?? '', /sync is not running/);
    assert.equal(c['power']?.ok, false);
  });

  test('queue: link reported up but nothing forwards → fail; link down → queued (offline) passes', async () => {
    writeRunStatus(bare.dataDir, 'sync', syncRunStatus('up'));
    const stuck = byId(await runPreflight(opts()));
    assert.equal(stuck['queue']?.ok, false);
    assert.match(stuck['queue']?.detail ?? '', /not forwarded/);
    const left = [
      ...bare.kit.store.outbox.getRange({ start: [LANES.health, ''], end: [LANES.health + 1, ''] }),
    ];
    assert.equal(left.length, 0, 'a stuck probe is removed again');
    writeRunStatus(bare.dataDir, 'sync', syncRunStatus('down'));
    const offline = byId(await runPreflight(opts()));
    assert.equal(offline['queue']?.ok, true);
    assert.equal(offline['queue']?.data?.['outcome'], 'queued');
  });

  test('a checkout that is not there fails the edge check', async () => {
    const c = byId(
      await runPreflight(opts({ checkout: new CheckoutClient('http://127.0.0.1:9', () => ADMIN) })),
    );
    assert.equal(c['edge']?.ok, false);
    assert.match(c['edge']?.detail ?? '', /unreachable/);
  });
});
