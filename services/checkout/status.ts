// GET /v1/status: checkout's own view plus what kitd, sync and media last wrote to their run-status
// files (core/contracts/kit-status.ts). A file older than STALE_STATUS_MS is passed marked stale and
// its fields are not used for the kit's state.
import type { KitStatusViewT, SecretStatusT } from '../../core/contracts/kit-status.ts';
import { RUN_STATUS_STALE_MS, readRunStatus, statusAgeMs } from '../../core/contracts/run-status.ts';
import { type KitStore, outboxCounts, readRecentDeclines, sharedStockView } from '../../core/store/index.ts';
import type { TokenKeyStatus } from '../../core/token-key.ts';
import type { OrderService } from './orders.ts';
import type { StoreGuard } from './store-guard.ts';

export const STALE_STATUS_MS = RUN_STATUS_STALE_MS;

export interface StatusDeps {
  store: KitStore;
  orders: OrderService;
  guard: StoreGuard;
  kitId: string;
  board: string;
  dataDir: string;
  /** the device token key as found at start; absent in tests that build the app without one */
  tokenKey?: TokenKeyStatus;
  /** every secret file as found at start (docs/power-cuts.md) */
  secrets?: () => SecretStatusT[];
}

const fresh = <T extends { updatedAt: string }>(s: T | undefined): T | undefined =>
  s && statusAgeMs(s) < STALE_STATUS_MS ? s : undefined;

export function statusView(deps: StatusDeps): KitStatusViewT {
  const { orders, store, dataDir } = deps;
  const kitd = readRunStatus(dataDir, 'kitd');
  const sync = readRunStatus(dataDir, 'sync');
  const media = readRunStatus(dataDir, 'media');
  const k = fresh(kitd);
  const cat = orders.catalog()?.catalog;
  const event = orders.eventState();
  return {
    kitId: deps.kitId,
    board: deps.board,
    state: k?.state ?? (event.live ? 'live' : cat ? 'ready' : 'booting'),
    event,
    catalog: cat
      ? { version: cat.version, eventId: cat.eventId, source: cat.source, items: cat.items.length }
      : null,
    leds: k?.leds ?? null,
    power: k?.power ?? null,
    health: k?.health ?? null,
    updateLock: k?.updateLock ?? null,
    kitd: kitd ? { ...kitd, stale: !k } : null,
    sync: {
      link: fresh(sync)?.link ?? (sync ? 'unknown' : 'not-running'),
      backlog: outboxCounts(store),
      ...(sync ? { detail: sync, stale: !fresh(sync) } : {}),
    },
    media: media ? { ...media, stale: !fresh(media) } : null,
    risk: orders.riskView(),
    declines: readRecentDeclines(store),
    store: deps.guard.status(),
    ...(deps.tokenKey ? { tokenKey: deps.tokenKey } : {}),
    ...(deps.secrets ? { secrets: deps.secrets() } : {}),
    drops: Object.assign({}, ...orders.features.map((f) => f.status?.() ?? {})),
    sharedStock: cat ? (sharedStockView(store, cat.eventId) ?? null) : null,
  };
}
