// Sync on a metered link (#17, "Redundant uplinks"): while the kit's primary link is metered (a modem on
// a data plan), only what a sale needs travels: the orders lane (orders, their events and payment
// tokens) and the stock lane. The health and telemetry lanes, the sealed series and the product images
// wait, in the outbox and on disk as they are (nothing is dropped for it; a lane's TTL, quota and the
// disk's give-way rules stay as they were), and go when an unmetered link is primary again.
//
// Sync learns the links from kitd's run status (run/kitd.json `links`, firmware/links.ts), the only
// place they are read. That file is outside input to sync: it is read with a size bound and checked
// against its contract; a file that is missing, of the wrong shape, stale (RUN_STATUS_STALE_MS, or
// dated as far in the future) or whose links view is not `ok` means "not known to be metered", and
// sync behaves as it always did. POPKIT_SYNC_METERED=all sends everything on any link.
import fs from 'node:fs';
import os from 'node:os';
import type { LaneName } from '../../core/contracts/lanes.ts';
import {
  RUN_STATUS_STALE_MS,
  type RunStatus,
  runStatusContract,
  type SyncMeteredMode,
  type SyncUplinkStatusT,
  statusAgeMs,
  type UplinkBasis,
} from '../../core/contracts/run-status.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { moduleLogger } from '../../core/logger.ts';
import { type LocalInterfaces, orderUplinks, type UplinkCandidate } from '../../core/uplinks.ts';

const log = moduleLogger('sync');

/** The lanes that travel on a metered link: a sale's orders (tokens with them) and stock. */
export const METERED_LANES: readonly LaneName[] = ['orders', 'stock'];
/** kitd's status is a few KiB; a larger file is not read (it would be read every second) */
export const KITD_STATUS_MAX_BYTES = 1024 * 1024;
/** kitd's status is read at most this often; the pump asks many times a second */
export const UPLINK_RECHECK_MS = 1000;

export interface UplinkVerdict {
  metered: boolean;
  basis: UplinkBasis;
  primary: string | null;
  /** the links sync may bind its hub connection to, best first (uplinks.ts); empty when none is known */
  links: UplinkCandidate[];
}

/** kitd's status, or undefined when absent, unreadable, over the size bound or not of its contract. */
export function readKitdStatus(dataDir: string): RunStatus<'kitd'> | undefined {
  const file = dataLayout(dataDir).runStatus('kitd');
  let raw: Buffer;
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > KITD_STATUS_MAX_BYTES) return undefined;
    raw = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  if (raw.length > KITD_STATUS_MAX_BYTES) return undefined;
  return runStatusContract('kitd').parse(raw) as RunStatus<'kitd'> | undefined;
}

/**
 * The primary link as sync judges it from kitd's status: metered only from a fresh status whose links
 * view is `ok` and says so. Pure, for its unit test.
 */
export function uplinkVerdict(
  kitd: RunStatus<'kitd'> | undefined,
  now: number,
  local?: LocalInterfaces,
): UplinkVerdict {
  const none = (basis: UplinkBasis): UplinkVerdict => ({ metered: false, basis, primary: null, links: [] });
  if (!kitd) return none('kitd-absent');
  const age = statusAgeMs(kitd, now);
  // a status from the future is as untrustworthy as an old one (a clock step is over within a write)
  if (!(Math.abs(age) < RUN_STATUS_STALE_MS)) return none('kitd-stale');
  const v = kitd.links;
  if (!v || v.state === 'off') return none('links-off');
  if (v.state !== 'ok') return none('links-unavailable');
  const primary = v.links.find((l) => l.primary)?.iface ?? null;
  const links = orderUplinks(v, local);
  if (v.primaryMetered === true) return { metered: true, basis: 'metered', primary, links };
  if (v.primaryMetered === false) return { metered: false, basis: 'unmetered', primary, links };
  return { metered: false, basis: 'metered-unknown', primary, links };
}

