// The hub's catalog signing key: ed25519, generated on first start into its data dir (the layout of
// core/data-dir.ts, loaded through the one secret loader of core/secrets.ts), its public half beside
// it for kits and `popkit up`. The admin token and the held-token key are plain core/secrets.ts
// secrets (hub-service.ts).

import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import { parsePrivateKey } from '../../core/catalog-signing.ts';
import { hubDataLayout } from '../../core/data-dir.ts';
import { writeFileDurable } from '../../core/durable-file.ts';
import { KitError } from '../../core/errors.ts';
import { loadOrCreateSecretFile } from '../../core/secrets.ts';
import { openerFromPrivate, parseSealPrivateKey, type SealOpener } from '../../core/telemetry-seal.ts';

const isSigningKey = (pem: Buffer): boolean => {
  try {
    parsePrivateKey(pem.toString('utf8'));
    return true;
  } catch {
    return false;
  }
};

/**
 * The signing key, generated on first start (mode 0600; a worker that loses the creation race to
 * another on the same data dir uses the winner's). The public key is written as PEM to
 * hub-signing.pub only after the private key exists, so whoever sees the .pub can rely on it.
 */
export function loadOrCreateSigningKey(dataDir: string): {
  privateKey: KeyObject;
  publicPem: string;
  pubFile: string;
} {
  const layout = hubDataLayout(dataDir);
  // kits trust the public half: once it was published, a lost private key is never silently replaced
  if (!fs.existsSync(layout.signingKey) && fs.existsSync(layout.signingPub)) {
    throw new KitError(
      'CONFIG_INVALID',
      `${layout.signingKey} is missing but ${layout.signingPub} exists: kits trust that key, so a new one is not generated; restore the key from a backup (docs/security.md#secrets-and-keys-on-disk)`,
      { file: layout.signingKey, state: 'missing' },
    );
  }
  // an empty or torn key throws (CONFIG_INVALID, naming the file)
  const pem = loadOrCreateSecretFile(
    layout.signingKey,
    () => Buffer.from(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' })),
    { check: isSigningKey, damaged: 'throw' },
  );
  const privateKey = parsePrivateKey(pem.value.toString('utf8'));
  const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string;
  writeFileDurable(layout.signingPub, publicPem, { mode: 0o644 });
  return { privateKey, publicPem, pubFile: layout.signingPub };
}

const isSealKey = (pem: Buffer): boolean => {
  try {
    parseSealPrivateKey(pem.toString('utf8'));
    return true;
  } catch {
    return false;
  }
};

/**
 * The X25519 key kits seal telemetry to, generated on first start (mode 0600). Nothing stored depends
 * on it (the hub keeps opened telemetry, never the sealed boxes): a damaged one is moved aside and
 * replaced; kits take the new public key from the signed retained message, and entries sealed to the
 * old one go to the dead letters as SEAL_UNKNOWN_KEY.
 */
export function loadOrCreateSealKey(dataDir: string): SealOpener {
  const layout = hubDataLayout(dataDir);
  const pem = loadOrCreateSecretFile(
    layout.sealKey,
    () => Buffer.from(generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' })),
    { check: isSealKey, damaged: 'replace' },
  );
  return openerFromPrivate(parseSealPrivateKey(pem.value.toString('utf8')));
}
