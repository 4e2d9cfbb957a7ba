// What sync tells others about itself: its run status (run/sync.json, the SyncRunStatus contract of
// core/contracts/run-status.ts: /v1/status and `popkit status` read it) and the retained kit status
// it publishes to the hub's fleet view (hub-wire KitStatus).
import type { KitStatusT } from '../../core/contracts/hub-wire.ts';
import { mainBattery } from '../../core/contracts/power.ts';
import { type RunStatus, type RunStatusBody, writeRunStatus } from '../../core/contracts/run-status.ts';
import { moduleLogger } from '../../core/logger.ts';

const log = moduleLogger('sync');

export type SyncRunStatusT = RunStatusBody<'sync'>;

/** Write run/sync.json; a failure (a full disk) is logged, never fatal to the link. */
export function writeSyncStatus(dataDir: string, status: SyncRunStatusT): void {
  try {
    writeRunStatus(dataDir, 'sync', status);
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'status not written');
  }
}

/** What of kitd's run status the hub sees: its lifecycle state and its main battery. */
export type KitdForHub = Pick<RunStatus<'kitd'>, 'state' | 'power'>;

/**
 * The retained status a kit shows the hub's fleet view. kitd reports power as a list of readings; the
 * hub gets the battery that says most (core/contracts/power.ts mainBattery).
 */
export function kitStatusPayload(o: {
  kitId: string;
  eventId: string;
  lanes: { backlog: Record<string, number>; oldestAgeMs: Record<string, number> };
  lastAckAt: number | null;
  catalogVersion: number | null;
  kitd: KitdForHub | undefined;
  clock?: KitStatusT['clock'];
  identityKey?: string | undefined;
  now?: number;
}): KitStatusT {
  const battery = o.kitd ? mainBattery(o.kitd.power) : undefined;
  return {
    v: 1,
    kitId: o.kitId,
    online: true,
    at: o.now ?? Date.now(),
    eventId: o.eventId,
    backlog: o.lanes.backlog,
    oldestAgeMs: Object.fromEntries(
      Object.entries(o.lanes.oldestAgeMs).map(([k, v]) => [k, Math.max(0, Math.round(v))]),
    ),
    lastAckAt: o.lastAckAt,
    catalogVersion: o.catalogVersion,
    ...(o.kitd ? { state: o.kitd.state } : {}),
    ...(battery ? { battery } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.identityKey ? { identityKey: o.identityKey } : {}),
  };
}
