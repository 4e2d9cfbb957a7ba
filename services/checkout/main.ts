// Wires checkout from the environment (the composition root of `popkit checkout`) and listens.
import {
  BaseConfig,
  CheckoutConfig,
  composeConfig,
  loadConfig,
  resolveDataDir,
  resolveKitId,
} from '../../core/config.ts';
import type { SecretStatusT } from '../../core/contracts/kit-status.ts';
import { writeRunStatus } from '../../core/contracts/run-status.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { mkdirDurable } from '../../core/durable-file.ts';
import { MonotonicIds } from '../../core/ids.ts';
import { type RunningPart, untilStopSignal } from '../../core/kit-part.ts';
import { moduleLogger } from '../../core/logger.ts';
import { pollLoop } from '../../core/poll-loop.ts';
import {
  announceAdminToken,
  type DependentKey,
  type LoadedSecret,
  loadOrCreateToken,
} from '../../core/secrets.ts';
import {
  commitWatch,
  type KitStore,
  openKitStore,
  readIdHighWater,
  tokenCount,
} from '../../core/store/index.ts';
import { openTokenVault, type TokenKeyStatus } from '../../core/token-key.ts';
import { detectBoard } from '../../hardware/boards/index.ts';
import { Admission, AdmissionGate, admissionFeature } from './admission.ts';
import { buildApp, type CheckoutApp } from './app.ts';
import { AudienceFeature } from './audience/consent.ts';
import { ViewerTracker } from './audience/tracker.ts';
import { DeviceTokens } from './devices.ts';
import { DrainFeature } from './drain.ts';
import { HubAuthorizer } from './hub-authorizer.ts';
import { hubKeySource, LoyaltyFeature } from './loyalty.ts';
import type { OrderFeature } from './order-features.ts';
import { OrderService } from './orders.ts';
import { PickupFeature } from './pickup.ts';
import { RESERVATION_SWEEP_MS, ReservationService } from './reservations.ts';
import { assertOnSale, clockTrustFromConfig, saleWindowFeature } from './sale-windows.ts';
import { isCommitFailure, StoreGuard } from './store-guard.ts';

export const CheckoutProcessConfig = composeConfig(BaseConfig, CheckoutConfig);

export interface Checkout {
  app: CheckoutApp;
  store: KitStore;
  dataDir: string;
  adminToken: string;
  adminTokenCreated: boolean;
  /** the device token key as found at start (card sales are refused while it is lost) */
  tokenKey: TokenKeyStatus;
  port: number;
  host: string;
  /** the listen backlog: a drop opens thousands of connections in a second (POPKIT_HTTP_BACKLOG) */
  backlog: number;
  /** write checkout's run status (the heartbeat; media reads its ordersPerSec) */
  writeStatus(): void;
  close(): Promise<void>;
}

