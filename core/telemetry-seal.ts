// Telemetry sealed to the hub (#12): a kit's SeriesBatch travels as a SealedEnvelope that only the hub's
// X25519 key opens, so the broker and anyone on the path see ciphertext. The construction is RFC 9180
// (HPKE) base mode, single shot, with node:crypto only: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// AES-256-GCM (suite 0x0020/0x0001/0x0002). The AAD binds the kit id and the outbox entry id, so an
// envelope replayed under another kit's topic or as another entry does not open. `kid` names the
// hub key (first 16 hex of sha256 of its raw public key), so a rotated key is recognised.
//
// The hub's public key reaches kits signed with its ed25519 catalog key (`signSealKey`/`verifySealKey`),
// retained on `popkit/v1/hub/seal-key`; kits keep the newest verified one (core/store/telemetry.ts).
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { signatureVerifies, signEnvelope } from './catalog-signing.ts';
import { type SealKeyPayloadT, type SignedSealKeyT, wire } from './contracts/hub-wire.ts';
import { type SealedEnvelopeT, sealedEnvelope } from './contracts/series.ts';
import { KitError } from './errors.ts';

export const SEAL_ALG = 'HPKE-X25519-SHA256-A256GCM';
/** the same, the plaintext raw-deflated before sealing (what sync sends) */
export const SEAL_ALG_DEFLATE = `${SEAL_ALG}.deflate`;
const KEM_ID = 0x0020;
const KDF_ID = 0x0001;
const INFO = Buffer.from('popkit telemetry v1', 'utf8');

/** RFC 9180's AEADs this module speaks: AES-256-GCM for telemetry; AES-128-GCM only to check it against the RFC's vectors. */
export const HPKE_AEADS = {
  'aes-128-gcm': { id: 0x0001, nk: 16 },
  'aes-256-gcm': { id: 0x0002, nk: 32 },
} as const;
export type HpkeAead = keyof typeof HPKE_AEADS;

const i2osp = (n: number, len: number): Buffer => {
  const b = Buffer.alloc(len);
  b.writeUIntBE(n, 0, len);
  return b;
};
const KEM_SUITE = Buffer.concat([Buffer.from('KEM'), i2osp(KEM_ID, 2)]);
const hpkeSuite = (aead: HpkeAead) =>
  Buffer.concat([Buffer.from('HPKE'), i2osp(KEM_ID, 2), i2osp(KDF_ID, 2), i2osp(HPKE_AEADS[aead].id, 2)]);
const V1 = Buffer.from('HPKE-v1');

const extract = (salt: Buffer, ikm: Buffer): Buffer =>
  createHmac('sha256', salt.length ? salt : Buffer.alloc(32))
    .update(ikm)
    .digest();
function expand(prk: Buffer, info: Buffer, len: number): Buffer {
  const out: Buffer[] = [];
  let prev = Buffer.alloc(0);
  for (let i = 1; out.length * 32 < len; i++) {
    prev = createHmac('sha256', prk)
      .update(Buffer.concat([prev, info, Buffer.from([i])]))
      .digest();
    out.push(prev);
  }
  return Buffer.concat(out).subarray(0, len);
}
const labeledExtract = (suite: Buffer, salt: Buffer, label: string, ikm: Buffer) =>
  extract(salt, Buffer.concat([V1, suite, Buffer.from(label), ikm]));
const labeledExpand = (suite: Buffer, prk: Buffer, label: string, info: Buffer, len: number) =>
  expand(prk, Buffer.concat([i2osp(len, 2), V1, suite, Buffer.from(label), info]), len);

/** The raw 32 bytes of an X25519 public key. */
export function rawX25519(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' }) as { x?: string };
  return Buffer.from(jwk.x ?? '', 'base64url');
}