/**
 * The verdict for a hub connection bound to `via` (uplinks.ts): that link's own metered flag instead
 * of the primary's, when kitd lists it. Pure.
 */
export function boundVerdict(v: UplinkVerdict, via: string | null): UplinkVerdict {
  if (via === null) return v;
  const link = v.links.find((l) => l.iface === via);
  if (!link) return v;
  if (link.metered === true) return { ...v, metered: true, basis: 'metered' };
  if (link.metered === false) return { ...v, metered: false, basis: 'unmetered' };
  return { ...v, metered: false, basis: 'metered-unknown' };
}

/**
 * What sync may send now. `lanes()` for the outbox pump, `holds()` for the series shipper and the image
 * fetcher; kitd's status is re-read at most every UPLINK_RECHECK_MS.
 */
export class UplinkGate {
  private verdict: UplinkVerdict = { metered: false, basis: 'kitd-absent', primary: null, links: [] };
  /** the link sync's hub connection is bound to now (link.ts); null: none (the kernel's routing) */
  private via: string | null = null;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private heldSince: number | null = null;

  constructor(
    private readonly dataDir: string,
    readonly mode: SyncMeteredMode,
    private readonly now: () => number = Date.now,
  ) {}

  /** Re-read kitd's status when the last reading is older than UPLINK_RECHECK_MS (or `force`). */
  refresh(force = false): UplinkVerdict {
    const now = this.now();
    if (!force && now - this.checkedAt < UPLINK_RECHECK_MS && now >= this.checkedAt) return this.verdict;
    this.checkedAt = now;
    const was = this.verdict;
    const wasHolding = this.holding();
    // the links sync may bind to are this namespace's own (uplinks.ts orderUplinks)
    this.verdict = boundVerdict(
      uplinkVerdict(readKitdStatus(this.dataDir), now, os.networkInterfaces()),
      this.via,
    );
    const holding = this.holding();
    if (holding && !wasHolding) {
      this.heldSince = now;
      log.info(
        { primary: this.verdict.primary, held: this.heldList() },
        'metered primary link: only orders and stock are sent (POPKIT_SYNC_METERED=essential)',
      );
    } else if (!holding && wasHolding) {
      this.heldSince = null;
      log.info(
        { primary: this.verdict.primary, basis: this.verdict.basis },
        'link not metered: sending everything',
      );
    } else if (was.metered !== this.verdict.metered && this.mode === 'all') {
      log.info({ primary: this.verdict.primary, metered: this.verdict.metered }, 'primary link changed');
    }
    return this.verdict;
  }

  /** The links the hub connection may be bound to, best first (from the same reading, uplinks.ts). */
  links(): UplinkCandidate[] {
    this.refresh();
    return this.verdict.links;
  }

  /** The hub connection is bound to `via` now (null: not bound); the metered verdict follows it. */
  bound(via: string | null): void {
    if (via === this.via) return;
    this.via = via;
    this.refresh(true);
  }

  /** Sync holds back everything but orders and stock now. */
  holds(): boolean {
    this.refresh();
    return this.holding();
  }

  /** The lanes the pump may send now: all of them, or METERED_LANES. */
  lanes(): readonly LaneName[] | undefined {
    return this.holds() ? METERED_LANES : undefined;
  }

  private holding(): boolean {
    return this.mode === 'essential' && this.verdict.metered;
  }

  private heldList(): SyncUplinkStatusT['held'] {
    return this.holding() ? ['health', 'telemetry', 'series', 'product-media'] : [];
  }

  /** For run/sync.json. */
  status(): SyncUplinkStatusT {
    this.refresh();
    return {
      mode: this.mode,
      metered: this.verdict.metered,
      basis: this.verdict.basis,
      primary: this.verdict.primary,
      via: this.via,
      held: this.heldList(),
      heldSince: this.heldSince === null ? null : new Date(this.heldSince).toISOString(),
    };
  }
}
