// Buyer device tokens (docs/security.md#drain-proofing): the buyer page asks the kit once for a signed
// token (POST /v1/devices) and sends it with every order in `x-popkit-device`. It names a random device
// id the kit recorded and carries an HMAC-SHA256 of it under a kit key, so it cannot be forged or
// altered; it says nothing about the phone (no fingerprinting). A script can ask for more tokens, so
// issuing is tightly rate limited per address.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SecretStatusT } from '../../core/contracts/kit-status.ts';
import { KitError } from '../../core/errors.ts';
import { loadDependentKey } from '../../core/secrets.ts';
import { deviceCount, readDevice, recordDevice } from '../../core/store/devices.ts';
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

/** What the kit refuses while the device key is lost and devices depend on it (docs/power-cuts.md). */
const DEVICE_KEY_DEPENDENTS = {
  what: "buyer device tokens (held by buyers' phones)",
  refused:
    'device tokens are neither issued nor accepted (DEVICE_KEY_LOST): buyer-page orders that send one and scarce items for buyers are refused, staff sales continue',
};

export class DeviceTokens {
  private constructor(
    /** undefined while the key is lost and devices depend on it: every issue or check is refused */
    private readonly key: Buffer | undefined,
    private readonly store: KitStore,
    /** the key as found at start (`/v1/status` secrets) */
    readonly status: SecretStatusT,
  ) {}

  /**
   * The kit's device key from `file` (created durably on first use, 0600 in the private keys dir; a
   * file others may read is refused with SECRET_INSECURE). Device tokens on buyers' phones carry a
   * MAC under it, so a missing, empty or torn key is never replaced while the store records devices:
   * issuing and checking are then refused with DEVICE_KEY_LOST and the status says why; with no
   * device recorded it is generated (or replaced, the damaged file kept beside).
   */
  static open(file: string, store: KitStore, onLost: 'refuse' | 'replace' = 'refuse'): DeviceTokens {
    const recorded = deviceCount(store);
    // POPKIT_DEVICE_KEY_LOST=replace: the operator chose a new key over waiting for a backup
    const key = loadDependentKey(
      file,
      undefined,
      () => onLost === 'refuse' && recorded > 0,
      DEVICE_KEY_DEPENDENTS,
    );
    const name = 'keys/device.key';
    if (key.state !== 'ok') {
      return new DeviceTokens(undefined, store, {
        file: name,
        state: key.state,
        refused: 'buyer device tokens',
        message: key.message,
      });
    }
    const replacedOver = key.created && recorded > 0;
    return new DeviceTokens(key.value, store, {
      file: name,
      state: 'ok',
      ...(key.replaced || replacedOver
        ? {
            ...(key.replaced ? { replaced: key.replaced } : {}),
            message: replacedOver
              ? `${file} was ${key.replaced ?? 'missing'} and replaced by a new key although ${recorded} buyer devices depended on it (POPKIT_DEVICE_KEY_LOST=replace): their tokens now fail, the buyer page takes new ones`
              : `${file} was ${key.replaced} and no device depended on it: replaced by a new key (the damaged file is kept beside it)`,
          }
        : {}),
    });
  }

  /** For tests of the token form: a key given directly. */
  static withKey(key: Buffer, store: KitStore): DeviceTokens {
    return new DeviceTokens(key, store, { file: 'keys/device.key', state: 'ok' });
  }

  private mac(id: string): string {
    if (!this.key) {
      throw new KitError(
        'DEVICE_KEY_LOST',
        `buyer device tokens cannot be issued or checked: ${this.status.message ?? 'the device key is lost'}`,
      );
    }
    return createHmac('sha256', this.key).update(`${PREFIX}.${id}`).digest('base64url');
  }

  /** A new device: recorded durably before its token is answered. */
  async issue(now: number): Promise<IssuedDevice> {
    // refused before anything is recorded when the key is lost
    this.mac('');
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
    // without the key, mac() refuses with DEVICE_KEY_LOST, not DEVICE_INVALID: the buyer page would
    // otherwise ask for a new token, which is refused too
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