export function x25519PublicFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new KitError('SEAL_MALFORMED', 'an X25519 public key is 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** `kid`: the first 16 hex of sha256 of the raw public key. */
export const kidOf = (rawPublic: Buffer): string =>
  createHash('sha256').update(rawPublic).digest('hex').slice(0, 16);

/** The AAD of a telemetry entry: the kit and the entry it was sealed as, nothing else opens it. */
export const telemetryAad = (ctx: { kitId: string; entryId: string }): Buffer =>
  Buffer.from(`popkit/telemetry/v1\u0000${ctx.kitId}\u0000${ctx.entryId}`, 'utf8');

function keySchedule(aead: HpkeAead, sharedSecret: Buffer, info: Buffer): { key: Buffer; nonce: Buffer } {
  const suite = hpkeSuite(aead);
  const pskIdHash = labeledExtract(suite, Buffer.alloc(0), 'psk_id_hash', Buffer.alloc(0));
  const infoHash = labeledExtract(suite, Buffer.alloc(0), 'info_hash', info);
  const context = Buffer.concat([Buffer.from([0x00]), pskIdHash, infoHash]);
  const secret = labeledExtract(suite, sharedSecret, 'secret', Buffer.alloc(0));
  return {
    key: labeledExpand(suite, secret, 'key', context, HPKE_AEADS[aead].nk),
    nonce: labeledExpand(suite, secret, 'base_nonce', context, 12),
  };
}

/**
 * RFC 9180 base mode, single shot (sequence 0): SetupBaseS + Seal with DHKEM(X25519, HKDF-SHA256) and
 * HKDF-SHA256. `ephemeral` is fixed only by the RFC's test vectors.
 */
export function hpkeSealBase(
  aead: HpkeAead,
  pkR: Buffer,
  info: Buffer,
  aad: Buffer,
  plaintext: Buffer,
  ephemeral: KeyObject = generateKeyPairSync('x25519').privateKey,
): { enc: Buffer; ct: Buffer } {
  const enc = rawX25519(createPublicKey(ephemeral));
  const dh = diffieHellman({ privateKey: ephemeral, publicKey: x25519PublicFromRaw(pkR) });
  const { key, nonce } = keySchedule(aead, kemSharedSecret(dh, enc, pkR), info);
  const c = createCipheriv(aead, key, nonce);
  c.setAAD(aad);
  return { enc, ct: Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]) };
}

/** RFC 9180 base mode open (SetupBaseR + Open, sequence 0); throws on anything that does not authenticate. */
export function hpkeOpenBase(
  aead: HpkeAead,
  skR: KeyObject,
  pkR: Buffer,
  enc: Buffer,
  info: Buffer,
  aad: Buffer,
  ct: Buffer,
): Buffer {
  if (enc.length !== 32 || ct.length < 16) throw new Error('enc or ct has the wrong length');
  const dh = diffieHellman({ privateKey: skR, publicKey: x25519PublicFromRaw(enc) });
  // an all-zero shared secret: a low-order point (RFC 9180 §7.1.4)
  if (dh.every((b) => b === 0)) throw new Error('low-order enc');
  const { key, nonce } = keySchedule(aead, kemSharedSecret(dh, enc, pkR), info);
  const d = createDecipheriv(aead, key, nonce);
  d.setAAD(aad);
  d.setAuthTag(ct.subarray(ct.length - 16));
  return Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
}

/** An X25519 private key from its raw 32 bytes (PKCS#8 wrapping, RFC 8410). */
export function x25519PrivateFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new KitError('SEAL_MALFORMED', 'an X25519 private key is 32 bytes');
  const prefix = Buffer.from('302e020100300506032b656e04220420', 'hex');
  return createPrivateKey({ key: Buffer.concat([prefix, raw]), format: 'der', type: 'pkcs8' });
}

function kemSharedSecret(dh: Buffer, enc: Buffer, pkR: Buffer): Buffer {
  const prk = labeledExtract(KEM_SUITE, Buffer.alloc(0), 'eae_prk', dh);
  return labeledExpand(KEM_SUITE, prk, 'shared_secret', Buffer.concat([enc, pkR]), 32);
}

/** The hub's key as a kit holds it: raw public key and its kid. */
export interface SealTarget {
  kid: string;
  publicKey: Buffer;
}

/** The plaintext a sealed envelope may inflate to at most (a SeriesBatch is well under it). */
export const MAX_OPENED_BYTES = 8 * 1024 * 1024;

/** The AAD as sealed: the caller's, then the algorithm name, so an `alg` swapped in transit does not open. */
const boundAad = (aad: Buffer, alg: string) =>
  Buffer.concat([aad, Buffer.from([0]), Buffer.from(alg, 'utf8')]);

/**
 * Seal `plaintext` to the hub key for this kit and entry. `deflate`: compressed first (alg
 * `….deflate`; metric names repeat every second, so a minute of JSON shrinks several times).
 * `ephemeral` is for test vectors only.
 */
export function seal(
  target: SealTarget,
  plaintext: Buffer,
  aad: Buffer,
  opts: { deflate?: boolean; ephemeral?: KeyObject } = {},
): SealedEnvelopeT {
  const alg = opts.deflate ? SEAL_ALG_DEFLATE : SEAL_ALG;
  const body = opts.deflate ? deflateRawSync(plaintext) : plaintext;
  const { enc, ct } = hpkeSealBase(
    'aes-256-gcm',
    target.publicKey,
    INFO,
    boundAad(aad, alg),
    body,
    opts.ephemeral,
  );
  return {
    sealed: 1,
    alg,
    kid: target.kid,
    enc: enc.toString('base64url'),
    ct: ct.toString('base64url'),
  };
}

/** The hub's private key with what identifies it. */
export interface SealOpener {
  kid: string;
  publicKey: Buffer;
  privateKey: KeyObject;
}

