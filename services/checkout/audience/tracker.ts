// Viewers of the live stream (#12, docs/security.md#audience). checkout's `/live/:file` route reports
// each answered playlist, segment or part request here: in memory, O(1), no LMDB write. A viewer's id
// is HMAC-SHA256(event key, address + "\n" + user agent), base64url, first 16 bytes: the address and
// the user agent are never kept, stored or sent. The key is 32 random bytes per event, replaced when
// the event starts or changes and after POPKIT_AUDIENCE_KEY_MAX_H hours at the latest, and dropped
// (overwritten in meta) at rotation; it is kept in the store's meta so a checkout restart mid-event
// finds the same ids (no one is counted twice). Dirty records are written in one transaction every
// few seconds; the retention sweep deletes them POPKIT_AUDIENCE_TTL_H hours after their event ends.
import { createHmac, randomBytes } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../../../core/config.ts';
import {
  type AudienceKeyRecord,
  flushViewers,
  type KitStore,
  readAudienceKey,
  readEventState,
  readViewer,
  sweepViewers,
  type ViewerCounts,
  type ViewerRecord,
  writeAudienceKey,
} from '../../../core/store/index.ts';

/** Bytes of the HMAC kept as the viewer id (128 bits: no collision among an event's viewers). */
export const VIEWER_ID_BYTES = 16;
/** Sessions kept per viewer record (the oldest merge into one): a record stays small. */
export const MAX_SESSIONS = 50;
/** Viewers tracked per event at most: a script inventing user agents cannot fill the store. */
export const MAX_VIEWERS_PER_EVENT = 100_000;
/** The user agent is hashed up to this many characters. */
const UA_MAX = 512;

export interface ViewerTrackerOptions {
  /** POPKIT_AUDIENCE_LEAVE_S */
  leaveS: number;
  /** POPKIT_AUDIENCE_KEY_MAX_H */
  keyMaxH: number;
  /** POPKIT_AUDIENCE_TTL_H */
  ttlH: number;
  /** POPKIT_AUDIENCE_VENUE_NETS, as configured (CIDRs, comma-separated) */
  venueNets: string;
  /** how often dirty records are written (ms) */
  flushMs?: number;
  /** how often the retention sweep runs (ms) */
  sweepMs?: number;
  /** epoch ms (tests inject it) */
  clock?: () => number;
}

interface Live {
  rec: ViewerRecord;
  /** ms of the last request */
  lastMs: number;
  watching: boolean;
  dirty: boolean;
}

