import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { dataLayout } from '../../core/data-dir.ts';
import { loadOrCreateKey } from '../../core/secrets.ts';
import {
  openKitStore,
  putTokenInTxn,
  readSealedToken,
  reanchorSealedTokens,
} from '../../core/store/index.ts';
import { TokenVault, type VaultClock } from '../../core/token-vault.ts';
import { tempDir } from '../support/checkout.ts';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const REAL_NOW = Date.UTC(2026, 5, 1, 12);

/** A kit's clocks: the wall clock can be set (NTP), the monotonic one only runs; a reboot changes the boot id. */
function fakeClock(wall: number) {
  const c = { wallMs: wall, monoMs: 5_000, boot: 'boot-1' };
  const clock: VaultClock = { wall: () => c.wallMs, mono: () => c.monoMs, bootId: () => c.boot };
  return {
    clock,
    run(ms: number) {
      c.wallMs += ms;
      c.monoMs += ms;
    },
    setWall(ms: number) {
      c.wallMs = ms;
    },
    reboot(wall: number) {
      c.boot = `boot-${Number(c.boot.slice(5)) + 1}`;
      c.monoMs = 3_000;
      c.wallMs = wall;
    },
  };
}

/** The device key as checkout and sync load it. */
const loadOrCreateTokenKey = (dataDir: string, hex?: string) =>
  loadOrCreateKey(dataLayout(dataDir).tokenKey, hex).value;

