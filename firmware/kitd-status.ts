// kitd's run status (core/contracts/run-status.ts KitdRunStatus), built from its parts: what
// run/kitd.json holds, what the local bus carries retained, and what /v1/status shows.
import type { LinksView } from '../core/contracts/links.ts';
import type { PowerReading } from '../core/contracts/power.ts';
import type { KitdRunStatusT } from '../core/contracts/run-status.ts';
import type { FrontPanel } from './front-panel.ts';
import type { HealthView } from './health.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { PowerPolicy } from './power-policy.ts';
import type { UpdateControl } from './update-control.ts';
import type { Watchdog } from './watchdog.ts';

export type KitdStatus = KitdRunStatusT;

export interface KitdStatusParts {
  lifecycle: Lifecycle;
  panel: FrontPanel;
  readings: PowerReading[];
  health: HealthView;
  policy: PowerPolicy;
  updates: UpdateControl;
  watchdog: Watchdog;
  moments: number;
  bus: { connected: boolean } | undefined;
  supervisor: boolean;
  links: LinksView;
}

export function buildKitdStatus(p: KitdStatusParts): KitdStatus {
  const lc = p.lifecycle.view();
  return {
    state: lc.state,
    since: lc.since,
    overlays: lc.overlays,
    leds: p.panel.ledView(),
    power: p.readings,
    health: p.health,
    powerPolicy: p.policy.view(),
    updateLock: p.updates.view(),
    pendingUpdate: p.updates.pendingUpdate,
    services: p.watchdog.view(),
    buttons: p.panel.buttonHealth(),
    moments: p.moments,
    bus: p.bus ? { connected: p.bus.connected } : null,
    supervisor: p.supervisor ? 'balena' : 'none',
    links: p.links,
  };
}
