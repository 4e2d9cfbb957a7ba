// Sealed telemetry (core/telemetry-seal.ts): a round trip, and every way an envelope can be wrong
// refused with its code: tampered ct/enc/aad, another hub key, an entry replayed under another kit or
// entry id, hostile envelopes; the signed seal-key message verified as catalogs are.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  hpkeOpenBase,
  hpkeSealBase,
  kidOf,
  MAX_OPENED_BYTES,
  open,
  openerFromPrivate,
  rawX25519,
  SEAL_ALG,
  SEAL_ALG_DEFLATE,
  seal,
  signSealKey,
  telemetryAad,
  verifySealKey,
  x25519PrivateFromRaw,
} from '../../core/telemetry-seal.ts';

const hub = openerFromPrivate(generateKeyPairSync('x25519').privateKey);
const target = { kid: hub.kid, publicKey: hub.publicKey };
const ctx = { kitId: 'kit-a', entryId: '0000000001-000001' };
const plain = Buffer.from(JSON.stringify({ popkit_orders_total: 3 }));

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
  return 'did not throw';
}

const flip = (b64: string, at = 0): string => {
  const b = Buffer.from(b64, 'base64url');
  b[at % b.length] = (b[at % b.length] ?? 0) ^ 0x01;
  return b.toString('base64url');
};

