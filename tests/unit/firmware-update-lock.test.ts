import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { UpdateLock } from '../../firmware/update-lock.ts';

describe('update lock lease', () => {
  let root: string;
  let env: NodeJS.ProcessEnv;
  let lockFile: string;
  let now: number;
  const H = 3_600_000;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-lock-'));
    env = { POPKIT_HOST_ROOT: root };
    lockFile = path.join(root, 'tmp/balena/updates.lock');
    now = Date.UTC(2026, 5, 1, 12);
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  test('held while an event is live, released after; the file lives at /tmp/balena/updates.lock', () => {
    const lock = new UpdateLock(18 * H, env, () => now);
    assert.equal(lock.file, lockFile);
    assert.equal(lock.reconcile(null).held, false);
    assert.equal(fs.existsSync(lockFile), false);
    const v = lock.reconcile('event-live');
    assert.equal(v.held, true);
    assert.equal(v.reason, 'event-live');
    const content = JSON.parse(fs.readFileSync(lockFile, 'utf8'));
    assert.equal(content.owner, 'popkit-kitd');
    assert.equal(content.expiresAt, new Date(now + 18 * H).toISOString());
    now += H;
    assert.equal(lock.reconcile('unsynced-orders').reason, 'unsynced-orders');
    assert.equal(JSON.parse(fs.readFileSync(lockFile, 'utf8')).reason, 'unsynced-orders');
    assert.equal(lock.reconcile(null).held, false);
    assert.equal(fs.existsSync(lockFile), false);
  });

  test('created with O_EXCL: a lock someone else holds is left alone and shown as foreign', () => {
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    fs.writeFileSync(lockFile, ''); // balena's lockfile library writes an empty file
    const lock = new UpdateLock(H, env, () => now);
    assert.equal(lock.healStale(), false);
    const v = lock.reconcile('event-live');
    assert.equal(v.held, false);
    assert.equal(v.foreign, true);
    lock.reconcile(null);
    assert.equal(fs.existsSync(lockFile), true, 'never removes a lock it did not take');
    fs.rmSync(lockFile);
    assert.equal(lock.reconcile('event-live').held, true, 'takes it once the other holder is gone');
  });

  test('a stale lock from a crashed kitd is healed at boot', () => {
    const crashed = new UpdateLock(H, env, () => now);
    crashed.reconcile('event-live');
    assert.ok(fs.existsSync(lockFile));
    // the process dies without releasing; a new kitd boots
    const fresh = new UpdateLock(H, env, () => now);
    assert.equal(fresh.healStale(), true);
    assert.equal(fs.existsSync(lockFile), false);
    assert.equal(fresh.view().healedAtBoot, true);
    assert.equal(fresh.healStale(), false, 'nothing left to heal');
    // and it re-decides from the present state
    assert.equal(fresh.reconcile('event-live').held, true);
    assert.equal(fresh.healStale(), false, 'its own lock is not stale');
    assert.ok(fs.existsSync(lockFile));
  });

  test('the lease expires: released, not retaken until the reason clears, then usable again', () => {
    const lock = new UpdateLock(2 * H, env, () => now);
    lock.reconcile('event-live');
    now += 2 * H - 1;
    assert.equal(lock.reconcile('event-live').held, true);
    now += 1;
    const v = lock.reconcile('event-live');
    assert.equal(v.held, false);
    assert.equal(v.leaseExpired, true);
    assert.equal(fs.existsSync(lockFile), false);
    now += H;
    assert.equal(lock.reconcile('event-live').held, false, 'same episode: stays released');
    lock.reconcile(null);
    assert.equal(lock.reconcile('event-live').held, true, 'a new episode takes a new lease');
  });

  test('a lock removed from under it (operator override) is retaken on the next tick', () => {
    const lock = new UpdateLock(H, env, () => now);
    lock.reconcile('event-live');
    fs.rmSync(lockFile);
    assert.equal(lock.reconcile('event-live').held, true);
    assert.ok(fs.existsSync(lockFile));
  });

  test('an unwritable lock directory is a status, not a crash', () => {
    fs.writeFileSync(path.join(root, 'tmp'), 'not a directory');
    const lock = new UpdateLock(H, env, () => now);
    const v = lock.reconcile('event-live');
    assert.equal(v.held, false);
  });
});

