import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderStatus } from '../../cli/commands/status.ts';
import { type KitStatusViewT, kitStatusView } from '../../core/contracts/kit-status.ts';

const at = '2026-06-01T20:00:00.000Z';
const figures = { unsyncedCents: 0, unsyncedOrders: 0, oldestUnsyncedAgeS: 0 };

/** A /v1/status answer as checkout builds it; kitStatusView.check proves it is one. */
function statusView(over: Partial<KitStatusViewT> = {}): KitStatusViewT {
  const view: KitStatusViewT = {
    kitId: 'kit-7',
    board: 'pi4',
    state: 'live',
    event: { live: true, eventId: 'night-1', startedAt: at, stoppedAt: null },
    catalog: { eventId: 'night-1', version: 3, items: 24, source: 'hub' },
    leds: { green: { pattern: 'heartbeat', on: true }, red: { pattern: 'off', on: false } },
    power: [
      {
        device: 'shunt',
        driver: 'ina226',
        socPct: 41.5,
        batteryV: 12.9,
        stale: true,
        staleReason: 'no frame',
        at,
      },
    ],
    health: { score: 72, components: { power: { score: 60, weight: 1, detail: 'SOC 41.5%' } }, at },
    updateLock: null,
    kitd: null,
    sync: { link: 'down', backlog: { orders: 12, stock: 1 } },
    risk: {
      limits: {
        maxOrderCents: 50_000,
        maxUnsyncedCents: 500_000,
        maxUnsyncedOrders: 10,
        maxUnsyncedAgeS: 3600,
      },
      usage: { unsyncedCents: 54_000, unsyncedOrders: 12, oldestUnsyncedAgeS: 900 },
      ratio: { unsyncedCents: 0.108, unsyncedOrders: 1.2, oldestUnsyncedAgeS: 0.25 },
      blocking: ['maxUnsyncedOrders'],
    },
    declines: [
      {
        orderId: '01M8JXP62B4ZV5JE1M60YPSYG5',
        totalCents: 4500,
        currency: 'EUR',
        reason: 'do_not_honor',
        at,
      },
    ],
    media: {
      state: 'degraded',
      board: 'pi4',
      encoder: 'v4l2h264enc',
      fps: 15,
      droppedFrames: 3,
      bitrateKbps: 900,
      measuredKbps: 870,
      ladderStep: 2,
      ladderSteps: 6,
      width: 960,
      height: 540,
      targetFps: 15,
      restarts: 0,
      rebuilds: 1,
      newestSegmentAgeMs: 400,
      cpuCores: 0.8,
      machineCpu: 0.6,
      playlist: '/live/index.m3u8',
      updatedAt: at,
      pid: 4242,
      stale: false,
    },
    store: { freeBytes: 1_000_000_000, reserveBytes: 50_000_000, full: false },
    ...over,
  };
  assert.ok(kitStatusView.check(view), kitStatusView.errors(view).join('; '));
  return view;
}

test('popkit status renders one screen from /v1/status, saying what needs the host', () => {
  const out = renderStatus(statusView());
  const lines = out.trim().split('\n');
  assert.match(lines[0]!, /kit kit-7 \(pi4\)\s+state: live\s+LIVE night-1/);
  assert.ok(lines.includes('leds: green=heartbeat  red=off'));
  assert.ok(lines.some((l) => /power shunt: SOC 41.5%, 12.9 V, STALE \(no frame\)/.test(l)));
  assert.ok(lines.includes('sync: link down  backlog orders 12, stock 1'));
  assert.ok(lines.includes('offline risk: card orders PAUSED by maxUnsyncedOrders'));
  assert.ok(
    lines.some((l) => /declined cards: 1 recent; latest order …YPSYG5 45\.00 EUR \(do_not_honor\)/.test(l)),
  );
  assert.ok(lines.includes('stream: degraded 15 fps 900 kb/s'));
  const quiet = renderStatus(
    statusView({
      kitId: 'k',
      board: 'sim',
      state: 'ready',
      event: { live: false, eventId: null, startedAt: null, stoppedAt: null },
      leds: null,
      power: null,
      health: null,
      kitd: null,
      sync: { link: 'up', backlog: {} },
      risk: { limits: statusView().risk.limits, usage: figures, ratio: figures, blocking: [] },
      declines: [],
      media: null,
    }),
  );
  assert.match(quiet, /kitd not running/);
  assert.match(quiet, /stream: not running/);
  assert.doesNotMatch(quiet, /declined/);
});