export function openerFromPrivate(privateKey: KeyObject): SealOpener {
  if (privateKey.asymmetricKeyType !== 'x25519')
    throw new KitError('CONFIG_INVALID', 'telemetry seal key is not X25519');
  const publicKey = rawX25519(createPublicKey(privateKey));
  return { kid: kidOf(publicKey), publicKey, privateKey };
}

/**
 * Open a sealed envelope, or a KitError: SEAL_MALFORMED (not an envelope of ours), SEAL_UNKNOWN_KEY
 * (sealed to another hub key: `kid`), SEAL_OPEN_FAILED (ciphertext, enc or AAD do not authenticate).
 */
export function open(opener: SealOpener, envelope: unknown, aad: Buffer): Buffer {
  if (!sealedEnvelope.check(envelope)) {
    throw new KitError('SEAL_MALFORMED', `sealed envelope: ${sealedEnvelope.errors(envelope, 3).join('; ')}`);
  }
  if (envelope.alg !== SEAL_ALG && envelope.alg !== SEAL_ALG_DEFLATE)
    throw new KitError('SEAL_MALFORMED', `unknown seal algorithm ${envelope.alg}`);
  if (envelope.kid !== opener.kid)
    throw new KitError('SEAL_UNKNOWN_KEY', `sealed to key ${envelope.kid}, the hub's is ${opener.kid}`);
  const enc = Buffer.from(envelope.enc, 'base64url');
  const ct = Buffer.from(envelope.ct, 'base64url');
  if (enc.length !== 32 || ct.length < 16)
    throw new KitError('SEAL_MALFORMED', 'enc or ct has the wrong length');
  let plain: Buffer;
  try {
    plain = hpkeOpenBase(
      'aes-256-gcm',
      opener.privateKey,
      opener.publicKey,
      enc,
      INFO,
      boundAad(aad, envelope.alg),
      ct,
    );
  } catch {
    throw new KitError(
      'SEAL_OPEN_FAILED',
      'sealed envelope does not open (tampered, or sealed for another kit or entry)',
    );
  }
  if (envelope.alg !== SEAL_ALG_DEFLATE) return plain;
  // anyone may seal to the hub's public key: a compressed plaintext is inflated within a bound
  try {
    return inflateRawSync(plain, { maxOutputLength: MAX_OPENED_BYTES });
  } catch {
    throw new KitError(
      'SEAL_MALFORMED',
      `compressed plaintext does not inflate within ${MAX_OPENED_BYTES} bytes`,
    );
  }
}

// ---- the hub's seal key, published to kits signed with the catalog key ----

export function signSealKey(
  signingKey: KeyObject,
  opener: SealOpener,
  issuedAt = new Date().toISOString(),
): SignedSealKeyT {
  const body: SealKeyPayloadT = {
    v: 1,
    use: 'telemetry-seal',
    alg: SEAL_ALG,
    kid: opener.kid,
    publicKey: opener.publicKey.toString('base64url'),
    issuedAt,
  };
  return signEnvelope(signingKey, body);
}

/**
 * The seal target of a signed seal-key message, or a KitError: SEAL_KEY_MALFORMED (not our shape, or a
 * kid that does not name its key), SEAL_KEY_FORGED (the signature does not verify with the hub key).
 */
export function verifySealKey(
  hubPublicKey: KeyObject,
  raw: Buffer | string,
): SealTarget & { issuedAt: string } {
  let outer: unknown;
  try {
    outer = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch {
    throw new KitError('SEAL_KEY_MALFORMED', 'seal key message is not JSON');
  }
  if (!wire.signedSealKey.check(outer))
    throw new KitError(
      'SEAL_KEY_MALFORMED',
      `seal key message: ${wire.signedSealKey.errors(outer, 3).join('; ')}`,
    );
  if (!signatureVerifies(hubPublicKey, outer))
    throw new KitError('SEAL_KEY_FORGED', 'seal key signature does not verify against the hub key');
  let inner: unknown;
  try {
    inner = JSON.parse(outer.payload);
  } catch {
    throw new KitError('SEAL_KEY_MALFORMED', 'seal key payload is not JSON');
  }
  if (!wire.sealKeyPayload.check(inner))
    throw new KitError(
      'SEAL_KEY_MALFORMED',
      `seal key payload: ${wire.sealKeyPayload.errors(inner, 3).join('; ')}`,
    );
  const publicKey = Buffer.from(inner.publicKey, 'base64url');
  if (publicKey.length !== 32 || kidOf(publicKey) !== inner.kid)
    throw new KitError('SEAL_KEY_MALFORMED', 'seal key: kid does not name the key');
  return { kid: inner.kid, publicKey, issuedAt: inner.issuedAt };
}

/** An X25519 private key from PKCS#8 PEM (the hub's key file). */
export function parseSealPrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'x25519') throw new KitError('CONFIG_INVALID', 'seal key is not X25519');
  return key;
}
