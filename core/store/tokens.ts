// Sealed payment tokens, one per unsynced card order: written with the order, read by sync when it
// publishes, dropped once the hub exchanged it (approved or declined). Plaintext never reaches here.
import type { SealedToken } from '../token-vault.ts';
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