export async function createCheckout(env: NodeJS.ProcessEnv = process.env): Promise<Checkout> {
  const cfg = loadConfig(CheckoutProcessConfig, env);
  const dataDir = resolveDataDir(cfg);
  // durable: a data dir whose creation a power cut forgets takes everything written inside with it
  mkdirDurable(dataDir);
  const logger = moduleLogger('checkout');
  const kitId = resolveKitId(cfg);
  const board = detectBoard(env).id;
  const store = openKitStore(dataDir);
  const layout = dataLayout(dataDir);
  // a missing, empty or torn key is never replaced while sealed tokens depend on it (core/token-key.ts)
  const tokenKey = openTokenVault(
    layout.tokenKey,
    cfg.POPKIT_TOKEN_KEY,
    () => tokenCount(store) > 0,
    cfg.POPKIT_TOKEN_KEY_LOST,
  );
  if (tokenKey.status.message) logger.error({ tokenKey: tokenKey.status }, tokenKey.status.message);
  const vault = tokenKey.vault;
  const ids = new MonotonicIds(readIdHighWater(store));
  const admin = loadOrCreateToken(layout.adminToken, cfg.POPKIT_ADMIN_TOKEN);
  if (admin.replaced)
    logger.warn(
      { secret: 'keys/admin.token', replaced: admin.replaced },
      `${layout.adminToken} was ${admin.replaced}: replaced by a new admin token (paired terminals keep theirs)`,
    );
  const guard = new StoreGuard(commitWatch(store), dataDir, cfg.POPKIT_STORE_RESERVE_MB * 1024 * 1024);
  // the order pipeline's features, in pipeline order (order-features.ts), and what closes with checkout
  const features: OrderFeature[] = [];
  const closers: Array<() => void | Promise<void>> = [];
  // sale windows, trusted time, admission
  const clockTrust = clockTrustFromConfig(store, cfg, env);
  clockTrust.start();
  closers.push(() => clockTrust.stop());
  const saleClock = () => clockTrust.saleClock();
  const admissionLine = new Admission({
    concurrency: cfg.POPKIT_ADMISSION_CONCURRENCY,
    queueMax: cfg.POPKIT_ADMISSION_QUEUE_MAX,
    maxWaitMs: cfg.POPKIT_ADMISSION_MAX_WAIT_MS,
  });
  features.push(saleWindowFeature({ saleClock, trust: clockTrust }), admissionFeature(admissionLine));
  // reservations
  const reservations = new ReservationService(store, {
    ttlMs: cfg.POPKIT_RESERVATION_TTL_S * 1000,
    maxPerAddress: cfg.POPKIT_RESERVATION_MAX_PER_ADDRESS,
    buyerMaxCents: cfg.POPKIT_BUYER_MAX_ORDER_CENTS,
    orders: () => orders,
    // a hold is a sale window's business too: not before it opens, not after it ends
    assertOnSale: (cat, lines) => assertOnSale(cat, lines, saleClock()),
    // drain-proofing: a buyer's hold of scarce units belongs to a device and fits its share
    scarceHold: (cat, lines, caller) => drain.guardHold(cat, lines, caller),
  });
  features.push(reservations);
  closers.push(reservations.startSweeper(RESERVATION_SWEEP_MS));
  // loyalty
  const loyalty = new LoyaltyFeature(store, {
    hubKey: hubKeySource({ ...cfg, dataDir }),
    kitUsesMax: cfg.POPKIT_LOYALTY_KIT_USES_MAX,
  });
  // a key that is set but unreadable or not ed25519 stops checkout at start, as it stops sync
  loyalty.publicKey();
  features.push(loyalty);
  // drain-proofing
  // the online card check goes through sync's relay (hub-authorizer.ts); offline while sync or its link is down
  const hubAuthorizer = HubAuthorizer.forDataDir(dataDir).start();
  closers.push(() => hubAuthorizer.close());
  const devices = DeviceTokens.open(layout.deviceKey, store, cfg.POPKIT_DEVICE_KEY_LOST);
  if (devices.status.message)
    (devices.status.state === 'ok' ? logger.warn : logger.error).call(
      logger,
      { deviceKey: devices.status },
      devices.status.message,
    );
  const drain = new DrainFeature({
    store,
    devices,
    authorizer: hubAuthorizer,
    authBudgetMs: cfg.POPKIT_AUTH_BUDGET_MS,
    allowance: cfg.POPKIT_BUYER_OFFLINE_ALLOWANCE,
    holdTtlMs: cfg.POPKIT_HOLD_TTL_S * 1000,
    deviceOrdersPerMin: cfg.POPKIT_DEVICE_ORDERS_PER_MIN,
  });
  features.push(drain);
  closers.push(drain.start());
  // pickup
  const pickup = new PickupFeature(store);
  features.push(pickup);
  // audience: viewers of /live (keyed-hash ids), consenting buyers' orders linked in the order's transaction
  const viewers = new ViewerTracker(store, {
    leaveS: cfg.POPKIT_AUDIENCE_LEAVE_S,
    keyMaxH: cfg.POPKIT_AUDIENCE_KEY_MAX_H,
    ttlH: cfg.POPKIT_AUDIENCE_TTL_H,
    venueNets: cfg.POPKIT_AUDIENCE_VENUE_NETS,
  });
  closers.push(viewers.start(1000, (err) => logger.warn({ err: String(err) }, 'audience tick failed')));
  features.push(new AudienceFeature(store, viewers, (d) => loyalty.tierOf(d)));
  const orders = new OrderService(store, ids, vault, {
    kitId,
    tokenTtlMs: cfg.POPKIT_TOKEN_TTL_S * 1000,
    limits: {
      maxOrderCents: cfg.POPKIT_RISK_MAX_ORDER_CENTS,
      maxUnsyncedCents: cfg.POPKIT_RISK_MAX_UNSYNCED_CENTS,
      maxUnsyncedOrders: cfg.POPKIT_RISK_MAX_UNSYNCED_ORDERS,
      maxUnsyncedAgeS: cfg.POPKIT_RISK_MAX_UNSYNCED_AGE_S,
    },
    caps: {
      cashMaxOrderCents: cfg.POPKIT_CASH_MAX_ORDER_CENTS,
      buyerMaxOrderCents: cfg.POPKIT_BUYER_MAX_ORDER_CENTS,
    },
    features,
    saleClock,
  });
  const app = await buildApp({
    store,
    orders,
    guard,
    kitId,
    board,
    dataDir,
    adminToken: admin.value,
    buyerRatePerMin: cfg.POPKIT_BUYER_RATE_PER_MIN,
    tokenKey: tokenKey.status,
    secrets: () => [
      secretOfTokenKey(tokenKey.key, tokenKey.status),
      devices.status,
      secretOfAdminToken(admin),
    ],
    logger,
    // sale windows, trusted time, admission
    clockTrust,
    admission: new AdmissionGate(admissionLine, store, orders),
    // reservations
    reservations,
    // loyalty
    loyalty,
    loyaltyCheckRatePerMin: cfg.POPKIT_LOYALTY_CHECK_RATE_PER_MIN,
    // drain-proofing
    devices,
    deviceIssuePerMin: cfg.POPKIT_DEVICE_ISSUE_PER_MIN,
    // pickup
    pickup,
    // audience
    viewers,
    consentRatePerMin: cfg.POPKIT_CONSENT_RATE_PER_MIN,
    // live series
    ...(cfg.POPKIT_SERIES === 1 ? { series: { retentionH: cfg.POPKIT_SERIES_RETENTION_H } } : {}),
  });
  return {
    app,
    store,
    dataDir,
    adminToken: admin.value,
    adminTokenCreated: admin.created,
    tokenKey: tokenKey.status,
    port: cfg.POPKIT_HTTP_PORT,
    host: cfg.POPKIT_HTTP_HOST,
    backlog: cfg.POPKIT_HTTP_BACKLOG,
    writeStatus: () =>
      writeRunStatus(dataDir, 'checkout', {
        state: 'up',
        port: cfg.POPKIT_HTTP_PORT,
        ordersPerSec: orders.accepted.perSecond(),
      }),
    close: async () => {
      await app.close();
      for (const close of closers) await close();
      await store.close();
    },
  };
}

