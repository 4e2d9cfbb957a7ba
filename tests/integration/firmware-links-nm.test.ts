// kitd's link monitor against a real D-Bus daemon and a stand-in NetworkManager that speaks its API
// (python3-dbusmock's networkmanager template, tests/support/nm-mock.ts): Ethernet and a modem come
// and go, one is metered, the primary switches, a link is cut; hostile property values; and kitd's
// update lock reason following the metered primary until NetworkManager and then the bus go away.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CheckoutClient } from '../../core/checkout-client.ts';
import { isSafeText } from '../../core/contracts/common.ts';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { systemTimers } from '../../firmware/edge-timer.ts';
import { Kitd } from '../../firmware/kitd.ts';
import { LinkMonitor, NetworkManagerReader } from '../../firmware/links.ts';
import { UpdateLock } from '../../firmware/update-lock.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import { createPowerSources } from '../../hardware/factories/power-sources.ts';
import { BatteryModel } from '../../hardware/sim/battery-model.ts';
import { SimGpio } from '../../hardware/sim/gpio-sim.ts';
import { waitFor } from '../support/hub-link.ts';
import { testKitdSettings } from '../support/kitd.ts';
import {
  ACTIVE_IFACE,
  DEVICE_IFACE,
  IP4_IFACE,
  MOCK_MAIN,
  NM,
  NM_PATH,
  type NmMock,
  startNmMock,
  v,
} from '../support/nm-mock.ts';
import { makeTempDir } from '../support/tmp.ts';

let m: NmMock;
const paths: Record<string, string> = {};

before(async () => {
  m = await startNmMock();
});
after(async () => {
  await m?.stop();
});

async function read(reader: NetworkManagerReader) {
  const r = await reader.read();
  assert.ok(r.ok, `reading failed: ${JSON.stringify(r)}`);
  return r;
}

async function addActive(name: string, device: string): Promise<string> {
  const p = `${NM_PATH}/ActiveConnection/${name}`;
  await m.mock(MOCK_MAIN, 'AddObject', 'ssa{sv}a(ssss)', [
    p,
    ACTIVE_IFACE,
    { Devices: v('ao', [device]) },
    [],
  ]);
  return p;
}

