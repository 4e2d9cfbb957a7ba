// kitd's settings for tests that build a Kitd by hand: a quiet kit (no buttons, no watchdog, slow
// health and device polls), overridden where a test needs something else.
import type { KitdSettings } from '../../firmware/kitd-deps.ts';

export function testKitdSettings(over: Partial<KitdSettings> = {}): KitdSettings {
  return {
    plannedEventMin: 240,
    capacityWh: 1280,
    power: {},
    buttons: new Map(),
    buttonOptions: {},
    watchdog: { services: [] },
    updatePolicy: 'after-event',
    healthEveryMs: 60_000,
    deviceEveryMs: 60_000,
    checkoutFaultMs: 10_000,
    buttonsActiveLow: false,
    ...over,
  };
}
