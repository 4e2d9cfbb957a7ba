// kitd wired to real parts: a real checkout (LMDB, HTTP), the real Mosquitto with a private topic
// prefix, the simulated GPIO chip and simulated power devices, the balena supervisor stand-in and an
// update lock under a temp host root. Lifecycle over a live event, update lock and OTA after the
// event, watchdog restarts, critical power, and the last will of a killed kitd.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { CheckoutClient } from '../../core/checkout-client.ts';
import { kitStatusView } from '../../core/contracts/kit-status.ts';
import type { MediaStats } from '../../core/contracts/media.ts';
import { readRunStatus, writeRunStatus } from '../../core/contracts/run-status.ts';
import { applyOrderAck } from '../../core/store/index.ts';
import { parseButtonMap } from '../../firmware/buttons.ts';
import { systemTimers } from '../../firmware/edge-timer.ts';
import { Kitd, type KitdSettings } from '../../firmware/kitd.ts';
import { MqttKitdBus, readKitdCommand } from '../../firmware/local-bus.ts';
import { SupervisorClient } from '../../firmware/supervisor-client.ts';
import { UpdateLock } from '../../firmware/update-lock.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import { createPowerSources } from '../../hardware/factories/power-sources.ts';
import { BatteryModel } from '../../hardware/sim/battery-model.ts';
import { SimGpio } from '../../hardware/sim/gpio-sim.ts';
import { ADMIN, BIN, DEMO_CATALOG, kitEnv, startCheckout, tempDir } from '../support/checkout.ts';
import { type Mosquitto, mosquitto, uniqueId, waitFor } from '../support/hub-link.ts';
import { testKitdSettings } from '../support/kitd.ts';
import { type SupervisorStandIn, startSupervisorStandIn } from '../support/supervisor-stand-in.ts';

const board = getBoardProfile('sim');

/** what a media process writes to run/media.json as it comes back up */
const RESTARTED_MEDIA: MediaStats = {
  state: 'starting',
  board: 'sim',
  encoder: 'x264',
  fps: 0,
  droppedFrames: 0,
  bitrateKbps: 0,
  measuredKbps: null,
  ladderStep: 0,
  ladderSteps: 1,
  width: 0,
  height: 0,
  targetFps: 30,
  restarts: 1,
  rebuilds: 0,
  newestSegmentAgeMs: null,
  cpuCores: null,
  machineCpu: null,
  playlist: 'index.m3u8',
};

interface Rig {
  kitd: Kitd;
  gpio: SimGpio;
  battery: BatteryModel;
  bus: MqttKitdBus;
  lockFile: string;
  stop(): Promise<void>;
}

function settings(over: Partial<KitdSettings> = {}): KitdSettings {
  return testKitdSettings({
    plannedEventMin: 60,
    power: { flushTimeoutMs: 3000 },
    buttons: parseButtonMap('a.long=toggle-event,a.short=mark-moment,b.double=identify,b.long=safe-shutdown'),
    buttonOptions: { longMs: 600 },
    deviceEveryMs: 200,
    ...over,
  });
}

let broker: Mosquitto;
let checkout: Awaited<ReturnType<typeof startCheckout>>;
let baseUrl: string;
let prefix: string;
let spy: mqtt.MqttClient;
const seen: Array<{ topic: string; body: Record<string, unknown>; retain: boolean }> = [];

