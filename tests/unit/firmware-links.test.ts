// The link monitor's logic without a bus: NetworkManager's enums, which source `auto` picks, the sim
// board's links file (hostile contents included), the monitor's view over failing and recovering
// readings with the metered grace, and the update control's reconcile with the metered reason on the
// real lock file (under a private POPKIT_HOST_ROOT). The D-Bus side: firmware-links-nm.test.ts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../core/config.ts';
import { contract } from '../../core/contracts/common.ts';
import { linkStateFromNm, linkTypeFromNm, meteredFromNm } from '../../core/contracts/links.ts';
import { KitdRunStatus } from '../../core/contracts/run-status.ts';
import { KitdConfig } from '../../firmware/config.ts';
import { kitdSettings } from '../../firmware/kitd-deps.ts';
import {
  BALENA_HOST_DBUS_SOCKET,
  LinkMonitor,
  type LinkReader,
  type LinkReading,
  meteredHold,
  resolveLinkSource,
  SIM_DEFAULT_LINKS,
  SimLinkReader,
  SYSTEM_DBUS_SOCKET,
  systemBusAddress,
} from '../../firmware/links.ts';
import { lockReason, UpdateControl } from '../../firmware/update-control.ts';
import { UpdateLock } from '../../firmware/update-lock.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import { makeTempDir } from '../support/tmp.ts';

describe("NetworkManager's enums", () => {
  test('NMMetered: yes and guess-yes are metered, no and guess-no are not, unknown and anything else null', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 0xffffffff].map(meteredFromNm), [
      null,
      true,
      false,
      true,
      false,
      null,
      null,
    ]);
  });
  test('NMDeviceType: ethernet, wifi, modem; the rest other', () => {
    assert.deepEqual([1, 2, 8, 0, 13, 14, 30, 32].map(linkTypeFromNm), [
      'ethernet',
      'wifi',
      'modem',
      'other',
      'other',
      'other',
      'other',
      'other',
    ]);
  });
  test('NMDeviceState: activated is connected, prepare to secondaries connecting, down states disconnected', () => {
    const m = Object.fromEntries(
      [0, 10, 20, 30, 40, 70, 90, 100, 110, 120].map((s) => [s, linkStateFromNm(s)]),
    );
    assert.deepEqual(m, {
      0: 'unavailable',
      10: 'unavailable',
      20: 'unavailable',
      30: 'disconnected',
      40: 'connecting',
      70: 'connecting',
      90: 'connecting',
      100: 'connected',
      110: 'disconnected',
      120: 'disconnected',
    });
  });
});

