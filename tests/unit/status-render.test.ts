import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderStatus } from '../../cli/commands/status.ts';

test('popkit status renders one screen from /v1/status, saying what needs the host', () => {
  const out = renderStatus({
    kitId: 'kit-7',
    board: 'pi4',
    state: 'live',
    event: { live: true, eventId: 'night-1' },
    catalog: { eventId: 'night-1', version: 3, items: 24, source: 'hub' },
    leds: { green: { pattern: 'heartbeat', on: true }, red: { pattern: 'off', on: false } },
    power: [{ device: 'shunt', socPct: 41.5, batteryV: 12.9, stale: true, staleReason: 'no frame' }],
    health: { score: 72 },
    sync: { link: 'down', backlog: { orders: 12, stock: 1 } },
    risk: { blocking: ['maxUnsyncedOrders'] },
    declines: [
      { orderId: '01M8JXP62B4ZV5JE1M60YPSYG5', totalCents: 4500, currency: 'EUR', reason: 'do_not_honor' },
    ],
    media: { state: 'degraded', fps: 15, bitrateKbps: 900 },
  });
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
  const quiet = renderStatus({
    kitId: 'k',
    board: 'sim',
    state: 'ready',
    event: {},
    sync: { link: 'up', backlog: {} },
    risk: {},
  });
  assert.match(quiet, /kitd not running/);
  assert.match(quiet, /stream: not running/);
  assert.doesNotMatch(quiet, /declined/);
});