async function rig(opts: {
  supervisor?: SupervisorStandIn;
  root: string;
  over?: Partial<KitdSettings>;
  soc?: number;
}): Promise<Rig> {
  const gpio = new SimGpio();
  const battery = new BatteryModel({ socPct: opts.soc ?? 85, loadW: 20, capacityWh: 1280 });
  battery.setSolarW(0);
  const bus = new MqttKitdBus(broker.url, prefix, 'kitd-test');
  bus.start();
  const env = { POPKIT_HOST_ROOT: opts.root };
  const lock = new UpdateLock(3_600_000, env);
  const sup = opts.supervisor
    ? new SupervisorClient({
        address: opts.supervisor.address,
        apiKey: opts.supervisor.apiKey,
        appId: opts.supervisor.appId,
      })
    : undefined;
  const kitd = new Kitd({
    kitId: 'kitd-test',
    dataDir: checkout.dataDir,
    board,
    gpio,
    powerSources: createPowerSources(board, { sim: true, battery, pollMs: 200 }),
    checkout: new CheckoutClient(baseUrl, () => ADMIN),
    lock,
    timers: systemTimers,
    settings: settings(opts.over),
    bus,
    simGpio: gpio,
    ...(sup ? { supervisor: sup } : {}),
  });
  await waitFor(() => bus.connected, 15_000, 'bus connected');
  await kitd.start();
  return {
    kitd,
    gpio,
    battery,
    bus,
    lockFile: lock.file,
    stop: async () => {
      await kitd.stop();
      await bus.close();
    },
  };
}

