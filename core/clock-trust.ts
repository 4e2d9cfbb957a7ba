// Trusted time (docs/drops.md#trusted-time). A Pi has no battery clock: until NTP answers it boots at
// the last time it saved, so "21:00 sharp" would be whatever it believes. Time-boxed sales are judged
// only by a clock one of these vouched for during this boot: NTP (the host's time daemon says it
// synchronized), an RTC that set the clock at boot, the hub (a signed catalog received this boot whose
// issue time agrees with the wall clock), or a staff override (this boot only). Whatever the source, a
// wall clock below the hub's newest signed issue time (the floor) is wrong.
//
// Jumps: when trust is established the wall-to-monotonic offset is recorded (in LMDB, per boot, so a
// restarted checkout keeps it). A later offset beyond the tolerance is a jump: trust is DROPPED, not
// re-based, until a fresh source vouches again (an NTP probe started after the jump, a hub catalog
// received after it, or staff). The RTC only speaks for boot time, so it never re-trusts a jump.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { KitError } from './errors.ts';
import { hostPath } from './host-paths.ts';
import { moduleLogger } from './logger.ts';
import { onBalena } from './secrets.ts';
import {
  type ClockTrustRecord,
  type HubTimeRecord,
  readClockTrust,
  readHubTimeFloor,
  type TrustSource,
  writeClockTrust,
} from './store/clock.ts';
import type { KitStore } from './store/open.ts';

export type { TrustSource } from './store/clock.ts';

const log = moduleLogger('clock');

/** Why the clock is not trusted. */
export type UntrustedReason = 'never_set' | 'below_hub_floor' | 'clock_jumped';

/** What the trust is judged from; every part injectable (tests move the clocks). */
export interface ClockSources {
  /** the wall clock, ms since the epoch */
  wall(): number;
  /** a monotonic clock shared by the processes of one boot (CLOCK_MONOTONIC), ms */
  mono(): number;
  /** this boot's id: a trust record of another boot is ignored */
  bootId(): string;
  /** true when an RTC set the system clock at boot */
  rtcSetClock(): boolean;
  /** the host's NTP sync state: undefined when there is no way to tell */
  ntpSynced(): Promise<boolean | undefined>;
}

export const CLOCK_PATHS = {
  bootId: '/proc/sys/kernel/random/boot_id',
  rtcHctosys: '/sys/class/rtc/rtc0/hctosys',
  timesyncFlag: '/run/systemd/timesync/synchronized',
} as const;

/** balena exposes the host's D-Bus here to a container labelled io.balena.features.dbus */
const BALENA_DBUS = 'unix:path=/host/run/dbus/system_bus_socket';