describe('host OS update lock (flock on the same file, held with the app lock)', () => {
  let root: string;
  let env: NodeJS.ProcessEnv;
  let lockFile: string;
  const H = 3_600_000;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-oslock-'));
    env = { POPKIT_HOST_ROOT: root };
    lockFile = path.join(root, 'tmp/balena/updates.lock');
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  /** What a host OS script sees: can it take an exclusive flock right now? (util-linux flock(1)) */
  function hostScriptCanLock(): boolean {
    const r = spawnSync('flock', [
      '--exclusive',
      '--nonblock',
      '--conflict-exit-code',
      '75',
      lockFile,
      'true',
    ]);
    assert.ok(r.status === 0 || r.status === 75, `flock(1) ran: ${r.status} ${r.error ?? ''}`);
    return r.status === 0;
  }
  /** Bounded wait (by attempts, never asserting a time) for a condition the flock child changes. */
  async function eventually(cond: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 500; i++) {
      if (cond()) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail(`never: ${what}`);
  }

  /** flock(1) on a descriptor of the same file (the inode survives the unlink at release). */
  function canLockFd(fd: number): boolean {
    const r = spawnSync('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', '75', '3'], {
      stdio: ['ignore', 'ignore', 'ignore', fd],
    });
    assert.ok(r.status === 0 || r.status === 75, `flock(1) ran: ${r.status} ${r.error ?? ''}`);
    return r.status === 0;
  }

  test('taken with the app lock, so a host OS script cannot lock; released with it', () => {
    let now = Date.UTC(2026, 5, 1, 12);
    const lock = new UpdateLock(18 * H, env, () => now);
    assert.equal(lock.hostOsLockHeld(), false);
    lock.reconcile('event-live');
    assert.ok(fs.existsSync(lockFile), 'app lock');
    assert.equal(lock.hostOsLockHeld(), true);
    assert.equal(hostScriptCanLock(), false, 'a host OS update waits');
    now += H;
    // a new reason rewrites the file (a new inode): the host OS lock follows it
    lock.reconcile('unsynced-orders');
    assert.equal(hostScriptCanLock(), false, 'still held after the rewrite');
    const probe = fs.openSync(lockFile, 'r');
    try {
      assert.equal(canLockFd(probe), false);
      lock.reconcile(null);
      assert.equal(lock.hostOsLockHeld(), false);
      assert.equal(fs.existsSync(lockFile), false);
      assert.equal(canLockFd(probe), true, 'the lock on that file is gone');
    } finally {
      fs.closeSync(probe);
    }
    // the release did not leave (or make) a file behind that would block app updates
    assert.equal(fs.existsSync(lockFile), false);
  });

  test('released when the lease expires, like the app lock', () => {
    let now = Date.UTC(2026, 5, 1, 12);
    const lock = new UpdateLock(2 * H, env, () => now);
    lock.reconcile('event-live');
    assert.equal(lock.hostOsLockHeld(), true);
    now += 3 * H;
    const v = lock.reconcile('event-live');
    assert.equal(v.held, false);
    assert.equal(v.leaseExpired, true);
    assert.equal(lock.hostOsLockHeld(), false);
  });

  test('when kitd dies the kernel drops it: a holder process killed leaves host updates free', async () => {
    // a kitd in its own process takes both locks, then is killed without releasing anything
    const script = `import { UpdateLock } from ${JSON.stringify(path.resolve(import.meta.dirname, '../../firmware/update-lock.ts'))};
const l = new UpdateLock(3600000, { POPKIT_HOST_ROOT: ${JSON.stringify(root)} });
l.reconcile('event-live');
const t = setInterval(() => { if (l.hostOsLockHeld()) { process.stdout.write('held\\n'); clearInterval(t); setInterval(() => {}, 1000); } }, 5);`;
    const kid = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      let out = '';
      kid.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      await eventually(() => out.includes('held'), 'child kitd holds the lock');
      assert.equal(hostScriptCanLock(), false);
      kid.kill('SIGKILL');
      await eventually(() => hostScriptCanLock(), 'lock dropped after the holder died');
    } finally {
      kid.kill('SIGKILL');
    }
  });

  test('a lock another process already holds: no host lock of ours, updates stay blocked', () => {
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    const lock = new UpdateLock(18 * H, env, () => Date.UTC(2026, 5, 1, 12));
    // a foreign app lock (the supervisor's): we take neither
    fs.writeFileSync(lockFile, '');
    assert.equal(lock.reconcile('event-live').held, false);
    assert.equal(lock.hostOsLockHeld(), false);
  });
});