test('a /v1/status answer of another shape is refused by the contract', () => {
  const { risk: _risk, ...noRisk } = statusView();
  assert.equal(kitStatusView.check(noRisk), false);
  assert.equal(kitStatusView.check({ ...statusView(), media: { state: 'degraded', fps: 15 } }), false);
});

test('an order the hub rejected reads as a rejection in popkit status', () => {
  const notice = { orderId: '01M8JXP62B4ZV5JE1M60REJECT', totalCents: 1200, currency: 'EUR', at };
  const view = statusView({
    declines: [
      { ...notice, reason: '/order/lines/0/name: Expected string to match', state: 'rejected' },
      { ...notice, orderId: '01M8JXP62B4ZV5JE1M60DECLIN', reason: 'do_not_honor', state: 'declined' },
    ],
  });
  assert.ok(kitStatusView.check(view));
  assert.match(
    renderStatus(view),
    /declined cards: 2 recent \(1 rejected by the hub\); latest order …REJECT 12\.00 EUR \(rejected by the hub: \/order\/lines\/0\/name/,
  );
});

test('popkit status shows the links kitd read and an update held back for a metered one', () => {
  const links = {
    source: 'networkmanager' as const,
    state: 'ok' as const,
    links: [
      {
        iface: 'wwan0',
        type: 'modem' as const,
        state: 'connected' as const,
        metered: true,
        primary: true,
        addresses: ['10.64.1.2/30'],
      },
      {
        iface: 'eth0',
        type: 'ethernet' as const,
        state: 'disconnected' as const,
        metered: null,
        primary: false,
      },
    ],
    primaryMetered: true,
    checkedAt: at,
    lastOkAt: at,
    problems: [],
  };
  const lock = {
    held: true,
    reason: 'metered-link',
    since: at,
    expiresAt: '2026-06-02T14:00:00.000Z',
    leaseExpired: false,
    foreign: false,
    healedAtBoot: false,
    path: '/tmp/balena/updates.lock',
    policy: 'after-event' as const,
  };
  const kitd = (l: unknown) =>
    ({
      state: 'ready',
      since: at,
      overlays: [],
      leds: null,
      power: [],
      health: null,
      powerPolicy: {
        level: 'normal',
        since: at,
        battery: { stale: false },
        neededMin: 0,
        mediaSteps: 0,
        thresholds: { lowSocPct: 30, criticalSocPct: 8, criticalTtgMin: 10, hysteresisPct: 5 },
      },
      updateLock: lock,
      pendingUpdate: null,
      services: {},
      buttons: {},
      moments: 0,
      bus: null,
      supervisor: 'balena',
      updatedAt: at,
      pid: 1,
      stale: false,
      ...(l === undefined ? {} : { links: l }),
    }) as unknown as KitStatusViewT['kitd'];
  const out = renderStatus(statusView({ kitd: kitd(links), updateLock: lock }));
  assert.ok(
    out.includes(
      'links: wwan0 modem connected METERED primary 10.64.1.2/30, eth0 ethernet disconnected metered unknown\n',
    ),
    out,
  );
  assert.ok(
    out.includes('updates: held back (metered-link) until 2026-06-02T14:00:00.000Z at the latest'),
    out,
  );
  const down = {
    ...links,
    state: 'unavailable' as const,
    code: 'LINKS_NM_ABSENT' as const,
    reason: 'NetworkManager is not on the system bus',
    links: [],
    primaryMetered: null,
  };
  assert.match(
    renderStatus(statusView({ kitd: kitd(down) })),
    /links: UNAVAILABLE from networkmanager \(LINKS_NM_ABSENT: NetworkManager is not on the system bus\)/,
  );
  assert.match(renderStatus(statusView({ kitd: kitd(undefined) })), /links: not watched/);
  assert.match(renderStatus(statusView()), /links: unknown \(kitd not running\)/);
});

test('popkit status says what sync holds for a metered link, and only while it holds it', () => {
  const detail = {
    link: 'up' as const,
    hubUrl: 'mqtts://hub.example:8883',
    kitId: 'kit-7',
    backlog: { orders: 0, stock: 0, health: 3, telemetry: 40 },
    oldestAgeMs: { orders: 0, stock: 0, health: 90_000, telemetry: 600_000 },
    inflight: 0,
    lastAckAt: at,
    drained: 12,
    published: 12,
    resent: 0,
    reconnects: 0,
    dropped: {},
    catalogVersion: 3,
    catalogEventId: 'night-1',
    catalogSubscribed: null,
    catalogRefusals: [],
    uplink: {
      mode: 'essential' as const,
      metered: true,
      basis: 'metered' as const,
      primary: 'wwan0',
      held: ['health' as const, 'telemetry' as const, 'series' as const, 'product-media' as const],
      heldSince: at,
    },
    updatedAt: at,
    pid: 7,
  };
  const held = statusView({ sync: { link: 'up', backlog: detail.backlog, detail, stale: false } });
  assert.ok(kitStatusView.check(held), kitStatusView.errors(held).join('; '));
  assert.match(
    renderStatus(held),
    /^sync: METERED link wwan0: only orders and stock are sent; health, telemetry, series, product-media held since 2026-06-01T20:00:00\.000Z/m,
  );
  // a stale sync status, or `all`, or an unmetered link: no such line
  const stale = statusView({ sync: { link: 'unknown', backlog: detail.backlog, detail, stale: true } });
  assert.doesNotMatch(renderStatus(stale), /METERED link/);
  const all = { ...detail, uplink: { ...detail.uplink, mode: 'all' as const, held: [], heldSince: null } };
  const sending = statusView({ sync: { link: 'up', backlog: detail.backlog, detail: all, stale: false } });
  assert.ok(kitStatusView.check(sending));
  assert.doesNotMatch(renderStatus(sending), /METERED link/);
  // not bound to a link: the sync line names none
  assert.match(renderStatus(held), /^sync: link up {2}backlog/m);
});

test('status names the link sync is bound to (#17, POPKIT_SYNC_BIND_LINKS), not a stale one', () => {
  const at = '2026-06-01T20:00:00.000Z';
  const uplink = {
    mode: 'essential' as const,
    metered: false,
    basis: 'unmetered' as const,
    primary: 'wwan0',
    via: 'eth0',
    held: [],
    heldSince: null,
  };
  const detail = {
    link: 'up' as const,
    hubUrl: 'mqtts://hub.example:8883',
    kitId: 'kit-1',
    backlog: { orders: 0 },
    oldestAgeMs: {},
    inflight: 0,
    lastAckAt: at,
    drained: 1,
    published: 1,
    resent: 0,
    reconnects: 2,
    dropped: {},
    catalogVersion: null,
    catalogEventId: null,
    catalogSubscribed: null,
    catalogRefusals: [],
    uplink,
    updatedAt: at,
    pid: 7,
  };
  const bound = statusView({ sync: { link: 'up', backlog: detail.backlog, detail, stale: false } });
  assert.ok(kitStatusView.check(bound), kitStatusView.errors(bound).join('; '));
  assert.match(renderStatus(bound), /^sync: link up over eth0 {2}backlog orders 0/m);
  const stale = statusView({ sync: { link: 'unknown', backlog: detail.backlog, detail, stale: true } });
  assert.doesNotMatch(renderStatus(stale), /over eth0/);
});

test('popkit status shows the LAN stock listener once it listens: kits found, units moved, the last problem', () => {
  const sync = (lanStock: unknown) =>
    statusView({
      sync: {
        link: 'down',
        backlog: { orders: 3 },
        stale: false,
        detail: {
          link: 'down',
          hubUrl: 'mqtts://hub.example:8883',
          kitId: 'kit-7',
          backlog: { orders: 3 },
          oldestAgeMs: {},
          inflight: 0,
          lastAckAt: null,
          drained: 0,
          published: 0,
          resent: 0,
          reconnects: 4,
          dropped: {},
          catalogVersion: 2,
          catalogEventId: 'night-1',
          catalogSubscribed: null,
          catalogRefusals: [],
          catalogRefused: {},
          ...(lanStock ? { lanStock } : {}),
          updatedAt: at,
          pid: 77,
        },
      } as unknown as KitStatusViewT['sync'],
    });
  const line = (v: KitStatusViewT) =>
    renderStatus(v)
      .split('\n')
      .find((l) => l.startsWith('LAN stock'));
  assert.equal(line(sync(undefined)), undefined, 'no line without shared stock');
  assert.equal(
    line(
      sync({
        listening: null,
        found: [],
        hubDownSince: null,
        asked: 0,
        received: 0,
        given: 0,
        lastError: null,
      }),
    ),
    undefined,
    'no line before it listens',
  );
  assert.equal(
    line(
      sync({
        listening: 8472,
        found: ['kit-8', 'kit-9'],
        hubDownSince: at,
        asked: 2,
        received: 7,
        given: 1,
        lastError: 'http://10.0.0.9:8472: 403 LAN_FORGED',
      }),
    ),
    `LAN stock: port 8472, 2 other kits found; hub out of reach since ${at}; 7 units received, 1 given (last problem: http://10.0.0.9:8472: 403 LAN_FORGED)`,
  );
});
