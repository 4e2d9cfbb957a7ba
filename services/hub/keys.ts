// The hub's catalog signing key: ed25519, generated on first start into its data dir (the layout of
// core/data-dir.ts, loaded through the one secret loader of core/secrets.ts), its public half beside
// it for kits and `popkit up`. The admin token and the held-token key are plain core/secrets.ts
// secrets (hub-service.ts).

import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import { parsePrivateKey } from '../../core/catalog-signing.ts';
import { hubDataLayout } from '../../core/data-dir.ts';
import { loadOrCreateSecretFile } from '../../core/secrets.ts';

function writeAtomic(file: string, data: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.renameSync(tmp, file);
}

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
  const pem = loadOrCreateSecretFile(layout.signingKey, () =>
    Buffer.from(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' })),
  );
  const privateKey = parsePrivateKey(pem.value.toString('utf8'));
  const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string;
  writeAtomic(layout.signingPub, publicPem, 0o644);
  return { privateKey, publicPem, pubFile: layout.signingPub };
}
