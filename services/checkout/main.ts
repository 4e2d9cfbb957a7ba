// Wires checkout from the environment (the composition root of `popkit checkout`) and listens.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  BaseConfig,
  CheckoutConfig,
  composeConfig,
  loadConfig,
  resolveDataDir,
  resolveKitId,
} from '../../core/config.ts';
import { MonotonicIds } from '../../core/ids.ts';
import { moduleLogger } from '../../core/logger.ts';
import { writeServiceStatus } from '../../core/run-status.ts';
import { commitWatch, type KitStore, openKitStore, readIdHighWater } from '../../core/store/index.ts';
import { loadOrCreateTokenKey, TokenVault } from '../../core/token-vault.ts';
import { detectBoard } from '../../hardware/boards/index.ts';
import { buildApp, type CheckoutApp } from './app.ts';
import { OrderService } from './orders.ts';
import { isCommitFailure, StoreGuard } from './store-guard.ts';

export const CheckoutProcessConfig = composeConfig(BaseConfig, CheckoutConfig);

/** The admin token: from the environment, else generated into the data dir on first boot. */
export function loadOrCreateAdminToken(
  dataDir: string,
  fromEnv?: string,
): { token: string; created: boolean } {
  if (fromEnv) return { token: fromEnv, created: false };
  const file = path.join(dataDir, 'keys', 'admin.token');
  try {
    return { token: fs.readFileSync(file, 'utf8').trim(), created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const token = randomBytes(24).toString('base64url');
  try {
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      return { token: fs.readFileSync(file, 'utf8').trim(), created: false };
    throw err;
  }
  return { token, created: true };
}

export interface Checkout {
  app: CheckoutApp;
  store: KitStore;
  dataDir: string;
  adminToken: string;
  adminTokenCreated: boolean;
  port: number;
  host: string;
  close(): Promise<void>;
}

export async function createCheckout(env: NodeJS.ProcessEnv = process.env): Promise<Checkout> {
  const cfg = loadConfig(CheckoutProcessConfig, env);
  const dataDir = resolveDataDir(cfg);
  fs.mkdirSync(dataDir, { recursive: true });
  const logger = moduleLogger('checkout');
  const kitId = resolveKitId(cfg);
  const board = detectBoard(env).id;
  const store = openKitStore(dataDir);
  const vault = new TokenVault(loadOrCreateTokenKey(dataDir, cfg.POPKIT_TOKEN_KEY));
  const ids = new MonotonicIds(readIdHighWater(store));
  const admin = loadOrCreateAdminToken(dataDir, cfg.POPKIT_ADMIN_TOKEN);
  const guard = new StoreGuard(commitWatch(store), dataDir, cfg.POPKIT_STORE_RESERVE_MB * 1024 * 1024);
  const orders = new OrderService(store, ids, vault, {
    kitId,
    tokenTtlMs: cfg.POPKIT_TOKEN_TTL_S * 1000,
    limits: {
      maxOrderCents: cfg.POPKIT_RISK_MAX_ORDER_CENTS,
      maxUnsyncedCents: cfg.POPKIT_RISK_MAX_UNSYNCED_CENTS,
      maxUnsyncedOrders: cfg.POPKIT_RISK_MAX_UNSYNCED_ORDERS,
      maxUnsyncedAgeS: cfg.POPKIT_RISK_MAX_UNSYNCED_AGE_S,
    },
  });
  const app = await buildApp({
    store,
    orders,
    guard,
    kitId,
    board,
    dataDir,
    adminToken: admin.token,
    logger,
  });
  return {
    app,
    store,
    dataDir,
    adminToken: admin.token,
    adminTokenCreated: admin.created,
    port: cfg.POPKIT_HTTP_PORT,
    host: cfg.POPKIT_HTTP_HOST,
    close: async () => {
      await app.close();
      await store.close();
    },
  };
}

/** `popkit checkout`: listen, report a heartbeat, stop cleanly on SIGTERM/SIGINT. */
export async function runCheckout(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const log = moduleLogger('checkout');
  // lmdb-js rejects a failed commit's `commitError` promise too; the request already got 507 for it
  process.on('unhandledRejection', (err) => {
    if (isCommitFailure(err) || (err as { code?: unknown })?.code === 5) {
      log.warn({ err: String(err) }, 'store commit failed (volume full?)');
      return;
    }
    log.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });
  const kit = await createCheckout(env);
  if (kit.adminTokenCreated) {
    process.stdout.write(
      `popkit checkout: admin token (shown once, kept in ${path.join(kit.dataDir, 'keys', 'admin.token')}): ${kit.adminToken}\n`,
    );
  }
  await kit.app.listen({ port: kit.port, host: kit.host });
  log.info({ port: kit.port }, 'checkout listening');
  process.stdout.write(`popkit checkout: listening on http://${kit.host}:${kit.port}\n`);
  const beat = () => writeServiceStatus(kit.dataDir, 'checkout', { state: 'up', port: kit.port });
  beat();
  const timer = setInterval(beat, 1000);
  timer.unref();
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  clearInterval(timer);
  await kit.close();
  return 0;
}
