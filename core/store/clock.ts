// The kit's time records (docs/drops.md#trusted-time), in the meta sub-db: the hub time floor (the
// newest signed hub catalog's issue time, written by sync in the catalog's own transaction) and this
// boot's trust record (what made the clock trusted, and the wall-to-monotonic offset at that moment,
// so a later jump of the wall clock is seen, even by a checkout restarted within the same boot).
import { type KitStore, META } from './open.ts';

/** A signed hub catalog's issue time as the kit received it. */
export interface HubTimeRecord {
  /** the hub's `issuedAt`, ms since the epoch: the wall clock is wrong below it */
  issuedAt: number;
  /** the kit's wall clock when the catalog arrived, ms since the epoch */
  receivedAt: number;
  /** the kit's monotonic clock then (ms since boot) and the boot it belongs to */
  mono: number;
  bootId: string;
}

export type TrustSource = 'ntp' | 'rtc' | 'hub' | 'override' | 'assumed';

/** What made the clock trusted during one boot. */
export interface ClockTrustRecord {
  bootId: string;
  source: TrustSource;
  /** wall minus monotonic (ms) when trust was established: a jump moves it */
  offsetMs: number;
  at: string;
  /** staff override: who (role) */
  by?: string;
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function readHubTimeFloor(store: KitStore): HubTimeRecord | undefined {
  const v = store.meta.get(META.hubTimeFloor) as Partial<HubTimeRecord> | undefined;
  if (!v || !isNum(v.issuedAt) || !isNum(v.receivedAt) || !isNum(v.mono) || typeof v.bootId !== 'string')
    return undefined;
  return v as HubTimeRecord;
}

/**
 * Inside a hub catalog's transaction: raise the floor to the catalog's issue time (never lower it: an
 * older catalog replayed says nothing new about the time). A newer issue time also refreshes when and
 * on which boot it arrived (the hub as a source of trust).
 */
export function recordHubTimeInTxn(store: KitStore, rec: HubTimeRecord): void {
  const prev = readHubTimeFloor(store);
  if (prev && prev.issuedAt >= rec.issuedAt) return;
  void store.meta.put(META.hubTimeFloor, rec);
}

export function readClockTrust(store: KitStore): ClockTrustRecord | undefined {
  const v = store.meta.get(META.clockTrust) as Partial<ClockTrustRecord> | undefined;
  if (!v || typeof v.bootId !== 'string' || typeof v.source !== 'string' || !isNum(v.offsetMs))
    return undefined;
  return v as ClockTrustRecord;
}

export async function writeClockTrust(store: KitStore, rec: ClockTrustRecord): Promise<void> {
  await store.meta.put(META.clockTrust, rec);
}

/** A kit's clock trust as another process of the kit can tell it (sync, for the hub: KitStatus.clock). */
export interface ClockTrustSummary {
  trusted: boolean;
  source?: TrustSource;
  reason?: 'never_set' | 'below_hub_floor' | 'clock_jumped';
}

/**
 * The clock trust checkout recorded this boot, judged now from the store alone: below the hub's
 * signed time floor is untrusted; a record of this boot whose wall-to-monotonic offset still holds
 * (within `jumpToleranceMs`) is trusted by its source; one that moved is a jump; none is never set.
 * It does not probe NTP itself: a source checkout has not judged yet shows as never_set until it has
 * (checkout judges on every catalog read and order with a sale window, core/clock-trust.ts).
 */
export function clockTrustNow(
  store: KitStore,
  at: { wall: number; mono: number; bootId: string; jumpToleranceMs: number },
): ClockTrustSummary {
  const floor = readHubTimeFloor(store);
  if (floor && at.wall < floor.issuedAt - at.jumpToleranceMs)
    return { trusted: false, reason: 'below_hub_floor' };
  const rec = readClockTrust(store);
  if (!rec || rec.bootId !== at.bootId) return { trusted: false, reason: 'never_set' };
  if (Math.abs(at.wall - at.mono - rec.offsetMs) > at.jumpToleranceMs)
    return { trusted: false, reason: 'clock_jumped' };
  return { trusted: true, source: rec.source };
}