describe('which source POPKIT_LINKS=auto picks, and which bus', () => {
  const none = () => false;
  test('sim board: the links file; balena: NetworkManager even without a socket (the view then says why)', () => {
    assert.equal(resolveLinkSource({ mode: 'auto' }, { sim: true, balena: false, exists: none }), 'sim');
    assert.equal(
      resolveLinkSource({ mode: 'auto' }, { sim: false, balena: true, exists: none }),
      'networkmanager',
    );
  });
  test('elsewhere: NetworkManager where a bus is given or a socket exists, else off; an explicit mode wins', () => {
    assert.equal(resolveLinkSource({ mode: 'auto' }, { sim: false, balena: false, exists: none }), 'off');
    assert.equal(
      resolveLinkSource(
        { mode: 'auto', busAddress: 'unix:path=/x' },
        { sim: false, balena: false, exists: none },
      ),
      'networkmanager',
    );
    const only = (p: string) => (q: string) => q === p;
    for (const sock of [SYSTEM_DBUS_SOCKET, BALENA_HOST_DBUS_SOCKET])
      assert.equal(
        resolveLinkSource({ mode: 'auto' }, { sim: false, balena: false, exists: only(sock) }),
        'networkmanager',
      );
    assert.equal(resolveLinkSource({ mode: 'off' }, { sim: true, balena: true, exists: () => true }), 'off');
    assert.equal(resolveLinkSource({ mode: 'sim' }, { sim: false, balena: true }), 'sim');
  });
  test("DBUS_SYSTEM_BUS_ADDRESS wins; else balena's host socket when mounted; else the usual socket", () => {
    assert.equal(
      systemBusAddress('unix:path=/elsewhere', () => true),
      'unix:path=/elsewhere',
    );
    assert.equal(
      systemBusAddress(undefined, (p) => p === BALENA_HOST_DBUS_SOCKET),
      `unix:path=${BALENA_HOST_DBUS_SOCKET}`,
    );
    assert.equal(
      systemBusAddress(undefined, () => false),
      `unix:path=${SYSTEM_DBUS_SOCKET}`,
    );
  });
  test('the variables are checked at start: a bad mode, a NUL in the bus address, a poll of 0 are refused', () => {
    const cfg = loadConfig(KitdConfig, { POPKIT_LINKS_POLL_S: '2', DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/b' });
    const s = kitdSettings(cfg, getBoardProfile('sim')).links;
    assert.deepEqual(s, { mode: 'auto', busAddress: 'unix:path=/b', everyMs: 2000, graceMs: 60_000 });
    for (const bad of [
      { POPKIT_LINKS: 'wifi' },
      { DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/a\u0000b' },
      { DBUS_SYSTEM_BUS_ADDRESS: 'http://x' },
      { POPKIT_LINKS_POLL_S: '0' },
      { POPKIT_LINKS_GRACE_S: '-1' },
      { POPKIT_LINKS_SIM_FILE: 'a\u0000b' },
    ])
      assert.throws(() => loadConfig(KitdConfig, bad), { code: 'CONFIG_INVALID' }, JSON.stringify(bad));
  });
});

describe("the sim board's links file", () => {
  const dir = makeTempDir('links-sim-');
  const file = path.join(dir, 'links-sim.json');
  const write = (v: unknown) => fs.writeFileSync(file, typeof v === 'string' ? v : JSON.stringify(v));

  test('absent: the default links (Ethernet primary and unmetered, the modem idle)', async () => {
    fs.rmSync(file, { force: true });
    const r = await new SimLinkReader(file).read();
    assert.deepEqual(r, { ok: true, links: SIM_DEFAULT_LINKS, primaryMetered: false, problems: [] });
  });

  test('edited: read again at every poll; the primary link gives primaryMetered unless the file says', async () => {
    const reader = new SimLinkReader(file);
    write({
      links: [
        { iface: 'eth0', type: 'ethernet', state: 'disconnected', metered: false, primary: false },
        {
          iface: 'wwan0',
          type: 'modem',
          state: 'connected',
          metered: true,
          primary: true,
          addresses: ['10.64.1.2/30'],
        },
      ],
    });
    const r = await reader.read();
    assert.ok(r.ok);
    assert.equal(r.primaryMetered, true);
    assert.equal(r.links[1]?.addresses?.[0], '10.64.1.2/30');
    write({
      links: [{ iface: 'wlan0', type: 'wifi', state: 'connected', metered: null, primary: true }],
      primaryMetered: false,
    });
    const r2 = await reader.read();
    assert.ok(r2.ok);
    assert.equal(r2.primaryMetered, false);
    assert.equal(r2.links[0]?.iface, 'wlan0');
  });

  test('hostile contents are refused with LINKS_SIM_INVALID and a reason, never passed on', async () => {
    const reader = new SimLinkReader(file);
    const link = { iface: 'eth0', type: 'ethernet', state: 'connected', metered: false, primary: true };
    const cases: unknown[] = [
      'not json {',
      '[]',
      { links: [{ ...link, iface: 'x'.repeat(100_00) }] },
      { links: [{ ...link, iface: 'et\u0000h0' }] },
      { links: [{ ...link, iface: '' }] },
      { links: [{ ...link, metered: 'yes' }] },
      { links: [{ ...link, type: 'carrier-pigeon' }] },
      { links: [{ ...link, addresses: ['not-an-address'] }] },
      { links: [{ ...link, __proto__: { primary: true }, extra: 1 }] },
      JSON.parse('{"links": [], "__proto__": {"x": 1}}'),
      { links: [link, { ...link, iface: 'eth1' }] },
      { links: Array.from({ length: 17 }, (_, i) => ({ ...link, iface: `eth${i}`, primary: false })) },
      `{"links": [${'{"iface": "e", "type": "other", "state": "connected", "metered": null, "primary": false},'.repeat(1500)}]}`,
    ];
    for (const c of cases) {
      write(c);
      const r = await reader.read();
      assert.equal(r.ok, false, `refused: ${JSON.stringify(c).slice(0, 80)}`);
      assert.ok(!r.ok && r.code === 'LINKS_SIM_INVALID' && r.reason.length > 0 && r.reason.length <= 300);
    }
  });
});

/** A reader that answers what the test says; the monitor's logic is under test, not a source. */
function scripted(): LinkReader & { next: LinkReading | Error } {
  const r = {
    source: 'networkmanager' as const,
    next: { ok: true, links: [], primaryMetered: null, problems: [] } as LinkReading | Error,
    async read() {
      if (r.next instanceof Error) throw r.next;
      return r.next;
    },
    async close() {},
  };
  return r;
}

const wwan = { iface: 'wwan0', type: 'modem', state: 'connected', metered: true, primary: true } as const;
const eth = { iface: 'eth0', type: 'ethernet', state: 'connected', metered: false, primary: true } as const;
const kitdStatusLinks = contract(KitdRunStatus.properties.links);

describe('the link monitor', () => {
  test('off: no reader, the view says off and never holds', async () => {
    const m = new LinkMonitor(undefined, { everyMs: 1000, graceMs: 60_000, now: () => 0 });
    assert.equal((await m.poll()).state, 'off');
    assert.equal(m.view().source, 'off');
    assert.equal(m.meteredHold(), false);
  });

  test('a metered primary holds; a failing source keeps the hold for the grace only, then lets go', async () => {
    let now = Date.UTC(2026, 0, 1);
    const r = scripted();
    const m = new LinkMonitor(r, { everyMs: 1000, graceMs: 60_000, now: () => now });
    assert.equal(m.view().state, 'unavailable', 'before the first reading');
    assert.equal(m.meteredHold(), false);

    r.next = { ok: true, links: [{ ...wwan }], primaryMetered: true, problems: [] };
    let v = await m.poll();
    assert.equal(v.state, 'ok');
    assert.equal(m.meteredHold(), true);
    assert.ok(kitdStatusLinks.check(v), kitdStatusLinks.errors(v).join('; '));

    now += 5_000;
    r.next = { ok: false, code: 'LINKS_BUS_UNAVAILABLE', reason: 'system bus unreachable: ECONNREFUSED' };
    v = await m.poll();
    assert.equal(v.state, 'unavailable');
    assert.equal(v.code, 'LINKS_BUS_UNAVAILABLE');
    assert.deepEqual(v.links, []);
    assert.equal(v.primaryMetered, null);
    assert.equal(v.lastOkAt, new Date(now - 5_000).toISOString());
    assert.equal(m.meteredHold(), true, 'within the grace the last metered verdict still holds');
    assert.ok(kitdStatusLinks.check(v));

    now += 60_000;
    assert.equal(m.meteredHold(), false, 'past the grace it no longer does');

    r.next = new Error('reader threw');
    v = await m.poll();
    assert.equal(v.state, 'unavailable', 'a reader that throws is a failed reading, not a crash');

    r.next = {
      ok: true,
      links: [{ ...eth }],
      primaryMetered: false,
      problems: ['x: Metered refused ("yes")'],
    };
    v = await m.poll();
    assert.equal(v.state, 'ok');
    assert.equal(v.code, undefined);
    assert.deepEqual(v.problems, ['x: Metered refused ("yes")']);
    assert.equal(m.meteredHold(), false);
  });

  test('an unmetered or unknown last verdict is never held through an outage', () => {
    const t = 1_000_000;
    assert.equal(
      meteredHold(
        { state: 'unavailable', primaryMetered: null },
        { at: t, primaryMetered: false },
        t + 1,
        60_000,
      ),
      false,
    );
    assert.equal(
      meteredHold(
        { state: 'unavailable', primaryMetered: null },
        { at: t, primaryMetered: null },
        t + 1,
        60_000,
      ),
      false,
    );
    assert.equal(meteredHold({ state: 'unavailable', primaryMetered: null }, undefined, t, 60_000), false);
    assert.equal(
      meteredHold({ state: 'ok', primaryMetered: null }, { at: t, primaryMetered: null }, t, 60_000),
      false,
    );
    assert.equal(
      meteredHold(
        { state: 'unavailable', primaryMetered: null },
        { at: t, primaryMetered: true },
        t + 59_999,
        60_000,
      ),
      true,
    );
  });
});

describe('the update control with a metered link (real lock file)', () => {
  const fresh = (maxMs = 18 * 3_600_000, now = () => Date.now()) => {
    const root = makeTempDir('links-lock-');
    const lock = new UpdateLock(maxMs, { POPKIT_HOST_ROOT: root }, now);
    return { lock, updates: new UpdateControl({ lock, policy: 'after-event', deviceEveryMs: 60_000, now }) };
  };
  const idle = { live: false, backlog: 0, shuttingDown: false };

  test('lockReason: live, then unsynced, then metered; immediate and shutting down never', () => {
    assert.equal(lockReason('after-event', { ...idle, meteredLink: true }), 'metered-link');
    assert.equal(lockReason('when-idle', { ...idle, meteredLink: true }), 'metered-link');
    assert.equal(lockReason('after-event', { ...idle, backlog: 2, meteredLink: true }), 'unsynced-orders');
    assert.equal(lockReason('after-event', { ...idle, live: true, meteredLink: true }), 'event-live');
    assert.equal(lockReason('immediate', { ...idle, meteredLink: true }), null);
    assert.equal(lockReason('after-event', { ...idle, shuttingDown: true, meteredLink: true }), null);
    assert.equal(lockReason('after-event', idle), null);
    assert.equal(lockReason('after-event', { ...idle, meteredLink: false }), null);
  });

  test('held with reason metered-link outside an event, released when an unmetered link is primary', () => {
    const { lock, updates } = fresh();
    updates.reconcile({ ...idle, meteredLink: true });
    assert.equal(updates.view().held, true);
    assert.equal(updates.view().reason, 'metered-link');
    assert.equal(JSON.parse(fs.readFileSync(lock.file, 'utf8')).reason, 'metered-link');
    updates.reconcile({ ...idle, live: true, meteredLink: true });
    assert.equal(updates.view().reason, 'event-live');
    updates.reconcile({ ...idle, meteredLink: true });
    assert.equal(updates.view().reason, 'metered-link', 'back to metered after the event');
    updates.reconcile({ ...idle, meteredLink: false });
    assert.equal(updates.view().held, false);
    assert.equal(fs.existsSync(lock.file), false);
  });

  test('a lease that ran out on the metered link does not keep the lock from an event that goes live', () => {
    let now = Date.UTC(2026, 0, 1);
    const { updates } = fresh(3_600_000, () => now);
    updates.reconcile({ ...idle, meteredLink: true });
    assert.equal(updates.view().reason, 'metered-link');
    now += 3_600_000;
    updates.reconcile({ ...idle, meteredLink: true });
    assert.equal(updates.view().held, false);
    assert.equal(updates.view().leaseExpired, true);
    updates.reconcile({ ...idle, meteredLink: true });
    assert.equal(updates.view().held, false, 'not retaken for the same reason');
    updates.reconcile({ ...idle, live: true, meteredLink: true });
    assert.equal(updates.view().held, true, 'an event gets a lease of its own');
    assert.equal(updates.view().reason, 'event-live');
  });

  test('an event going live while held for the metered link starts a new lease', () => {
    let now = Date.UTC(2026, 0, 1);
    const { updates } = fresh(3_600_000, () => now);
    updates.reconcile({ ...idle, meteredLink: true });
    now += 3_000_000;
    updates.reconcile({ ...idle, live: true, meteredLink: true });
    assert.equal(updates.view().since, new Date(now).toISOString());
    assert.equal(updates.view().expiresAt, new Date(now + 3_600_000).toISOString());
    // the other way round the running lease goes on
    now += 1000;
    updates.reconcile({ ...idle, meteredLink: true });
    assert.equal(updates.view().expiresAt, new Date(now - 1000 + 3_600_000).toISOString());
  });
});