/** Parse a CIDR list into a BlockList; a wrong entry is a configuration error, said at start. */
export function venueBlockList(nets: string): BlockList {
  const list = new BlockList();
  const problems: string[] = [];
  for (const raw of nets.split(',')) {
    const cidr = raw.trim();
    const [addr, bits, extra] = cidr.split('/');
    const family = addr ? isIP(addr) : 0;
    const prefix = Number(bits);
    const max = family === 6 ? 128 : 32;
    if (!addr || family === 0 || extra !== undefined || !/^[0-9]{1,3}$/.test(bits ?? '') || prefix > max) {
      problems.push(`POPKIT_AUDIENCE_VENUE_NETS: ${JSON.stringify(cidr)} is not an address/prefix range`);
      continue;
    }
    list.addSubnet(addr, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return list;
}

export class ViewerTracker implements ViewerCounts {
  private key: AudienceKeyRecord | undefined;
  private keyBytes: Buffer | undefined;
  private readonly live = new Map<string, Live>();
  private watchingNow = 0;
  private joins = 0;
  private leaves = 0;
  private watchS = 0;
  /** viewers first seen at the key's event (bounded by MAX_VIEWERS_PER_EVENT) */
  private seenThisEvent = 0;
  /** requests not counted because the event's viewer cap was reached */
  dropped = 0;
  private readonly venue: BlockList;
  private readonly clock: () => number;
  private lastFlush = 0;
  private lastSweep = 0;
  private ticking: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: KitStore,
    private readonly opts: ViewerTrackerOptions,
  ) {
    this.venue = venueBlockList(opts.venueNets);
    this.clock = opts.clock ?? Date.now;
  }

  // ---- ViewerCounts (the series recorder reads these each second) ----

  current(): number {
    return this.watchingNow;
  }

  totals(): { joins: number; leaves: number; watchSeconds: number } {
    return { joins: this.joins, leaves: this.leaves, watchSeconds: this.watchS };
  }

  /** The event the current key belongs to (null while none is live). */
  eventId(): string | null {
    return this.key?.eventId ?? null;
  }

  /** Is this client address in the venue (POPKIT_AUDIENCE_VENUE_NETS)? */
  inVenue(address: string): boolean {
    const v4 = /^::ffff:([0-9.]+)$/i.exec(address)?.[1];
    const a = v4 ?? address;
    const family = isIP(a);
    if (family === 0) return false;
    return this.venue.check(a, family === 6 ? 'ipv6' : 'ipv4');
  }

  /** The viewer id of an address and user agent under the current key; undefined while no event is live. */
  idOf(address: string, userAgent: string | undefined): string | undefined {
    if (!this.keyBytes) return undefined;
    return createHmac('sha256', this.keyBytes)
      .update(`${address}\n${(userAgent ?? '').slice(0, UA_MAX)}`)
      .digest()
      .subarray(0, VIEWER_ID_BYTES)
      .toString('base64url');
  }

  /**
   * One answered playlist, segment or part request (the /live route's onResponse). In memory only;
   * nothing is recorded while no event is live.
   */
  seen(address: string, userAgent: string | undefined): void {
    const id = this.idOf(address, userAgent);
    const key = this.key;
    if (!id || !key) return;
    const nowMs = this.clock();
    const now = Math.floor(nowMs / 1000);
    let v = this.live.get(id);
    if (!v) {
      // after a restart mid-event the key is the same: the record written before carries on
      const stored = readViewer(this.store, id);
      if (stored && stored.eventId === key.eventId) {
        const continuing = now - stored.lastSeen <= this.opts.leaveS;
        v = { rec: stored, lastMs: stored.lastSeen * 1000, watching: continuing, dirty: false };
        if (continuing) this.watchingNow++;
      } else {
        if (this.seenThisEvent >= MAX_VIEWERS_PER_EVENT) {
          this.dropped++;
          return;
        }
        this.seenThisEvent++;
        v = {
          rec: {
            id,
            eventId: key.eventId,
            firstSeen: now,
            lastSeen: now,
            watchSeconds: 0,
            sessions: [],
            inVenue: this.inVenue(address),
          },
          lastMs: nowMs,
          watching: false,
          dirty: true,
        };
      }
      this.live.set(id, v);
    }
    const r = v.rec;
    const gapS = (nowMs - v.lastMs) / 1000;
    if (v.watching && gapS <= this.opts.leaveS) {
      if (gapS > 0) {
        r.watchSeconds += gapS;
        this.watchS += gapS;
      }
      const open = r.sessions[r.sessions.length - 1];
      if (open) open[1] = Math.max(open[1], now);
      else r.sessions.push([now, now]);
    } else {
      if (v.watching) this.leave(v);
      v.watching = true;
      this.watchingNow++;
      this.joins++;
      r.sessions.push([now, now]);
      if (r.sessions.length > MAX_SESSIONS) {
        const [a, b] = r.sessions.splice(0, 2) as [[number, number], [number, number]];
        r.sessions.unshift([a[0], b[1]]);
      }
    }
    if (nowMs > v.lastMs) v.lastMs = nowMs;
    r.lastSeen = Math.max(r.lastSeen, now);
    v.dirty = true;
  }

  private leave(v: Live): void {
    v.watching = false;
    this.watchingNow--;
    this.leaves++;
  }

  /** Dirty records to write, marked clean (they go back to dirty if the write fails). */
  private takeDirty(): Live[] {
    const out: Live[] = [];
    for (const v of this.live.values())
      if (v.dirty) {
        v.dirty = false;
        out.push(v);
      }
    return out;
  }

  /** Write every dirty record in one transaction. */
  async flush(): Promise<number> {
    const batch = this.takeDirty();
    if (batch.length === 0) return 0;
    try {
      await flushViewers(
        this.store,
        batch.map((v) => ({
          ...v.rec,
          sessions: v.rec.sessions.map(([a, b]) => [a, b] as [number, number]),
        })),
      );
    } catch (err) {
      for (const v of batch) v.dirty = true;
      throw err;
    }
    // who left and is written needs no memory any more (a return reads its record again)
    for (const [id, v] of this.live) if (!v.watching && !v.dirty) this.live.delete(id);
    return batch.length;
  }

  /** Everyone watching leaves (an event ended or the key changed), and the memory is written and cleared. */
  private async endAll(): Promise<void> {
    for (const v of this.live.values()) if (v.watching) this.leave(v);
    await this.flush();
    this.live.clear();
    this.seenThisEvent = 0;
  }

  private newKey(eventId: string, now: number): AudienceKeyRecord {
    return { eventId, key: randomBytes(32).toString('base64url'), createdAt: now };
  }

  private useKey(k: AudienceKeyRecord | undefined): void {
    this.key = k;
    this.keyBytes = k ? Buffer.from(k.key, 'base64url') : undefined;
  }

  /**
   * Once a second: follow the event (rotate or drop the key), end viewers past the leave timeout,
   * write dirty records every `flushMs`, sweep every `sweepMs`. Tests call it with an injected clock.
   */
  async tick(): Promise<void> {
    const nowMs = this.clock();
    const now = Math.floor(nowMs / 1000);
    const ev = readEventState(this.store);
    const liveId = ev.live ? ev.eventId : null;
    if (!this.key && liveId) {
      // at start: the kept key carries on when it is this event's and young enough
      const kept = readAudienceKey(this.store);
      if (
        kept &&
        kept.eventId === liveId &&
        now - kept.createdAt < this.opts.keyMaxH * 3600 &&
        now >= kept.createdAt
      ) {
        this.useKey(kept);
      }
    }
    const k = this.key;
    const stale =
      k && (k.eventId !== liveId || now - k.createdAt >= this.opts.keyMaxH * 3600 || now < k.createdAt);
    if (stale || (!k && liveId)) {
      if (k) await this.endAll();
      const next = liveId ? this.newKey(liveId, now) : undefined;
      this.useKey(next);
      await writeAudienceKey(this.store, next);
    } else if (!liveId && readAudienceKey(this.store)) {
      await writeAudienceKey(this.store, undefined);
    }
    for (const v of this.live.values())
      if (v.watching && (nowMs - v.lastMs) / 1000 > this.opts.leaveS) this.leave(v);
    if (nowMs - this.lastFlush >= (this.opts.flushMs ?? 5000) || nowMs < this.lastFlush) {
      this.lastFlush = nowMs;
      await this.flush();
    }
    if (nowMs - this.lastSweep >= (this.opts.sweepMs ?? 60_000) || nowMs < this.lastSweep) {
      this.lastSweep = nowMs;
      await this.sweep(now);
    }
  }

  /** The retention sweep (reads first; writes only when a record is due). */
  sweep(now = Math.floor(this.clock() / 1000)) {
    const ev = readEventState(this.store);
    const ended = ev.stoppedAt ? Math.floor(Date.parse(ev.stoppedAt) / 1000) : undefined;
    return sweepViewers(this.store, {
      now,
      ttlS: this.opts.ttlH * 3600,
      liveEventId: ev.live ? ev.eventId : null,
      endedAt: (id) => (id === ev.eventId && ended !== undefined && Number.isFinite(ended) ? ended : now),
    });
  }

  /** Tick every second; returns the stopper (which writes what is dirty). */
  start(periodMs = 1000, onError?: (err: unknown) => void): () => Promise<void> {
    const run = () => {
      if (this.ticking) return;
      this.ticking = this.tick()
        .catch((err) => onError?.(err))
        .finally(() => {
          this.ticking = undefined;
        });
    };
    run();
    this.timer = setInterval(run, periodMs);
    this.timer.unref();
    return async () => {
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      await this.ticking;
      await this.flush().catch((err) => onError?.(err));
    };
  }
}
