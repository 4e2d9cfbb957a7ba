import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { dataLayout } from '../../core/data-dir.ts';
import { loadOrCreateKey } from '../../core/secrets.ts';
import { TokenVault } from '../../core/token-vault.ts';
import { tempDir } from '../support/checkout.ts';

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
    const vault = new TokenVault(loadOrCreateTokenKey(tempDir()));
    const sealed = vault.seal('tok_sandbox_approve_0001', 1000, 0);
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
