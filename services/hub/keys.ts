// The hub's secrets in its data dir: the ed25519 catalog signing key (its public half beside it, for
// kits and `popkit up`) and the admin token.
import { createPublicKey, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parsePrivateKey } from '../../core/catalog-signing.ts';

export function keysDir(dataDir: string): string {
  return path.join(dataDir, 'keys');
}

function writeAtomic(file: string, data: string, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.renameSync(tmp, file);
}

/**
 * The signing key, generated on first start (mode 0600). The public key is written as PEM to
 * hub-signing.pub only after the private key exists, so whoever sees the .pub can rely on it.
 */
export function loadOrCreateSigningKey(dataDir: string): {
  privateKey: KeyObject;
  publicPem: string;
  pubFile: string;
} {
  const dir = keysDir(dataDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keyFile = path.join(dir, 'hub-signing.key');
  const pubFile = path.join(dir, 'hub-signing.pub');
  let privateKey: KeyObject;
  if (fs.existsSync(keyFile)) {
    privateKey = parsePrivateKey(fs.readFileSync(keyFile, 'utf8'));
  } else {
    privateKey = generateKeyPairSync('ed25519').privateKey;
    try {
      fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, {
        mode: 0o600,
        flag: 'wx',
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // another worker on the same data dir won the race: use its key
      privateKey = parsePrivateKey(fs.readFileSync(keyFile, 'utf8'));
    }
  }
  const publicPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string;
  writeAtomic(pubFile, publicPem, 0o644);
  return { privateKey, publicPem, pubFile };
}

/** POPKIT_HUB_ADMIN_TOKEN, else the token in keys/hub-admin.token, generated on first start. */
export function loadOrCreateAdminToken(
  dataDir: string,
  fromEnv?: string,
): { token: string; generated: boolean; file?: string } {
  if (fromEnv) return { token: fromEnv, generated: false };
  const dir = keysDir(dataDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'hub-admin.token');
  try {
    return { token: fs.readFileSync(file, 'utf8').trim(), generated: false, file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(24).toString('base64url');
  try {
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      return { token: fs.readFileSync(file, 'utf8').trim(), generated: false, file };
    }
    throw err;
  }
  return { token, generated: true, file };
}

/** AES-256 key (keys/hub-held-token.key, 0600) sealing tokens held while the gateway is unreachable. */
export function loadOrCreateHeldTokenKey(dataDir: string): Buffer {
  const dir = keysDir(dataDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'hub-held-token.key');
  try {
    fs.writeFileSync(file, randomBytes(32), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return fs.readFileSync(file);
}