describe('TokenVault', () => {
  test('seal/open round trip; ciphertext does not contain the token', () => {
    const dir = tempDir();
    const vault = new TokenVault(loadOrCreateTokenKey(dir));
    const sealed = vault.seal('tok_live_abcdef123456', 60_000, 1000);
    assert.equal(vault.open(sealed, 2000), 'tok_live_abcdef123456');
    assert.equal(sealed.hint, '3456');
    assert.ok(!JSON.stringify(sealed).includes('abcdef'));
  });

  test('expired and tampered tokens are refused with codes', () => {
    const t = fakeClock(0);
    const vault = new TokenVault(loadOrCreateTokenKey(tempDir()), t.clock);
    const sealed = vault.seal('tok_sandbox_approve_0001', 1000, 0);
    t.run(5000);
    assert.throws(() => vault.open(sealed, 5000), { code: 'TOKEN_EXPIRED' });
    const ct = Buffer.from(sealed.ct, 'base64');
    ct[0] = (ct[0] ?? 0) ^ 1;
    assert.throws(() => vault.open({ ...sealed, ct: ct.toString('base64') }, 10), { code: 'TOKEN_INVALID' });
    // stretching the TTL is tampering too: the expiry is authenticated
    assert.throws(() => vault.open({ ...sealed, expiresAt: sealed.expiresAt + 1e9 }, 10), {
      code: 'TOKEN_INVALID',
    });
  });

  test('the device key is generated once with mode 0600 and reused', () => {
    const dir = tempDir();
    const a = loadOrCreateTokenKey(dir);
    const b = loadOrCreateTokenKey(dir);
    assert.deepEqual(a, b);
    const st = fs.statSync(path.join(dir, 'keys', 'token.key'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(loadOrCreateTokenKey(dir, 'ab'.repeat(32)).toString('hex'), 'ab'.repeat(32));
  });
});

describe('token expiry and clock correction (no RTC, then NTP)', () => {
  const key = () => loadOrCreateTokenKey(tempDir());

  test('a token sealed while the clock was a day behind still opens after NTP corrects it', () => {
    const t = fakeClock(REAL_NOW - DAY);
    const vault = new TokenVault(key(), t.clock);
    const sealed = vault.seal('tok_live_behind_0001', HOUR, t.clock.wall());
    t.run(10 * 60_000);
    t.setWall(REAL_NOW + 10 * 60_000); // NTP: the wall clock jumps a day forward
    assert.equal(vault.open(sealed, t.clock.wall()), 'tok_live_behind_0001');
  });

  test('a genuinely old token still expires, whatever the wall clock says', () => {
    const t = fakeClock(REAL_NOW);
    const vault = new TokenVault(key(), t.clock);
    const sealed = vault.seal('tok_live_old_0002', HOUR, t.clock.wall());
    t.run(HOUR + 1);
    t.setWall(REAL_NOW - DAY); // a clock set back does not make it young again
    assert.throws(() => vault.open(sealed, t.clock.wall()), { code: 'TOKEN_EXPIRED' });
  });

  test('the anchor is authenticated: moving it is tampering', () => {
    const t = fakeClock(REAL_NOW);
    const vault = new TokenVault(key(), t.clock);
    const sealed = vault.seal('tok_live_anchor_0003', HOUR, t.clock.wall());
    assert.ok(sealed.anchor);
    t.run(2 * HOUR);
    for (const anchor of [
      { ...sealed.anchor, mono: sealed.anchor.mono + 2 * HOUR },
      { ...sealed.anchor, ttlMs: 10 * HOUR },
      { ...sealed.anchor, boot: 'boot-9' },
    ]) {
      assert.throws(() => vault.open({ ...sealed, anchor }), { code: 'TOKEN_INVALID' });
    }
    const { anchor: _dropped, ...bare } = sealed;
    assert.throws(() => vault.open(bare), { code: 'TOKEN_INVALID' });
  });

  test('across a reboot the wall expiry decides; re-anchoring in the sealing boot carries the correction', () => {
    const t = fakeClock(REAL_NOW - DAY);
    const vault = new TokenVault(key(), t.clock);
    const sealed = vault.seal('tok_live_reboot_0004', HOUR, t.clock.wall());
    t.run(60_000);
    assert.equal(vault.reanchor(sealed), null, 'no correction yet: nothing to rewrite');
    t.setWall(REAL_NOW + 60_000);
    const fixed = vault.reanchor(sealed);
    assert.ok(fixed);
    assert.equal(fixed.expiresAt, REAL_NOW + HOUR);
    assert.equal(vault.reanchor(fixed), null, 'idempotent');
    t.reboot(REAL_NOW + 20 * 60_000);
    assert.equal(vault.open(fixed), 'tok_live_reboot_0004');
    // the seal as first written carries the day-behind expiry into the next boot (the documented limit)
    assert.throws(() => vault.open(sealed), { code: 'TOKEN_EXPIRED' });
    t.setWall(REAL_NOW + HOUR + 1);
    assert.throws(() => vault.open(fixed), { code: 'TOKEN_EXPIRED' });
    // a seal of another boot is not re-anchored (its monotonic age is unknown here)
    assert.equal(vault.reanchor(fixed), null);
  });

  test('a tampered seal is never re-anchored into a valid one', () => {
    const t = fakeClock(REAL_NOW - DAY);
    const vault = new TokenVault(key(), t.clock);
    const sealed = vault.seal('tok_live_tamper_0006', HOUR, t.clock.wall());
    assert.ok(sealed.anchor);
    t.setWall(REAL_NOW);
    // a younger anchor would buy the token hours of life: refused, not rewritten
    const forged = { ...sealed, anchor: { ...sealed.anchor, mono: sealed.anchor.mono + 3 * HOUR } };
    assert.throws(() => vault.reanchor(forged), { code: 'TOKEN_INVALID' });
  });

  test('reanchorSealedTokens rewrites the stored seals of this boot and nothing else', async (t) => {
    const c = fakeClock(REAL_NOW - DAY);
    const vault = new TokenVault(key(), c.clock);
    const store = openKitStore(tempDir());
    t.after(() => store.close());
    const a = vault.seal('tok_live_store_000a', HOUR, c.clock.wall());
    await store.root.transaction(() => {
      putTokenInTxn(store, 'order-a', a);
    });
    assert.equal(await reanchorSealedTokens(store, vault), 0);
    c.setWall(REAL_NOW);
    assert.equal(await reanchorSealedTokens(store, vault), 1);
    const stored = readSealedToken(store, 'order-a');
    assert.equal(stored?.expiresAt, REAL_NOW + HOUR);
    c.reboot(REAL_NOW + 30 * 60_000);
    assert.equal(vault.open(stored as NonNullable<typeof stored>), 'tok_live_store_000a');
  });

  test('the system clock seals with this boot id and a monotonic anchor', () => {
    const vault = new TokenVault(key());
    const sealed = vault.seal('tok_live_system_0005', HOUR);
    assert.match(sealed.anchor?.boot ?? '', /^[0-9a-f-]{16,64}$/);
    assert.equal(vault.open(sealed, Date.now() + 2 * DAY), 'tok_live_system_0005');
  });
});
