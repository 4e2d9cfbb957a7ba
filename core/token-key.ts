// The device's token key as checkout and sync find it at start (core/secrets.ts loadDependentKey):
// whole, or missing/empty/torn. Sealed tokens in LMDB depend on it, so a damaged key is never replaced
// while any exists: the vault then refuses to seal or open (CARD_UNAVAILABLE), checkout keeps selling
// for cash, card sales are refused, /v1/status says why, and sync keeps card orders in the outbox.
import type { TokenKeyStatusT } from './contracts/kit-status.ts';
import { KitError } from './errors.ts';
import { type DependentKey, loadDependentKey } from './secrets.ts';
import { type SealedToken, TokenVault } from './token-vault.ts';

/** false `cardSales` while the key is damaged and tokens depend on it; `message` says what was found */
export type TokenKeyStatus = TokenKeyStatusT;

/** A vault without its key: every seal or open is refused with CARD_UNAVAILABLE. */
class KeylessVault extends TokenVault {
  constructor(private readonly why: string) {
    super(Buffer.alloc(32)); // never used: seal and open refuse before touching it
  }
  override seal(_token: string, _ttlMs: number, _now?: number): SealedToken {
    throw new KitError('CARD_UNAVAILABLE', `card payments are unavailable: ${this.why}`);
  }
  override open(_sealed: SealedToken, _now?: number): string {
    throw new KitError('CARD_UNAVAILABLE', `sealed tokens cannot be opened: ${this.why}`);
  }
}

export function openTokenVault(
  file: string,
  hexFromEnv: string | undefined,
  hasDependents: () => boolean,
  /** POPKIT_TOKEN_KEY_LOST (checkout): 'replace' when the operator chose a new key over a backup */
  onLost: 'refuse' | 'replace' = 'refuse',
): { vault: TokenVault; status: TokenKeyStatus; key: DependentKey } {
  const dependents = onLost === 'replace' && !hexFromEnv && hasDependents();
  const key = loadDependentKey(file, hexFromEnv, () => onLost === 'refuse' && hasDependents());
  if (key.state === 'ok' && key.created && dependents) {
    return {
      vault: new TokenVault(key.value),
      status: {
        state: 'ok',
        cardSales: true,
        message: `${file} was ${key.replaced ?? 'missing'} and replaced by a new key although sealed card tokens depended on it (POPKIT_TOKEN_KEY_LOST=replace): those card orders cannot be charged; sync sends them as invalid and they show as declined: collect another way`,
      },
      key,
    };
  }
  if (key.state !== 'ok') {
    return {
      vault: new KeylessVault(key.message),
      status: { state: key.state, cardSales: false, message: key.message },
      key,
    };
  }
  const status: TokenKeyStatus = key.replaced
    ? {
        state: 'ok',
        cardSales: true,
        message: `${file} was ${key.replaced} and no sealed token depended on it: replaced by a new key (the damaged file is kept beside it)`,
      }
    : { state: 'ok', cardSales: true };
  return { vault: new TokenVault(key.value), status, key };
}
