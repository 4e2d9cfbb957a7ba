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
