// Buyer device tokens (docs/security.md#drain-proofing): the buyer page asks the kit once for a signed
// token (POST /v1/devices) and sends it with every order in `x-popkit-device`. It names a random device
// id the kit recorded and carries an HMAC-SHA256 of it under a kit key, so it cannot be forged or
// altered; it says nothing about the phone (no fingerprinting). A script can ask for more tokens, so
// issuing is tightly rate limited per address.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { KitError } from '../../core/errors.ts';
import { loadOrCreateKey } from '../../core/secrets.ts';
import { readDevice, recordDevice } from '../../core/store/devices.ts';
import type { KitStore } from '../../core/store/index.ts';

/** The one declaration of a device token's form: `pkd1.<device id: 16 random bytes>.<HMAC-SHA256>`, base64url. */
export const DEVICE_TOKEN_PATTERN = '^pkd1\\.([A-Za-z0-9_-]{22})\\.([A-Za-z0-9_-]{43})$';
const DEVICE_TOKEN_RE = new RegExp(DEVICE_TOKEN_PATTERN);
const PREFIX = 'pkd1';

export interface IssuedDevice {
  id: string;
  token: string;
  issuedAt: string;
}

export class DeviceTokens {
  private constructor(
    private readonly key: Buffer,
    private readonly store: KitStore,
  ) {}

  /**
   * The kit's device key from `file` (created durably on first use, 0600 in the private keys dir; a
   * file others may read is refused with SECRET_INSECURE, a damaged one with CONFIG_INVALID).
   */
  static open(file: string, store: KitStore): DeviceTokens {
    return new DeviceTokens(loadOrCreateKey(file).value, store);
  }

  /** For tests of the token form: a key given directly. */
  static withKey(key: Buffer, store: KitStore): DeviceTokens {
    return new DeviceTokens(key, store);
  }

  private mac(id: string): string {
    return createHmac('sha256', this.key).update(`${PREFIX}.${id}`).digest('base64url');
  }

  /** A new device: recorded durably before its token is answered. */
  async issue(now: number): Promise<IssuedDevice> {
    const id = randomBytes(16).toString('base64url');
    const issuedAt = new Date(now).toISOString();
    await recordDevice(this.store, id, issuedAt);
    return { id, token: `${PREFIX}.${id}.${this.mac(id)}`, issuedAt };
  }

  /** The device id a token names; DEVICE_INVALID when malformed, forged, or not issued by this kit. */
  verify(token: string): string {
    const m = DEVICE_TOKEN_RE.exec(token);
    const id = m?.[1];
    const given = m?.[2];
    if (!id || !given) {
      throw new KitError('DEVICE_INVALID', 'malformed device token: ask the kit for one (POST /v1/devices)');
    }
    // both are 43 ASCII characters: compared in constant time
    if (!timingSafeEqual(Buffer.from(given), Buffer.from(this.mac(id))) || !readDevice(this.store, id)) {
      throw new KitError(
        'DEVICE_INVALID',
        'this device token was not issued by this kit: ask for a new one (POST /v1/devices)',
      );
    }
    return id;
  }
}
