// The balena update lock as a lease. While an event is live, orders are unsynced or the primary link
// is metered (firmware/update-control.ts), kitd holds
// /tmp/balena/updates.lock (created with O_EXCL, as balena documents, so two holders can never both
// think they created it), and the supervisor leaves the release alone. The lease has a maximum
// duration, so a stuck condition cannot freeze a kit's updates forever, and a lock left by a crashed
// kitd is recognised at boot (its instance id is not ours) and healed. Locks other programs hold
// (the supervisor itself takes this file while it applies an update) are never touched.
// With the app lock kitd also holds the host OS update lock: balena's host OS update and reboot
// scripts wait while a process holds an exclusive flock(2) on the same file (balena's update-locking
// docs: two mechanisms, one path). Node has no flock, so util-linux's flock(1) locks a descriptor
// kitd keeps open: released with the app lock, and if kitd dies the kernel closes the descriptor and
// drops the lock, so a crashed kitd cannot block host OS updates either.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UPDATE_LOCK_REASONS, type UpdateLockViewT } from '../core/contracts/run-status.ts';
import { writeFileDurable } from '../core/durable-file.ts';
import { HOST_PATHS, hostPath } from '../core/host-paths.ts';
import { moduleLogger } from '../core/logger.ts';

export interface LockContent {
  owner: 'popkit-kitd';
  instance: string;
  pid: number;
  reason: string;
  since: string;
  expiresAt: string;
}

export type UpdateLockView = UpdateLockViewT;

export class UpdateLock {
  private readonly log = moduleLogger('update-lock');
  readonly file: string;
  readonly instance = randomUUID();
  private held: LockContent | undefined;
  private expiredEpisode = false;
  /** the reason whose lease ran out, while `expiredEpisode` */
  private expiredReason: string | undefined;
  private healed = false;
  /** The descriptor our host OS update lock (flock) lives on, while held. */
  private hostOsFd: number | undefined;

  constructor(
    private readonly maxMs: number,
    env: NodeJS.ProcessEnv = process.env,
    private readonly now: () => number = Date.now,
  ) {
    this.file = hostPath(HOST_PATHS.balenaLockFile, env);
  }

  /**
   * At boot: a lock written by a kitd that is no longer this one is stale (we re-decide from the
   * present state right after), and so is any kitd lock past its lease. Returns whether one was removed.
   */
  healStale(): boolean {
    const c = this.readFile();
    if (!c.exists) return false;
    if (!c.content) return false;
    if (c.content.instance === this.instance) return false;
    try {
      fs.unlinkSync(this.file);
      this.healed = true;
      this.log.warn({ previous: c.content }, 'stale update lock from an earlier kitd removed');
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /**
   * Make the lock match `want` (a reason to hold, or null). Called on every tick; cheap when nothing
   * changes. Never throws for a filesystem problem: it logs and reports `held: false`.
   */
  reconcile(want: string | null): UpdateLockView {
    const now = this.now();
    // a lease that ran out for a lesser reason (a kit on a metered link for a day) does not keep the
    // lock from an event that goes live after it: that reason starts a lease of its own
    if (want && this.expiredEpisode && this.expiredReason && outranks(want, this.expiredReason))
      this.expiredEpisode = false;
    if (!want) {
      this.expiredEpisode = false;
      if (this.held) this.release();
    } else if (this.held) {
      if (now >= Date.parse(this.held.expiresAt)) {
        this.log.warn({ reason: this.held.reason }, 'update lock lease expired: releasing');
        const reason = this.held.reason;
        this.release();
        this.expiredEpisode = true;
        this.expiredReason = reason;
      } else if (!this.stillOurs()) {
        // someone removed it (an operator, a dashboard lock override): take note and take it again
        this.held = undefined;
        this.dropHostOsLock();
        this.acquire(want, now);
      } else if (this.held.reason !== want) {
        // a reason that outranks the held one (an event going live on a kit held for its metered
        // link) gets a lease of its own; a lesser one (live → unsynced) goes on with the running lease
        const renew = outranks(want, this.held.reason)
          ? { since: new Date(now).toISOString(), expiresAt: new Date(now + this.maxMs).toISOString() }
          : {};
        this.held = { ...this.held, reason: want, ...renew };
        this.writeOver(this.held);
      }
    } else if (!this.expiredEpisode) {
      this.acquire(want, now);
    }
    return this.view();
  }

  release(): void {
    if (!this.held) return;
    this.dropHostOsLock();
    if (this.stillOurs()) {
      try {
        fs.unlinkSync(this.file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ err }, 'cannot remove lock');
      }
    }
    this.log.info({ reason: this.held.reason }, 'update lock released');
    this.held = undefined;
  }

  /** Whether kitd holds the host OS update lock (an exclusive flock on the lock file). */
  hostOsLockHeld(): boolean {
    return this.hostOsFd !== undefined;
  }

  view(): UpdateLockView {
    return {
      held: this.held !== undefined,
      reason: this.held?.reason ?? null,
      since: this.held?.since ?? null,
      expiresAt: this.held?.expiresAt ?? null,
      leaseExpired: this.expiredEpisode,
      foreign: !this.held && this.readFile().exists,
      healedAtBoot: this.healed,
      path: this.file,
    };
  }

  private acquire(reason: string, now: number): void {
    const content: LockContent = {
      owner: 'popkit-kitd',
      instance: this.instance,
      pid: process.pid,
      reason,
      since: new Date(now).toISOString(),
      expiresAt: new Date(now + this.maxMs).toISOString(),
    };
    try {
      // /tmp/balena is the supervisor's tmpfs: a power cut empties it, and a lock that survives a
      // crash is healed at boot (healStale), so the directory needs no fsync
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      // created whole and durable, and only when nobody else holds the lock (an exclusive link)
      if (!writeFileDurable(this.file, JSON.stringify(content), { mode: 0o644, exclusive: true })) return;
      this.held = content;
      this.log.info({ reason }, 'update lock taken');
      this.takeHostOsLock();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        // held by someone else: updates are blocked anyway, which is what we wanted
        return;
      }
      this.log.error({ err, file: this.file }, 'cannot take the update lock');
    }
  }

