// Sealed payment tokens, one per unsynced card order: written with the order, read by sync when it
// publishes, dropped once the hub exchanged it (approved or declined). Plaintext never reaches here.
import type { SealedToken, TokenVault } from '../token-vault.ts';
import type { KitStore } from './open.ts';

export function readSealedToken(store: KitStore, orderId: string): SealedToken | undefined {
  return store.tokens.get(orderId);
}

export function putTokenInTxn(store: KitStore, orderId: string, sealed: SealedToken): void {
  void store.tokens.put(orderId, sealed);
}

export function dropTokenInTxn(store: KitStore, orderId: string): void {
  void store.tokens.remove(orderId);
}

export function tokenCount(store: KitStore): number {
  return store.tokens.getCount();
}

/**
 * Rewrite the wall-clock expiry of tokens sealed in this boot from their monotonic age
 * (TokenVault.reanchor), so a correction of the clock since sealing survives a reboot. A token
 * dropped or replaced meanwhile is left alone; one that fails authentication is left for sync to
 * report when it opens it. Returns how many seals were rewritten.
 */
export async function reanchorSealedTokens(store: KitStore, vault: TokenVault): Promise<number> {
  const changed: Array<{ orderId: string; before: SealedToken; after: SealedToken }> = [];
  for (const { key, value } of store.tokens.getRange()) {
    let after: SealedToken | null = null;
    try {
      after = vault.reanchor(value);
    } catch {
      after = null;
    }
    if (after) changed.push({ orderId: key, before: value, after });
  }
  if (changed.length === 0) return 0;
  return store.root.transaction(() => {
    let n = 0;
    for (const c of changed) {
      const cur = store.tokens.get(c.orderId);
      if (!cur || cur.iv !== c.before.iv) continue;
      void store.tokens.put(c.orderId, c.after);
      n++;
    }
    return n;
  });
}