async function api(method: string, p: string, body?: unknown) {
  const res = await fetch(baseUrl + p, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : null,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('kitd with a real checkout, the real Mosquitto, sim GPIO and sim power', () => {
  before(async () => {
    broker = await mosquitto(); // a broker of its own: no other test file hears these topics
    checkout = await startCheckout({ POPKIT_KIT_ID: uniqueId('kitd') });
    baseUrl = (await checkout.app.listen({ port: 0, host: '127.0.0.1' })).replace('0.0.0.0', '127.0.0.1');
    const put = await checkout.app.inject({
      method: 'PUT',
      url: '/v1/catalog',
      headers: { authorization: `Bearer ${ADMIN}` },
      payload: DEMO_CATALOG,
    });
    assert.equal(put.statusCode, 200);
    prefix = `test/${uniqueId('kitd')}/local`;
    spy = await mqtt.connectAsync(broker.url, { clientId: uniqueId('spy') });
    spy.on('message', (topic, payload, packet) => {
      if (payload.length === 0) return;
      seen.push({
        topic,
        body: JSON.parse(payload.toString()) as Record<string, unknown>,
        retain: packet.retain,
      });
    });
    await spy.subscribeAsync(`${prefix}/#`, { qos: 1 });
  });

  after(async () => {
    // clear the retained status (the broker is private now; kept as tidy-up)
    await spy?.publishAsync(`${prefix}/kitd/status`, '', { retain: true });
    await spy?.endAsync();
    await checkout?.app.close();
    await checkout?.kit.store.close();
    await broker?.stop();
  });

  test('ready → live → draining → ready by button, with the update lock held live and released after; OTA applied after the event', async () => {
    const root = tempDir('kitd-root-');
    const sup = await startSupervisorStandIn({ lockFile: path.join(root, 'tmp/balena/updates.lock') });
    sup.device['update_pending'] = true;
    const r = await rig({ supervisor: sup, root });
    try {
      await waitFor(() => r.kitd.lifecycle.state === 'ready', 20_000, 'ready');
      assert.equal(r.gpio.level('ledGreen'), 1, 'ready is solid green');
      await waitFor(
        () =>
          (r.kitd.status()['pendingUpdate'] as { update_pending?: boolean } | null)?.update_pending === true,
        5000,
        'pending update seen',
      );
      // ready with nothing unsynced: the pending update may land at once (after-event policy)
      await waitFor(
        () => sup.calls.some((c) => c.path === '/v1/update'),
        15_000,
        'update released while idle',
      );
      sup.device['update_pending'] = true;

      // long press A: toggle-event → live
      await r.gpio.press('buttonA', 800);
      await waitFor(() => r.kitd.lifecycle.state === 'live', 15_000, 'live');
      await waitFor(() => fs.existsSync(r.lockFile), 15_000, 'lock file');
      assert.equal(JSON.parse(fs.readFileSync(r.lockFile, 'utf8')).reason, 'event-live');
      assert.equal((r.kitd.status()['leds'] as { green: { pattern: string } }).green.pattern, 'heartbeat');
      const updatesBefore = sup.calls.filter((c) => c.path === '/v1/update').length;

      // a sale while live, then stop the event with the same button: draining while the order is unsynced
      const order = await api('POST', '/v1/orders', {
        lines: [{ sku: DEMO_CATALOG.items[0].sku, qty: 1 }],
        payment: { method: 'cash' },
      });
      assert.equal(order.status, 201);
      await r.gpio.press('buttonA', 800);
      await waitFor(() => r.kitd.lifecycle.state === 'draining', 15_000, 'draining');
      await waitFor(
        () => JSON.parse(fs.readFileSync(r.lockFile, 'utf8')).reason === 'unsynced-orders',
        3000,
        'lock reason',
      );
      // not a sleep: wait until kitd has asked for the device state (update_pending: true) three more
      // times since the lock said unsynced-orders, so its update policy has run on a known pending
      // update while locked; only then is "no update call" a finding
      const devicePolls = () => sup.calls.filter((c) => c.path === '/v1/device').length;
      const pollsAtLock = devicePolls();
      await waitFor(() => devicePolls() >= pollsAtLock + 3, 15_000, 'kitd polling the device while locked');
      assert.equal(r.kitd.lifecycle.state, 'draining');
      assert.equal(
        sup.calls.filter((c) => c.path === '/v1/update').length,
        updatesBefore,
        'no update while locked',
      );

      // the hub acks the order (the same transaction sync runs): drained → ready, lock gone, update applied
      const store = checkout.kit.store;
      await applyOrderAck(store, String(order.body['id']), { state: 'settled' });
      await waitFor(() => r.kitd.lifecycle.state === 'ready', 15_000, 'ready again');
      await waitFor(() => !fs.existsSync(r.lockFile), 15_000, 'lock released');
      await waitFor(
        () => sup.calls.filter((c) => c.path === '/v1/update').length > updatesBefore,
        5000,
        'update after the event',
      );

      // transitions were published, status is retained, /v1/status mirrors the box. The last one is
      // published as kitd turns ready and reaches the spy through the broker a moment later: wait for it
      const transitions = () =>
        seen
          .filter((m) => m.topic === `${prefix}/kitd/events` && 'to' in m.body)
          .map((m) => `${m.body['from']}>${m.body['to']}`);
      await waitFor(() => transitions().includes('draining>ready'), 5000, 'draining>ready on the bus');
      assert.deepEqual(transitions().slice(0, 4), [
        'booting>preflight',
        'preflight>ready',
        'ready>live',
        'live>draining',
      ]);
      const buttons = seen
        .filter((m) => m.body['type'] === 'button')
        .map((m) => `${m.body['press']}:${m.body['action']}`);
      assert.deepEqual(buttons, ['long:toggle-event', 'long:toggle-event']);
      await waitFor(
        async () => {
          const s = (await api('GET', '/v1/status')).body as {
            state: string;
            leds: { green: { pattern: string } };
            power: unknown[];
            health: unknown;
            updateLock: { held: boolean };
          };
          return (
            s.state === 'ready' &&
            s.leds.green.pattern === 'on' &&
            s.power.length === 3 &&
            s.health !== null &&
            s.updateLock.held === false
          );
        },
        5000,
        '/v1/status shows kitd',
      );
      // what kitd writes is its contract's shape (readRunStatus parses; a wrong shape reads as absent)
      assert.equal(readRunStatus(checkout.dataDir, 'kitd')?.state, 'ready');
      assert.ok(
        kitStatusView.check((await api('GET', '/v1/status')).body),
        '/v1/status matches its contract',
      );
    } finally {
      await r.stop();
      await sup.close();
    }
  });

  test('watchdog: a silent media is restarted through the supervisor (forced past our own live lock), then seen up', async () => {
    const root = tempDir('kitd-root-');
    const sup = await startSupervisorStandIn({ lockFile: path.join(root, 'tmp/balena/updates.lock') });
    // the only service watched here is media
    sup.onRestart = () => writeRunStatus(checkout.dataDir, 'media', RESTARTED_MEDIA);
    fs.rmSync(path.join(checkout.dataDir, 'run', 'media.json'), { force: true });
    const r = await rig({
      supervisor: sup,
      root,
      over: { watchdog: { services: ['media'], staleMs: 2000, graceMs: 1000, backoffInitialMs: 5000 } },
    });
    try {
      await api('POST', '/v1/event/start', {});
      await waitFor(() => fs.existsSync(r.lockFile), 15_000, 'live lock');
      const call = await waitFor(
        () => sup.calls.find((c) => c.path.endsWith('/restart-service')),
        8000,
        'restart-service',
      );
      assert.deepEqual(call.body, { serviceName: 'media', force: true });
      assert.equal(call.status, 200);
      assert.equal(
        (r.kitd.status()['services'] as Record<string, { restarts: number }>)['media']?.restarts,
        1,
      );
      // the restarted media writes its status: up again, and the degraded overlay clears
      await waitFor(
        () => (r.kitd.status()['services'] as Record<string, { state: string }>)['media']?.state === 'up',
        5000,
        'media up',
      );
      await waitFor(
        () => !r.kitd.lifecycle.reasons('degraded').includes('service-down'),
        3000,
        'overlay cleared',
      );
      await api('POST', '/v1/event/stop');
    } finally {
      await r.stop();
      await sup.close();
    }
  });

  test('inside popkit up (no supervisor) the watchdog asks over the local bus', async () => {
    const root = tempDir('kitd-root-');
    fs.rmSync(path.join(checkout.dataDir, 'run', 'sync.json'), { force: true });
    const r = await rig({ root, over: { watchdog: { services: ['sync'], staleMs: 1000, graceMs: 500 } } });
    try {
      const cmd = await waitFor(
        () => seen.find((m) => m.topic === `${prefix}/supervisor/cmd`),
        8000,
        'restart command',
      );
      assert.deepEqual(cmd.body, { v: 1, cmd: 'restart', service: 'sync' });
    } finally {
      await r.stop();
    }
  });

  test('commands on the bus: a simulated press and identify', async () => {
    const root = tempDir('kitd-root-');
    const r = await rig({ root });
    try {
      await waitFor(() => r.kitd.lifecycle.state === 'ready', 20_000, 'ready');
      await spy.publishAsync(
        `${prefix}/kitd/cmd`,
        JSON.stringify({ v: 1, cmd: 'press', button: 'a', ms: 100 }),
      );
      await waitFor(
        () => r.kitd.actionsTaken.some((a) => a.action === 'mark-moment' && a.ok),
        5000,
        'moment marked',
      );
      await spy.publishAsync(`${prefix}/kitd/cmd`, JSON.stringify({ v: 1, cmd: 'identify' }));
      await waitFor(
        () => (r.kitd.status()['leds'] as { green: { pattern: string } }).green.pattern === 'identify',
        3000,
        'identify',
      );
      // an unknown action is refused where commands come in, and nothing happens
      assert.throws(() => readKitdCommand({ cmd: 'action', action: 'self-destruct' }), {
        code: 'BAD_REQUEST',
        message: "unknown action 'self-destruct'",
      });
      await spy.publishAsync(
        `${prefix}/kitd/cmd`,
        JSON.stringify({ v: 1, cmd: 'action', action: 'self-destruct' }),
      );
      await r.kitd.step();
      assert.equal(r.kitd.lifecycle.state, 'ready');
    } finally {
      await r.stop();
    }
  });

  test('critical battery: media paused, lock released, kit off and shut down through the supervisor; orders still taken until then', async () => {
    const root = tempDir('kitd-root-');
    const lockFile = path.join(root, 'tmp/balena/updates.lock');
    const sup = await startSupervisorStandIn({ lockFile });
    const r = await rig({ supervisor: sup, root, soc: 40 });
    try {
      await waitFor(() => r.kitd.lifecycle.state === 'ready', 20_000, 'ready');
      await api('POST', '/v1/event/start', {});
      await waitFor(() => r.kitd.lifecycle.state === 'live', 15_000, 'live');
      r.battery.setSocPct(20);
      await waitFor(
        () => seen.some((m) => m.topic === `${prefix}/media/cmd` && m.body['cmd'] === 'step-down'),
        5000,
        'step-down',
      );
      assert.ok(r.kitd.lifecycle.reasons('degraded').includes('power-low'));
      const sale = await api('POST', '/v1/orders', {
        lines: [{ sku: DEMO_CATALOG.items[0].sku, qty: 1 }],
        payment: { method: 'cash' },
      });
      assert.equal(sale.status, 201, 'low battery never stops orders');
      r.battery.setSocPct(5);
      await waitFor(() => sup.calls.some((c) => c.path === '/v1/shutdown'), 15_000, 'shutdown');
      assert.equal(r.kitd.lifecycle.state, 'off');
      assert.ok(seen.some((m) => m.topic === `${prefix}/media/cmd` && m.body['cmd'] === 'pause'));
      assert.ok(seen.some((m) => m.body['type'] === 'power-critical'));
      const shutdown = sup.calls.filter((c) => c.path === '/v1/shutdown');
      assert.deepEqual(shutdown.at(-1)?.body, { force: false });
      assert.equal(shutdown.at(-1)?.status, 202, 'accepted: kitd released its own lock first');
      assert.equal(fs.existsSync(lockFile), false);
      assert.equal(r.gpio.level('ledGreen'), 0);
      assert.equal(r.gpio.level('ledRed'), 0);
      await api('POST', '/v1/event/stop');
      const store = checkout.kit.store;
      await applyOrderAck(store, String(sale.body['id']), { state: 'settled' });
    } finally {
      await r.stop();
      await sup.close();
    }
  });

  test('a stale lock left by a crashed kitd is healed at boot', async () => {
    const root = tempDir('kitd-root-');
    const lockFile = path.join(root, 'tmp/balena/updates.lock');
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    fs.writeFileSync(
      lockFile,
      JSON.stringify({
        owner: 'popkit-kitd',
        instance: 'crashed-one',
        pid: 1,
        reason: 'event-live',
        since: '2026-01-01T00:00:00Z',
        expiresAt: '2026-01-02T00:00:00Z',
      }),
    );
    const r = await rig({ root });
    try {
      const lock = r.kitd.status()['updateLock'] as { held: boolean; healedAtBoot: boolean };
      assert.equal(lock.healedAtBoot, true);
      await waitFor(() => r.kitd.lifecycle.state === 'ready', 20_000, 'ready');
      assert.equal(fs.existsSync(lockFile), false);
    } finally {
      await r.stop();
    }
  });

  test('popkit kitd as a process: retained status online, and the last will says offline when it is killed', async () => {
    const childPrefix = `test/${uniqueId('will')}/local`;
    const watcher = await mqtt.connectAsync(broker.url, { clientId: uniqueId('will-spy') });
    const statuses: Array<Record<string, unknown>> = [];
    watcher.on('message', (_t, p) => {
      if (p.length > 0) statuses.push(JSON.parse(p.toString()) as Record<string, unknown>);
    });
    await watcher.subscribeAsync(`${childPrefix}/kitd/status`, { qos: 1 });
    const dataDir = tempDir('kitd-child-');
    const child = spawn(process.execPath, [BIN, 'kitd'], {
      env: {
        ...kitEnv(dataDir),
        POPKIT_HOST_ROOT: tempDir('kitd-child-root-'),
        POPKIT_LOCAL_BUS_URL: broker.url,
        POPKIT_LOCAL_BUS_PREFIX: childPrefix,
        POPKIT_CHECKOUT_URL: baseUrl,
        POPKIT_HUB_HTTP_URL: 'http://127.0.0.1:9',
        POPKIT_WATCHDOG_SERVICES: '',
      },
      stdio: 'ignore',
    });
    try {
      await waitFor(
        () => statuses.some((s) => s['online'] === true && s['state'] === 'ready'),
        20_000,
        'online status',
      );
      child.kill('SIGKILL');
      const will = await waitFor(() => statuses.find((s) => s['online'] === false), 10_000, 'last will');
      assert.equal(will['state'], 'unknown');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await watcher.publishAsync(`${childPrefix}/kitd/status`, '', { retain: true });
      await watcher.endAsync();
    }
  });
});