  private takeHostOsLock(): void {
    // a rewrite (writeOver) replaces the file, so the lock is taken again on the new one before the
    // old descriptor is let go: no moment without it
    const previous = this.hostOsFd;
    this.hostOsFd = undefined;
    let fd: number;
    try {
      // opened, never created: the lock file is the one just taken (flock(1) given a path would
      // create an empty file after a release, and an empty file is an app lock nobody would remove)
      fd = fs.openSync(this.file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch (err) {
      if (previous !== undefined) fs.closeSync(previous);
      this.log.error({ err }, 'cannot open the update lock for the host OS lock');
      return;
    }
    // flock(1) locks our descriptor (its fd 3) and exits; the lock belongs to the open file, so it
    // stays while kitd keeps the descriptor open and goes when kitd closes it or dies
    const r = spawnSync('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', '75', '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
      timeout: 5_000,
      encoding: 'utf8',
    });
    if (previous !== undefined) fs.closeSync(previous);
    if (r.status === 0) {
      this.hostOsFd = fd;
      if (previous === undefined) this.log.info({ file: this.file }, 'host OS update lock taken');
      return;
    }
    fs.closeSync(fd);
    if (r.status === 75) this.log.info('host OS update lock held by another process');
    else
      this.log.error(
        { err: r.error, status: r.status, stderr: r.stderr },
        'cannot take the host OS update lock (flock(1) from util-linux missing?)',
      );
  }

  private dropHostOsLock(): void {
    const fd = this.hostOsFd;
    if (fd === undefined) return;
    this.hostOsFd = undefined;
    try {
      fs.closeSync(fd);
    } catch (err) {
      this.log.error({ err }, 'cannot close the host OS update lock');
    }
    this.log.info('host OS update lock released');
  }

  private writeOver(content: LockContent): void {
    try {
      writeFileDurable(this.file, JSON.stringify(content), { mode: 0o644 });
    } catch (err) {
      this.log.error({ err }, 'cannot update lock content');
    }
    if (this.hostOsFd !== undefined) this.takeHostOsLock();
  }

  private stillOurs(): boolean {
    const c = this.readFile();
    return c.content?.instance === this.instance;
  }

  private readFile(): { exists: boolean; content?: LockContent } {
    let raw: string;
    try {
      raw = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { exists: false };
      return { exists: true };
    }
    try {
      const c = JSON.parse(raw) as Partial<LockContent>;
      if (c.owner === 'popkit-kitd' && typeof c.instance === 'string')
        return { exists: true, content: c as LockContent };
    } catch {
      // empty (balena's lockfile library writes nothing) or another program's format
    }
    return { exists: true };
  }
}

/** `a` comes before `b` in UPDATE_LOCK_REASONS (event-live, unsynced-orders, metered-link); unknown reasons rank last. */
function outranks(a: string, b: string): boolean {
  const rank = (r: string) => {
    const i = (UPDATE_LOCK_REASONS as readonly string[]).indexOf(r);
    return i < 0 ? UPDATE_LOCK_REASONS.length : i;
  };
  return rank(a) < rank(b);
}
