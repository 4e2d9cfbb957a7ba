import assert from 'node:assert/strict';
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
