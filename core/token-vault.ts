// Payment session tokens at rest: AES-256-GCM with a device key. The key comes from POPKIT_TOKEN_KEY or
// is generated into <dataDir>/keys/token.key (mode 0600) on first boot (core/secrets.ts loadOrCreateKey
// with dataLayout(dataDir).tokenKey). No plaintext token is ever
// written to disk or to a log; only this module sees one.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KitError } from './errors.ts';

export interface SealedToken {
  iv: string; // base64
  tag: string; // base64
  ct: string; // base64
  expiresAt: number; // epoch ms
  hint: string; // last 4 characters, for receipts and support
}

export class TokenVault {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new KitError('CONFIG_INVALID', 'token key must be 32 bytes');
  }

  seal(token: string, ttlMs: number, now = Date.now()): SealedToken {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const expiresAt = now + ttlMs;
    cipher.setAAD(Buffer.from(String(expiresAt)));
    const ct = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
    return {
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      ct: ct.toString('base64'),
      expiresAt,
      hint: token.slice(-4),
    };
  }

  /** The plaintext token; throws TOKEN_EXPIRED past its TTL and TOKEN_INVALID when tampered with. */
  open(sealed: SealedToken, now = Date.now()): string {
    if (now > sealed.expiresAt) throw new KitError('TOKEN_EXPIRED', 'payment token expired');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(sealed.iv, 'base64'));
      decipher.setAAD(Buffer.from(String(sealed.expiresAt)));
      decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(sealed.ct, 'base64')), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new KitError('TOKEN_INVALID', 'payment token failed authentication');
    }
  }
}
