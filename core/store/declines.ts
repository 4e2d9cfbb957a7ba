// Card payments the hub's gateway declined, newest first, for the dashboard and /v1/status.
import { type DeclineNotice, type KitStore, META } from './open.ts';

export const RECENT_DECLINES = 20;

export function readRecentDeclines(store: KitStore): DeclineNotice[] {
  return (store.meta.get(META.declines) as DeclineNotice[] | undefined) ?? [];
}

/** Remember a decline (inside the transaction that applies the verdict); keeps the newest few. */
export function recordDeclineInTxn(store: KitStore, notice: DeclineNotice): void {
  void store.meta.put(META.declines, [notice, ...readRecentDeclines(store)].slice(0, RECENT_DECLINES));
}