function readText(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * The host's NTP state: systemd-timesyncd's flag file when present, else `timedatectl show -p
 * NTPSynchronized` (timedated over D-Bus: on balenaOS, whose chrony runs in the host OS, through the
 * host bus balena mounts into a container with the io.balena.features.dbus label).
 */
export function probeNtp(env: NodeJS.ProcessEnv = process.env): Promise<boolean | undefined> {
  if (fs.existsSync(hostPath(CLOCK_PATHS.timesyncFlag, env))) return Promise.resolve(true);
  const childEnv = { ...env, ...(onBalena(env) ? { DBUS_SYSTEM_BUS_ADDRESS: BALENA_DBUS } : {}) };
  return new Promise((resolve) => {
    execFile(
      'timedatectl',
      ['show', '-p', 'NTPSynchronized', '--value'],
      { timeout: 3000, env: childEnv },
      (err, stdout) => {
        const v = String(stdout ?? '').trim();
        if (err || (v !== 'yes' && v !== 'no')) resolve(undefined);
        else resolve(v === 'yes');
      },
    );
  });
}

/** The real clocks and files of this machine (POPKIT_HOST_ROOT roots the files for tests). */
export function systemClockSources(env: NodeJS.ProcessEnv = process.env): ClockSources {
  const bootId = readText(hostPath(CLOCK_PATHS.bootId, env)) ?? 'unknown-boot';
  return {
    wall: () => Date.now(),
    // uv_hrtime is CLOCK_MONOTONIC: since boot, the same in every process
    mono: () => Number(process.hrtime.bigint() / 1_000_000n),
    bootId: () => bootId,
    rtcSetClock: () => readText(hostPath(CLOCK_PATHS.rtcHctosys, env)) === '1',
    ntpSynced: () => probeNtp(env),
  };
}

export interface ClockTrustOptions {
  /** a wall-clock move against the monotonic clock beyond this is a jump (ms) */
  jumpToleranceMs: number;
  /** a hub catalog vouches for the clock when its issue time is within this of arrival (ms) */
  hubAgreeMs: number;
  /** how often the NTP state is probed (ms) */
  ntpPollMs: number;
  /** trust the wall clock as it is (development machines and CI only, never at an event) */
  assume: boolean;
}

/** The trust at one instant. */
export interface ClockJudgement {
  now: number;
  trusted: boolean;
  source: TrustSource | null;
  reason: UntrustedReason | null;
  /** the wall clock's move against the anchor when a jump dropped the trust (ms, + forward) */
  jumpMs?: number;
}

/** `/v1/status.drops.clock` (core/contracts/kit-status.ts DropsStatus). */
export interface ClockTrustView {
  trusted: boolean;
  source: TrustSource | null;
  reason: UntrustedReason | null;
  now: string;
  /** when the current trust was established (this boot) */
  since: string | null;
  hubFloor: string | null;
  jumpMs?: number;
  sources: { ntp: boolean | null; rtc: boolean; hub: boolean; override: boolean };
}

export class ClockTrust {
  private rec: ClockTrustRecord | undefined;
  private ntp: boolean | undefined;
  /** monotonic time at which the probe that gave `ntp` started */
  private ntpFrom = Number.NEGATIVE_INFINITY;
  private probing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** monotonic time a jump was first seen (undefined: none pending) */
  private jumpSeenAt: number | undefined;
  private readonly boot: string;
  private readonly rtc: boolean;

  constructor(
    private readonly store: KitStore,
    private readonly src: ClockSources,
    private readonly opts: ClockTrustOptions,
  ) {
    this.boot = src.bootId();
    this.rtc = src.rtcSetClock();
    const rec = readClockTrust(store);
    this.rec = rec?.bootId === this.boot ? rec : undefined;
  }

  /** Probe NTP now and every ntpPollMs (unref'd). */
  start(): void {
    void this.refreshNtp();
    this.timer ??= setInterval(() => void this.refreshNtp(), this.opts.ntpPollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One NTP probe (concurrent callers share it). */
  refreshNtp(): Promise<void> {
    this.probing ??= (async () => {
      const from = this.src.mono();
      try {
        const v = await this.src.ntpSynced();
        this.ntp = v;
        this.ntpFrom = from;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'NTP state not read');
        this.ntp = undefined;
      } finally {
        this.probing = undefined;
      }
    })();
    return this.probing;
  }

  private hubFloor(): HubTimeRecord | undefined {
    return readHubTimeFloor(this.store);
  }

  /** A source that vouches for the clock now; `after`: only one that spoke after that monotonic time. */
  private vouching(hub: HubTimeRecord | undefined, offset: number, after?: number): TrustSource | undefined {
    if (this.ntp === true && (after === undefined || this.ntpFrom >= after)) return 'ntp';
    if (
      hub &&
      hub.bootId === this.boot &&
      Math.abs(hub.receivedAt - hub.issuedAt) <= this.opts.hubAgreeMs &&
      Math.abs(hub.receivedAt - hub.mono - offset) <= this.opts.jumpToleranceMs &&
      (after === undefined || hub.mono >= after)
    )
      return 'hub';
    if (after === undefined && this.rtc) return 'rtc';
    return undefined;
  }

  private establish(source: TrustSource, offset: number, by?: string): ClockTrustRecord {
    const rec: ClockTrustRecord = {
      bootId: this.boot,
      source,
      offsetMs: offset,
      at: new Date(this.src.wall()).toISOString(),
      ...(by ? { by } : {}),
    };
    this.rec = rec;
    this.jumpSeenAt = undefined;
    log.info({ source }, 'clock trusted');
    return rec;
  }

  private persist(rec: ClockTrustRecord): Promise<void> {
    return writeClockTrust(this.store, rec).catch((err) => {
      // in memory it holds for this process; the next judgement writes it again
      log.warn({ err: (err as Error).message }, 'clock trust record not written');
    });
  }

  /** Is the clock trusted now, and why (cheap: one small meta read). */
  judge(): ClockJudgement {
    const now = this.src.wall();
    const offset = now - this.src.mono();
    const hub = this.hubFloor();
    const yes = (source: TrustSource): ClockJudgement => ({ now, trusted: true, source, reason: null });
    const no = (reason: UntrustedReason, jumpMs?: number): ClockJudgement => ({
      now,
      trusted: false,
      source: null,
      reason,
      ...(jumpMs !== undefined ? { jumpMs } : {}),
    });
    if (hub && now < hub.issuedAt - this.opts.jumpToleranceMs) return no('below_hub_floor');
    if (this.opts.assume) return yes('assumed');
    const rec = this.rec;
    if (rec) {
      const drift = offset - rec.offsetMs;
      if (Math.abs(drift) <= this.opts.jumpToleranceMs) {
        this.jumpSeenAt = undefined;
        return yes(rec.source);
      }
      if (this.jumpSeenAt === undefined) {
        this.jumpSeenAt = this.src.mono();
        log.warn({ jumpMs: drift, source: rec.source }, 'wall clock jumped: time-boxed sales paused');
        void this.refreshNtp();
      }
      const again = this.vouching(hub, offset, this.jumpSeenAt);
      if (!again) return no('clock_jumped', drift);
      void this.persist(this.establish(again, offset));
      return yes(again);
    }
    const source = this.vouching(hub, offset);
    if (!source) return no('never_set');
    void this.persist(this.establish(source, offset));
    return yes(source);
  }

  /**
   * Staff vouch for the clock as it reads now, for this boot (POST /v1/clock/trust). Refused with
   * CLOCK_UNTRUSTED when the clock is below the hub floor: that clock is provably wrong.
   */
  async override(by: string): Promise<ClockJudgement> {
    const now = this.src.wall();
    const hub = this.hubFloor();
    if (hub && now < hub.issuedAt - this.opts.jumpToleranceMs) {
      throw new KitError(
        'CLOCK_UNTRUSTED',
        `the clock reads ${new Date(now).toISOString()}, before the hub's signed time ${new Date(hub.issuedAt).toISOString()}: set the clock first`,
        {
          reason: 'below_hub_floor',
          now: new Date(now).toISOString(),
          hubFloor: new Date(hub.issuedAt).toISOString(),
        },
      );
    }
    const rec = this.establish('override', now - this.src.mono(), by);
    await writeClockTrust(this.store, rec);
    return this.judge();
  }

  /** What sale windows are judged by (OrderService's saleClock). */
  saleClock(): { now: number; trusted: boolean } {
    const j = this.judge();
    return { now: j.now, trusted: j.trusted };
  }

  view(j: ClockJudgement = this.judge()): ClockTrustView {
    const hub = this.hubFloor();
    return {
      trusted: j.trusted,
      source: j.source,
      reason: j.reason,
      now: new Date(j.now).toISOString(),
      since: j.trusted && this.rec ? this.rec.at : null,
      hubFloor: hub ? new Date(hub.issuedAt).toISOString() : null,
      ...(j.jumpMs !== undefined ? { jumpMs: j.jumpMs } : {}),
      sources: {
        ntp: this.ntp ?? null,
        rtc: this.rtc,
        hub: hub?.bootId === this.boot,
        override: this.rec?.source === 'override',
      },
    };
  }
}