describe('the link list follows NetworkManager', () => {
  test('Ethernet and a modem, one metered; unmanaged and loopback devices left out; the primary switches', async () => {
    const reader = new NetworkManagerReader({ address: m.address });
    try {
      const empty = await read(reader);
      assert.deepEqual(empty.links, []);
      assert.equal(empty.primaryMetered, null, 'no primary connection, no Metered on the manager');

      // venue Ethernet through the template's own method, metered guess-no, with an IPv4 address
      const [eth] = (await m.mock(MOCK_MAIN, 'AddEthernetDevice', 'ssi', ['eth', 'eth0', 100])) as [string];
      paths['eth'] = eth;
      await m.mock(eth, 'AddProperty', 'ssv', [DEVICE_IFACE, 'Metered', v('u', 4)]);
      const ip4 = `${NM_PATH}/IP4Config/1`;
      await m.mock(MOCK_MAIN, 'AddObject', 'ssa{sv}a(ssss)', [
        ip4,
        IP4_IFACE,
        { AddressData: v('aa{sv}', [{ address: v('s', '192.0.2.10'), prefix: v('u', 24) }]) },
        [],
      ]);
      await m.mock(eth, 'AddProperty', 'ssv', [DEVICE_IFACE, 'Ip4Config', v('o', ip4)]);
      // a cellular modem (NMDeviceType 8), metered yes
      paths['wwan'] = await m.addDevice('wwan', {
        Interface: v('s', 'wwan0'),
        DeviceType: v('u', 8),
        State: v('u', 100),
        Metered: v('u', 1),
        Ip4Config: v('o', '/'),
      });
      // balena's container bridge (unmanaged) and NetworkManager ≥ 1.42's loopback device
      await m.addDevice('br', { Interface: v('s', 'balena0'), DeviceType: v('u', 13), State: v('u', 10) });
      await m.addDevice('lo', { Interface: v('s', 'lo'), DeviceType: v('u', 32), State: v('u', 100) });

      paths['ethActive'] = await addActive('eth', eth);
      paths['wwanActive'] = await addActive('wwan', paths['wwan']);
      await m.mock(NM_PATH, 'AddProperty', 'ssv', [NM, 'PrimaryConnection', v('o', paths['ethActive'])]);

      let r = await read(reader);
      assert.deepEqual(r.links, [
        {
          iface: 'eth0',
          type: 'ethernet',
          state: 'connected',
          metered: false,
          primary: true,
          addresses: ['192.0.2.10/24'],
        },
        { iface: 'wwan0', type: 'modem', state: 'connected', metered: true, primary: false },
      ]);
      assert.equal(r.primaryMetered, false, 'derived from the primary link without the manager property');
      assert.deepEqual(r.problems, []);

      // the venue Ethernet goes away: the modem becomes primary
      await m.set(NM_PATH, NM, 'PrimaryConnection', v('o', paths['wwanActive']));
      r = await read(reader);
      assert.deepEqual(
        r.links.map((l) => [l.iface, l.primary]),
        [
          ['eth0', false],
          ['wwan0', true],
        ],
      );
      assert.equal(r.primaryMetered, true);

      // the manager's own Metered (NM ≥ 1.2) is NetworkManager's verdict and wins
      await m.mock(NM_PATH, 'AddProperty', 'ssv', [NM, 'Metered', v('u', 2)]);
      assert.equal((await read(reader)).primaryMetered, false);
      await m.set(NM_PATH, NM, 'Metered', v('u', 3));
      assert.equal((await read(reader)).primaryMetered, true);

      // Ethernet cut: its device goes down (the template's SetDeviceDisconnected)
      await m.mock(MOCK_MAIN, 'SetDeviceDisconnected', 's', [eth]);
      r = await read(reader);
      assert.equal(r.links.find((l) => l.iface === 'eth0')?.state, 'disconnected');
      assert.equal(
        r.links.find((l) => l.iface === 'eth0')?.addresses,
        undefined,
        'no addresses on a link that is down',
      );
    } finally {
      await reader.close();
    }
  });

  test('hostile values: wrong types, a huge name, control characters, a bogus primary; refused, noted, no crash', async () => {
    const reader = new NetworkManagerReader({ address: m.address });
    const [before] = (await m.call(NM_PATH, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [
      NM,
      'Devices',
    ])) as [{ value: string[] }];
    try {
      await m.addDevice('h1', {
        Interface: v('s', 'wlan0'),
        DeviceType: v('s', 'wifi'),
        State: v('i', -5),
        Metered: v('s', 'yes'),
      });
      await m.addDevice('h2', {
        Interface: v('s', 'x'.repeat(5000)),
        DeviceType: v('u', 1),
        State: v('u', 100),
      });
      await m.addDevice('h3', {
        Interface: v('s', 'et\nh\u0001'),
        DeviceType: v('u', 1),
        State: v('u', 100),
      });
      await m.addDevice('h4', { Interface: v('u', 7), DeviceType: v('u', 1), State: v('u', 100) });
      await m.addDevice('h5', {
        Interface: v('s', '__proto__'),
        DeviceType: v('u', 2),
        State: v('u', 100),
        Metered: v('b', true),
      });
      // D-Bus itself carries no NUL in a string: the mock cannot even send one
      await assert.rejects(
        m.addDevice('h6', { Interface: v('s', 'eth\u00000'), DeviceType: v('u', 1), State: v('u', 100) }),
      );
      await m.set(NM_PATH, NM, 'Metered', v('s', 'guess-yes'));

      const r = await read(reader);
      const h1 = r.links.find((l) => l.iface === 'wlan0');
      assert.deepEqual(h1, {
        iface: 'wlan0',
        type: 'other',
        state: 'unavailable',
        metered: null,
        primary: false,
      });
      const h5 = r.links.find((l) => l.iface === '__proto__');
      assert.equal(h5?.metered, null, 'a boolean Metered is not an NMMetered');
      assert.equal(
        r.links.some((l) => l.iface.length > 15 || !isSafeText(l.iface)),
        false,
        'no hostile name listed',
      );
      assert.equal(r.links.length, 4, 'eth0, wwan0, wlan0, __proto__');
      assert.equal(
        r.primaryMetered,
        true,
        'the bad manager Metered is refused; the primary modem says metered',
      );
      const text = r.problems.join('\n');
      for (const want of [
        'DeviceType refused',
        'State refused',
        'Metered refused',
        'Interface refused',
        'no valid interface name',
      ])
        assert.ok(text.includes(want), `problems mention "${want}": ${text}`);
      assert.ok(r.problems.length <= 8 && r.problems.every((p) => p.length <= 300));
      assert.ok(!text.includes('x'.repeat(100)), 'a huge value is clipped in the problem line');
    } finally {
      await m.set(NM_PATH, NM, 'Devices', v('ao', before.value));
      await m.set(NM_PATH, NM, 'Metered', v('u', 3));
      await reader.close();
    }
    const clean = await read(new NetworkManagerReader({ address: m.address }));
    assert.deepEqual(
      clean.links.map((l) => l.iface),
      ['eth0', 'wwan0'],
    );
  });

  test('a primary connection path of the wrong type is refused: no primary, the manager verdict stands', async () => {
    const reader = new NetworkManagerReader({ address: m.address });
    try {
      await m.set(NM_PATH, NM, 'PrimaryConnection', v('s', 'not a path'));
      const r = await read(reader);
      assert.equal(
        r.links.some((l) => l.primary),
        false,
      );
      assert.ok(r.problems.some((p) => p.includes('PrimaryConnection refused')));
    } finally {
      await m.set(NM_PATH, NM, 'PrimaryConnection', v('o', paths['wwanActive']!));
      await reader.close();
    }
  });

  test('a socket that accepts and never answers: LINKS_TIMEOUT; no socket at all: LINKS_BUS_UNAVAILABLE', async () => {
    const dir = makeTempDir('links-hung-');
    const sock = path.join(dir, 'hung.sock');
    const held: net.Socket[] = [];
    const server = net.createServer((s) => held.push(s));
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const hung = new NetworkManagerReader({ address: `unix:path=${sock}`, timeoutMs: 300 });
      const r = await hung.read();
      assert.deepEqual(r.ok ? r : { ok: r.ok, code: r.code }, { ok: false, code: 'LINKS_TIMEOUT' });
      await hung.close();
      const missing = new NetworkManagerReader({ address: `unix:path=${path.join(dir, 'none.sock')}` });
      const r2 = await missing.read();
      assert.equal(r2.ok ? 'ok' : r2.code, 'LINKS_BUS_UNAVAILABLE');
      assert.ok(!r2.ok && r2.reason.includes('ENOENT'), !r2.ok ? r2.reason : '');
      await missing.close();
      const odd = await new NetworkManagerReader({ address: 'carrier-pigeon:coop=1' }).read();
      assert.equal(odd.ok ? 'ok' : odd.code, 'LINKS_BUS_UNAVAILABLE');
    } finally {
      for (const s of held) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});

describe("kitd's update lock follows the metered primary link", () => {
  test('metered-link while the modem is primary, released on Ethernet, kept through a short outage, then let go', async () => {
    const dataDir = makeTempDir('links-kitd-');
    const board = getBoardProfile('sim');
    const battery = new BatteryModel({ socPct: 85, loadW: 20, capacityWh: 1280 });
    const lock = new UpdateLock(3_600_000, { POPKIT_HOST_ROOT: makeTempDir('links-root-') });
    const links = new LinkMonitor(new NetworkManagerReader({ address: m.address, timeoutMs: 1000 }), {
      everyMs: 200,
      graceMs: 1500,
      now: () => Date.now(),
    });
    const kitd = new Kitd({
      kitId: 'links',
      dataDir,
      board,
      gpio: new SimGpio(),
      powerSources: createPowerSources(board, { sim: true, battery, pollMs: 200 }),
      // nothing listens on the discard port: checkout unreachable, no event, no backlog
      checkout: new CheckoutClient('http://127.0.0.1:9', () => 'x'.repeat(32)),
      lock,
      timers: systemTimers,
      links,
      settings: testKitdSettings(),
    });
    const reason = () => kitd.status().updateLock.reason;
    await kitd.start();
    try {
      // the modem is primary (previous tests), NetworkManager says metered
      await waitFor(() => reason() === 'metered-link', 15_000, 'lock for the metered modem');
      const st = kitd.status();
      assert.equal(st.links?.state, 'ok');
      assert.equal(st.links?.links.find((l) => l.primary)?.iface, 'wwan0');
      await waitFor(
        () => readRunStatus(dataDir, 'kitd')?.links?.primaryMetered === true,
        10_000,
        'kitd.json',
      );

      // venue Ethernet back as primary, unmetered: the lock goes
      await m.mock(MOCK_MAIN, 'SetDeviceActive', 'ss', [paths['eth']!, paths['ethActive']!]);
      await m.set(NM_PATH, NM, 'PrimaryConnection', v('o', paths['ethActive']!));
      await m.set(NM_PATH, NM, 'Metered', v('u', 4));
      await waitFor(() => kitd.status().updateLock.held === false, 15_000, 'lock released on Ethernet');
      assert.equal(kitd.status().links?.links.find((l) => l.primary)?.iface, 'eth0');

      // Ethernet cut, the modem primary again: held again
      await m.mock(MOCK_MAIN, 'SetDeviceDisconnected', 's', [paths['eth']!]);
      await m.set(NM_PATH, NM, 'PrimaryConnection', v('o', paths['wwanActive']!));
      await m.set(NM_PATH, NM, 'Metered', v('u', 1));
      await waitFor(() => reason() === 'metered-link', 15_000, 'lock for the modem again');

      // NetworkManager goes away: unavailable with its code; the lock stays for the grace, then goes
      await m.stopNm();
      await waitFor(() => kitd.status().links?.code === 'LINKS_NM_ABSENT', 15_000, 'NetworkManager absent');
      assert.equal(kitd.status().links?.state, 'unavailable');
      assert.equal(reason(), 'metered-link', 'held through the grace');
      await waitFor(() => kitd.status().updateLock.held === false, 15_000, 'released after the grace');

      // the bus itself goes away mid-run: kitd keeps ticking and says so
      await m.stopBus();
      await waitFor(() => kitd.status().links?.code === 'LINKS_BUS_UNAVAILABLE', 15_000, 'bus unavailable');
      await kitd.step();
      assert.equal(kitd.lifecycle.state === 'off', false);
      await waitFor(
        () => readRunStatus(dataDir, 'kitd')?.links?.code === 'LINKS_BUS_UNAVAILABLE',
        10_000,
        'in kitd.json',
      );
    } finally {
      await kitd.stop();
    }
  });
});
