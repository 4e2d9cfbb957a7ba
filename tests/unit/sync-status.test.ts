import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { KitStatus } from '../../core/contracts/hub-wire.ts';
import { type KitdForHub, kitStatusPayload } from '../../services/sync/sync-status.ts';

test('the kit status sent to the hub is valid with what kitd really writes (power as a list)', () => {
  const at = new Date(0).toISOString();
  const kitd: KitdForHub = {
    state: 'live',
    power: [
      {
        device: 'mppt',
        driver: 'vedirect',
        batteryV: 13.2,
        solarW: 40,
        chargeState: 'bulk',
        stale: false,
        at,
      },
      { device: 'shunt', driver: 'ina226', batteryV: 13.1, socPct: 71.2, stale: false, extras: { x: 1 }, at },
    ],
  };
  const s = kitStatusPayload({
    kitId: 'kit-1',
    eventId: 'ev',
    lanes: { backlog: { orders: 3, stock: 0 }, oldestAgeMs: { orders: 1234.7 } },
    lastAckAt: null,
    catalogVersion: 2,
    kitd,
    now: 1000,
  });
  assert.ok(Value.Check(KitStatus, s), JSON.stringify([...Value.Errors(KitStatus, s)]));
  assert.deepEqual(s.battery, { device: 'shunt', socPct: 71.2, batteryV: 13.1, stale: false });
  assert.equal(s.state, 'live');
  assert.equal(s.oldestAgeMs?.['orders'], 1235);
  const bare = kitStatusPayload({
    kitId: 'k',
    eventId: 'e',
    lanes: { backlog: {}, oldestAgeMs: {} },
    lastAckAt: 5,
    catalogVersion: null,
    kitd: undefined,
  });
  assert.ok(Value.Check(KitStatus, bare));
  assert.equal(bare.battery, undefined);
});