describe('telemetry seal', () => {
  test('the construction is RFC 9180 base mode: Appendix A.1 (X25519, HKDF-SHA256, AES-128-GCM) reproduced', () => {
    const h = (x: string) => Buffer.from(x, 'hex');
    const skE = x25519PrivateFromRaw(h('52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736'));
    const skR = x25519PrivateFromRaw(h('4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8'));
    const pkR = h('3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d');
    assert.deepEqual(openerFromPrivate(skR).publicKey, pkR);
    const info = h('4f6465206f6e2061204772656369616e2055726e');
    const aad = h('436f756e742d30');
    const pt = h('4265617574792069732074727574682c20747275746820626561757479');
    const { enc, ct } = hpkeSealBase('aes-128-gcm', pkR, info, aad, pt, skE);
    assert.equal(enc.toString('hex'), '37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431');
    assert.equal(
      ct.toString('hex'),
      'f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a',
    );
    assert.deepEqual(hpkeOpenBase('aes-128-gcm', skR, pkR, enc, info, aad, ct), pt);
    // the same keys under the telemetry AEAD (AES-256-GCM, suite id 0x0002) give other bytes, and open
    const other = hpkeSealBase('aes-256-gcm', pkR, info, aad, pt, skE);
    assert.notEqual(other.ct.toString('hex'), ct.toString('hex'));
    assert.deepEqual(hpkeOpenBase('aes-256-gcm', skR, pkR, other.enc, info, aad, other.ct), pt);
    assert.throws(() => hpkeOpenBase('aes-128-gcm', skR, pkR, other.enc, info, aad, other.ct));
  });

  test('round trip, and the ciphertext holds no plaintext', () => {
    const env = seal(target, plain, telemetryAad(ctx));
    assert.equal(env.alg, SEAL_ALG);
    assert.equal(env.kid, kidOf(hub.publicKey));
    assert.match(env.kid, /^[0-9a-f]{16}$/);
    assert.ok(!JSON.stringify(env).includes('popkit_orders_total'));
    assert.deepEqual(open(hub, env, telemetryAad(ctx)), plain);
    // a fresh ephemeral key each time: the same plaintext never seals to the same bytes
    const again = seal(target, plain, telemetryAad(ctx));
    assert.notEqual(again.enc, env.enc);
    assert.notEqual(again.ct, env.ct);
  });

  test('compressed: smaller, opens to the same bytes; a swapped alg or a deflate bomb does not open', () => {
    const minute = Buffer.from(
      JSON.stringify(
        Array.from({ length: 60 }, (_, i) => ({ t: i, v: { popkit_orders_total: i, popkit_viewers: 3 } })),
      ),
    );
    const env = seal(target, minute, telemetryAad(ctx), { deflate: true });
    assert.equal(env.alg, SEAL_ALG_DEFLATE);
    assert.ok(Buffer.from(env.ct, 'base64url').length < minute.length / 3);
    assert.deepEqual(open(hub, env, telemetryAad(ctx)), minute);
    // the alg is bound into the AAD: relabelled, neither way opens
    assert.equal(
      code(() => open(hub, { ...env, alg: SEAL_ALG }, telemetryAad(ctx))),
      'SEAL_OPEN_FAILED',
    );
    const plainEnv = seal(target, minute, telemetryAad(ctx));
    assert.equal(
      code(() => open(hub, { ...plainEnv, alg: SEAL_ALG_DEFLATE }, telemetryAad(ctx))),
      'SEAL_OPEN_FAILED',
    );
    // anyone can seal to the hub key: a small box that inflates past the bound is refused, not inflated
    const bomb = seal(target, Buffer.alloc(MAX_OPENED_BYTES + 1), telemetryAad(ctx), { deflate: true });
    assert.ok(bomb.ct.length < 20_000);
    assert.equal(
      code(() => open(hub, bomb, telemetryAad(ctx))),
      'SEAL_MALFORMED',
    );
  });

  test('tampered ct, enc or aad does not open', () => {
    const env = seal(target, plain, telemetryAad(ctx));
    assert.equal(
      code(() => open(hub, { ...env, ct: flip(env.ct, 3) }, telemetryAad(ctx))),
      'SEAL_OPEN_FAILED',
    );
    // the tag itself
    const tagAt = Buffer.from(env.ct, 'base64url').length - 1;
    assert.equal(
      code(() => open(hub, { ...env, ct: flip(env.ct, tagAt) }, telemetryAad(ctx))),
      'SEAL_OPEN_FAILED',
    );
    assert.equal(
      code(() => open(hub, { ...env, enc: flip(env.enc, 5) }, telemetryAad(ctx))),
      'SEAL_OPEN_FAILED',
    );
    assert.equal(
      code(() => open(hub, env, telemetryAad({ ...ctx, entryId: `${ctx.entryId}x` }))),
      'SEAL_OPEN_FAILED',
    );
  });

  test('an entry replayed under another kit does not open', () => {
    const env = seal(target, plain, telemetryAad(ctx));
    assert.equal(
      code(() => open(hub, env, telemetryAad({ ...ctx, kitId: 'kit-b' }))),
      'SEAL_OPEN_FAILED',
    );
    // nor does a kit id that only shifts the separator
    assert.equal(
      code(() => open(hub, env, telemetryAad({ kitId: 'kit-a\u00000000000001', entryId: '000001' }))),
      'SEAL_OPEN_FAILED',
    );
  });

  test('sealed to another hub key: named by its kid', () => {
    const other = openerFromPrivate(generateKeyPairSync('x25519').privateKey);
    const env = seal({ kid: other.kid, publicKey: other.publicKey }, plain, telemetryAad(ctx));
    assert.equal(
      code(() => open(hub, env, telemetryAad(ctx))),
      'SEAL_UNKNOWN_KEY',
    );
    // a kid that lies about the key it was sealed to still does not open
    assert.equal(
      code(() => open(hub, { ...env, kid: hub.kid }, telemetryAad(ctx))),
      'SEAL_OPEN_FAILED',
    );
  });

  test('hostile envelopes are refused with a code, never a crash', () => {
    const env = seal(target, plain, telemetryAad(ctx));
    const hostile: unknown[] = [
      null,
      'sealed',
      42,
      [],
      {},
      { ...env, sealed: 2 },
      { ...env, alg: 'none' },
      { ...env, kid: 'ABCDEF0123456789' },
      { ...env, kid: '\u0000'.repeat(16) },
      { ...env, enc: '' },
      { ...env, enc: 'A'.repeat(43) + '=' },
      { ...env, ct: '' },
      { ...env, ct: 'AAAA' },
      { ...env, enc: Buffer.alloc(32).toString('base64url') },
      { ...env, extra: 1 },
      JSON.parse(
        `{"__proto__":{"x":1},"sealed":1,"alg":"${SEAL_ALG}","kid":"${env.kid}","enc":"${env.enc}","ct":"${env.ct}"}`,
      ),
      { ...env, ct: 'A'.repeat(2_000_001) },
      { ...env, enc: 12 },
    ];
    for (const h of hostile) {
      const c = code(() => open(hub, h, telemetryAad(ctx)));
      assert.ok(
        ['SEAL_MALFORMED', 'SEAL_OPEN_FAILED', 'SEAL_UNKNOWN_KEY'].includes(c),
        `${JSON.stringify(h)?.slice(0, 80)}: ${c}`,
      );
    }
  });

  test('the seal key is published signed, and a forged or altered one is refused', () => {
    const signing = generateKeyPairSync('ed25519');
    const signed = signSealKey(signing.privateKey, hub);
    const got = verifySealKey(signing.publicKey, JSON.stringify(signed));
    assert.equal(got.kid, hub.kid);
    assert.deepEqual(got.publicKey, hub.publicKey);
    // another signer
    const mallory = generateKeyPairSync('ed25519');
    assert.equal(
      code(() => verifySealKey(signing.publicKey, JSON.stringify(signSealKey(mallory.privateKey, hub)))),
      'SEAL_KEY_FORGED',
    );
    // a swapped key under the original signature
    const evil = openerFromPrivate(generateKeyPairSync('x25519').privateKey);
    const payload = JSON.parse(signed.payload);
    payload.publicKey = evil.publicKey.toString('base64url');
    payload.kid = evil.kid;
    assert.equal(
      code(() =>
        verifySealKey(signing.publicKey, JSON.stringify({ ...signed, payload: JSON.stringify(payload) })),
      ),
      'SEAL_KEY_FORGED',
    );
    // signed, but the kid does not name the key
    const lying = openerFromPrivate(generateKeyPairSync('x25519').privateKey);
    const badKid = signSealKey(signing.privateKey, { ...lying, kid: hub.kid });
    assert.equal(
      code(() => verifySealKey(signing.publicKey, JSON.stringify(badKid))),
      'SEAL_KEY_MALFORMED',
    );
    for (const h of [
      '',
      'null',
      '{"v":1}',
      '{"__proto__":{"v":1}}',
      'x'.repeat(5000),
      JSON.stringify({ ...signed, v: 2 }),
    ])
      assert.equal(
        code(() => verifySealKey(signing.publicKey, h)),
        'SEAL_KEY_MALFORMED',
        h.slice(0, 40),
      );
  });

  test('the raw public key is the one the private key makes', () => {
    const kp = generateKeyPairSync('x25519');
    assert.deepEqual(rawX25519(kp.publicKey), openerFromPrivate(kp.privateKey).publicKey);
    assert.equal(rawX25519(kp.publicKey).length, 32);
  });
});