/** keys/token.key in the status's `secrets` (the `tokenKey` field says the same, kept for its readers) */
function secretOfTokenKey(key: DependentKey, status: TokenKeyStatus): SecretStatusT {
  const file = 'keys/token.key';
  if (key.state !== 'ok')
    return {
      file,
      state: key.state,
      refused: 'card sales',
      ...(status.message ? { message: status.message } : {}),
    };
  return {
    file,
    state: 'ok',
    ...(key.replaced ? { replaced: key.replaced } : {}),
    ...(status.message ? { message: status.message } : {}),
  };
}

/** keys/admin.token in the status's `secrets`: nothing is sealed with it, so a damaged one was replaced */
function secretOfAdminToken(admin: LoadedSecret<string>): SecretStatusT {
  return {
    file: 'keys/admin.token',
    state: 'ok',
    ...(admin.replaced
      ? {
          replaced: admin.replaced,
          message: `keys/admin.token was ${admin.replaced} (a write lost to a power cut?): replaced by a new admin token, printed once at start; paired terminals keep theirs`,
        }
      : {}),
  };
}

/**
 * Checkout started in this thread: listening, writing its heartbeat; stop() closes it. The same for
 * `popkit checkout` (a process) and the checkout worker of the combined kit process (core/kit-part.ts).
 */
export async function startCheckout(env: NodeJS.ProcessEnv = process.env): Promise<RunningPart> {
  const log = moduleLogger('checkout');
  // lmdb-js rejects a failed commit's `commitError` promise too; the request already got 507 for it.
  // Any other unhandled rejection ends checkout: the process, or in the combined kit only its worker
  // (process.exit in a worker thread ends that thread), and its supervisor starts it again
  process.on('unhandledRejection', (err) => {
    if (isCommitFailure(err) || (err as { code?: unknown })?.code === 5) {
      log.warn({ err: String(err) }, 'store commit failed (volume full?)');
      return;
    }
    log.fatal({ err }, 'unhandled rejection');
    process.exit(1);
  });
  const kit = await createCheckout(env);
  if (kit.adminTokenCreated)
    process.stdout.write(
      `popkit checkout: ${announceAdminToken(kit.adminToken, dataLayout(kit.dataDir).adminToken, env)}\n`,
    );
  await kit.app.listen({ port: kit.port, host: kit.host, backlog: kit.backlog });
  log.info({ port: kit.port }, 'checkout listening');
  process.stdout.write(`popkit checkout: listening on http://${kit.host}:${kit.port}\n`);
  kit.writeStatus();
  const beat = pollLoop(1000, () => kit.writeStatus(), {
    unref: true,
    onError: (err) => log.warn({ err: (err as Error).message }, 'run status not written'),
  });
  return {
    stop: async () => {
      beat.stop();
      await kit.close();
    },
  };
}

/** `popkit checkout`: listen, report a heartbeat, stop cleanly on SIGTERM/SIGINT. */
export async function runCheckout(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const running = await startCheckout(env);
  await untilStopSignal();
  await running.stop();
  return 0;
}
