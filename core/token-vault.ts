// Payment session tokens at rest: AES-256-GCM with a device key. The key comes from POPKIT_TOKEN_KEY or
// is generated into <dataDir>/keys/token.key (mode 0600) on first boot (core/secrets.ts loadOrCreateKey
// with dataLayout(dataDir).tokenKey). No plaintext token is ever
// written to disk or to a log; only this module sees one.
//
// Expiry and clocks (docs/security.md#files-logs-clocks-and-replays): a kit may boot with no RTC and
// seal tokens while its wall clock is a day behind, until NTP corrects it. So each seal also records
// its monotonic anchor: the boot id and CLOCK_MONOTONIC (shared by every process of one boot) at
// sealing. Within the same boot a token's age is measured on the monotonic clock, which no clock
// correction moves. Across a reboot the monotonic clock restarts, so the wall-clock expiry decides;
// `reanchor` rewrites that expiry from the monotonic age while the boot lasts (sync runs it
// periodically), so a seal made before NTP corrected the clock carries a true wall expiry into the
// next boot. Anchor and expiry are authenticated (AAD): stretching either is tampering.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { KitError } from './errors.ts';

export interface SealAnchor {
  /** the kernel's boot id at sealing */
  boot: string;
  /** CLOCK_MONOTONIC at sealing, ms */
  mono: number;
  ttlMs: number;
}

export interface SealedToken {
  iv: string; // base64
  tag: string; // base64
  ct: string; // base64
  expiresAt: number; // epoch ms (wall clock)
  hint: string; // last 4 characters, for receipts and support
  /** absent on seals made before anchors existed, or where the boot id cannot be read */
  anchor?: SealAnchor;
}

/** The clocks a vault reads; tests inject their own. */
export interface VaultClock {
  wall(): number;
  /** ms on a clock that no wall-clock correction moves, comparable across processes of one boot */
  mono(): number;
  /** identifies the boot whose monotonic clock `mono` reads; null when unknown */
  bootId(): string | null;
}

let cachedBootId: string | null | undefined;

function readBootId(): string | null {
  if (cachedBootId === undefined) {
    try {
      const id = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      cachedBootId = /^[0-9a-f-]{16,64}$/.test(id) ? id : null;
    } catch {
      cachedBootId = null;
    }
  }
  return cachedBootId;
}

/** Node's hrtime is CLOCK_MONOTONIC on Linux: system-wide since boot, the same in checkout and sync. */
export const systemClock: VaultClock = {
  wall: () => Date.now(),
  mono: () => Number(process.hrtime.bigint() / 1_000_000n),
  bootId: readBootId,
};

/** A re-anchored seal is rewritten only when its wall expiry is off by more than this. */
const REANCHOR_TOLERANCE_MS = 5_000;

function aad(expiresAt: number, anchor: SealAnchor | undefined): Buffer {
  return Buffer.from(
    anchor ? `${expiresAt}|${anchor.boot}|${anchor.mono}|${anchor.ttlMs}` : String(expiresAt),
  );
}

export class TokenVault {
  constructor(
    private readonly key: Buffer,
    private readonly clock: VaultClock = systemClock,
  ) {
    if (key.length !== 32) throw new KitError('CONFIG_INVALID', 'token key must be 32 bytes');
  }

  /** `now` overrides the wall clock only (the expiry written); the anchor always reads the clock. */
  seal(token: string, ttlMs: number, now = this.clock.wall()): SealedToken {
    const boot = this.clock.bootId();
    const anchor = boot ? { boot, mono: this.clock.mono(), ttlMs } : undefined;
    return this.encrypt(token, now + ttlMs, anchor);
  }

  /**
   * The plaintext token; throws TOKEN_EXPIRED past its TTL and TOKEN_INVALID when tampered with.
   * Within the boot that sealed it the age is monotonic and `now` is not consulted.
   */
  open(sealed: SealedToken, now = this.clock.wall()): string {
    const token = this.decrypt(sealed);
    if (this.expired(sealed, now)) throw new KitError('TOKEN_EXPIRED', 'payment token expired');
    return token;
  }

  /**
   * The same token with its wall expiry recomputed from its monotonic age, when it was sealed in this
   * boot and its stored expiry is off (the wall clock was corrected since); null when nothing changes.
   * Throws TOKEN_INVALID when tampered with. An expired token is not re-anchored.
   */
  reanchor(sealed: SealedToken): SealedToken | null {
    const anchor = sealed.anchor;
    if (!anchor || anchor.boot !== this.clock.bootId()) return null;
    const age = this.clock.mono() - anchor.mono;
    if (age > anchor.ttlMs) return null;
    const trueExpiry = this.clock.wall() - age + anchor.ttlMs;
    if (Math.abs(trueExpiry - sealed.expiresAt) <= REANCHOR_TOLERANCE_MS) return null;
    // authenticated (anchor and expiry included) before anything is rewritten from it
    const token = this.decrypt(sealed);
    return this.encrypt(token, trueExpiry, anchor);
  }

  private expired(sealed: SealedToken, now: number): boolean {
    const anchor = sealed.anchor;
    if (anchor && anchor.boot === this.clock.bootId()) {
      return this.clock.mono() - anchor.mono > anchor.ttlMs;
    }
    return now > sealed.expiresAt;
  }

  private encrypt(token: string, expiresAt: number, anchor: SealAnchor | undefined): SealedToken {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(aad(expiresAt, anchor));
    const ct = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
    return {
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      ct: ct.toString('base64'),
      expiresAt,
      hint: token.slice(-4),
      ...(anchor ? { anchor: { ...anchor } } : {}),
    };
  }

  private decrypt(sealed: SealedToken): string {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(sealed.iv, 'base64'));
      decipher.setAAD(aad(sealed.expiresAt, sealed.anchor));
      decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(sealed.ct, 'base64')), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new KitError('TOKEN_INVALID', 'payment token failed authentication');
    }
  }
}
