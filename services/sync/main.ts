// `popkit sync`: the kit's store-and-forward process, on the LMDB environment checkout writes.
import fs from 'node:fs';
import mqtt from 'mqtt';
import { parsePublicKey } from '../../core/catalog-signing.ts';
import { BaseConfig, composeConfig, loadConfig, resolveDataDir, resolveKitId } from '../../core/config.ts';
import { localTopics, syncCommand } from '../../core/contracts/local-bus.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { KitError } from '../../core/errors.ts';
import { type RunningPart, untilStopSignal } from '../../core/kit-part.ts';
import { moduleLogger } from '../../core/logger.ts';
import { KIT_MQTT_OPTIONS } from '../../core/mqtt-options.ts';
import { pollLoop } from '../../core/poll-loop.ts';
import { DiskWatch } from '../../core/priorities.ts';
import { type KitStore, openKitStore, tokenCount } from '../../core/store/index.ts';
import { openTokenVault } from '../../core/token-key.ts';
import { SyncConfig, type SyncConfigT } from './config.ts';
import { LaneKeeper } from './lanes.ts';
import { ALWAYS_IDLE, CheckoutLoad } from './load.ts';
import { MediaFetcher } from './media-fetch.ts';
import type { UplinkGate } from './metered.ts';
import { SyncService } from './sync-service.ts';

export const DEFAULT_HUB_URL = 'mqtt://127.0.0.1:1883';

export function syncOptionsFrom(
  cfg: SyncConfigT & { POPKIT_HUB_URL?: string | undefined; POPKIT_AUDIENCE_MIN_GROUP: number },
  kitId: string,
  dataDir: string,
) {
  let keyText = cfg.POPKIT_HUB_PUBLIC_KEY;
  if (!keyText && cfg.POPKIT_HUB_PUBLIC_KEY_FILE) {
    try {
      keyText = fs.readFileSync(cfg.POPKIT_HUB_PUBLIC_KEY_FILE, 'utf8');
    } catch (err) {
      throw new KitError('CONFIG_INVALID', `POPKIT_HUB_PUBLIC_KEY_FILE: ${(err as Error).message}`);
    }
  }
  return {
    kitId,
    dataDir,
    hubUrl: cfg.POPKIT_HUB_URL ?? DEFAULT_HUB_URL,
    allowPlaintext: cfg.POPKIT_HUB_ALLOW_PLAINTEXT,
    mqttVersion: cfg.POPKIT_SYNC_MQTT_VERSION,
    username: cfg.POPKIT_HUB_USERNAME,
    password: cfg.POPKIT_HUB_PASSWORD,
    ca: cfg.POPKIT_HUB_CA_FILE ? fs.readFileSync(cfg.POPKIT_HUB_CA_FILE) : undefined,
    hubPublicKey: keyText ? parsePublicKey(keyText) : undefined,
    eventId: cfg.POPKIT_EVENT_ID,
    batchMax: cfg.POPKIT_SYNC_BATCH_MAX,
    batchBytes: cfg.POPKIT_SYNC_BATCH_BYTES,
    window: cfg.POPKIT_SYNC_WINDOW,
    ackTimeoutMs: cfg.POPKIT_SYNC_ACK_TIMEOUT_MS,
    pollMs: cfg.POPKIT_SYNC_POLL_MS,
    backoffMinMs: cfg.POPKIT_SYNC_BACKOFF_MIN_MS,
    backoffMaxMs: cfg.POPKIT_SYNC_BACKOFF_MAX_MS,
    stockIntervalMs: cfg.POPKIT_SYNC_STOCK_INTERVAL_MS,
    healthIntervalMs: cfg.POPKIT_SYNC_HEALTH_INTERVAL_MS,
    telemetryIntervalMs: cfg.POPKIT_SYNC_TELEMETRY_INTERVAL_MS,
    metered: cfg.POPKIT_SYNC_METERED,
    bindLinks: cfg.POPKIT_SYNC_BIND_LINKS,
    keepaliveS: cfg.POPKIT_SYNC_KEEPALIVE_S,
    lan: {
      mode: cfg.POPKIT_LAN_STOCK,
      host: cfg.POPKIT_LAN_STOCK_HOST,
      port: cfg.POPKIT_LAN_STOCK_PORT,
      afterS: cfg.POPKIT_LAN_STOCK_AFTER_S,
      belowPercent: cfg.POPKIT_LAN_STOCK_BELOW_PERCENT,
      peers: cfg.POPKIT_LAN_STOCK_PEERS ? cfg.POPKIT_LAN_STOCK_PEERS.split(',') : [],
    },
    series: {
      enabled: cfg.POPKIT_SYNC_SERIES,
      intervalMs: cfg.POPKIT_SYNC_SERIES_INTERVAL_MS,
      settleS: cfg.POPKIT_SYNC_SERIES_SETTLE_S,
      minGroup: cfg.POPKIT_AUDIENCE_MIN_GROUP,
    },
    busy:
      cfg.POPKIT_SYNC_BUSY_HOLD_MS > 0
        ? {
            holdMs: cfg.POPKIT_SYNC_BUSY_HOLD_MS,
            batchMax: cfg.POPKIT_SYNC_BUSY_BATCH_MAX,
            window: cfg.POPKIT_SYNC_BUSY_WINDOW,
            ackTxnMax: cfg.POPKIT_SYNC_BUSY_ACK_TXN,
            yieldMs: cfg.POPKIT_SYNC_BUSY_YIELD_MS,
          }
        : undefined,
  };
}

export function laneLimitsFrom(cfg: SyncConfigT) {
  return {
    stock: { ttlMs: cfg.POPKIT_SYNC_TTL_STOCK_S * 1000, quotaBytes: cfg.POPKIT_SYNC_QUOTA_STOCK_KB * 1024 },
    health: {
      ttlMs: cfg.POPKIT_SYNC_TTL_HEALTH_S * 1000,
      quotaBytes: cfg.POPKIT_SYNC_QUOTA_HEALTH_KB * 1024,
    },
    telemetry: {
      ttlMs: cfg.POPKIT_SYNC_TTL_TELEMETRY_S * 1000,
      quotaBytes: cfg.POPKIT_SYNC_QUOTA_TELEMETRY_KB * 1024,
    },
  };
}

/** The product image fetcher of this kit, or undefined with a zero budget. */
export function mediaFetcherFrom(
  cfg: SyncConfigT,
  store: KitStore,
  dataDir: string,
  disk?: DiskWatch,
  uplink?: Pick<UplinkGate, 'holds'>,
): MediaFetcher | undefined {
  if (cfg.POPKIT_MEDIA_CACHE_MB === 0) return undefined;
  return new MediaFetcher(store, {
    dir: dataLayout(dataDir).productMedia,
    hubHttpUrl: cfg.POPKIT_HUB_HTTP_URL.replace(/\/+$/, ''),
    budgetBytes: cfg.POPKIT_MEDIA_CACHE_MB * 1024 * 1024,
    // checkout first: the same signal and hold as the outbox pump's
    load:
      cfg.POPKIT_SYNC_BUSY_HOLD_MS > 0 ? new CheckoutLoad(store, cfg.POPKIT_SYNC_BUSY_HOLD_MS) : ALWAYS_IDLE,
    disk,
    uplink,
  });
}

/**
 * Sync started in this thread: pumping the outbox, fetching images, listening for kitd's flush; stop()
 * ends it. The same for `popkit sync` (a process) and the sync worker of the combined kit process.
 */
export async function startSync(env: NodeJS.ProcessEnv = process.env): Promise<RunningPart> {
  const cfg = loadConfig(composeConfig(BaseConfig, SyncConfig), env);
  const dataDir = resolveDataDir(cfg);
  const kitId = resolveKitId(cfg);
  const opts = syncOptionsFrom(cfg, kitId, dataDir);
  const store = openKitStore(dataDir);
  const tokenKey = openTokenVault(
    dataLayout(dataDir).tokenKey,
    cfg.POPKIT_TOKEN_KEY,
    () => tokenCount(store) > 0,
  );
  if (tokenKey.status.message)
    moduleLogger('sync').error({ tokenKey: tokenKey.status }, tokenKey.status.message);
  const vault = tokenKey.vault;
  const disk = new DiskWatch(dataDir, cfg.POPKIT_STORE_RESERVE_MB * 1024 * 1024);
  const lanes = new LaneKeeper(store, laneLimitsFrom(cfg), Date.now, disk);
  const sync = new SyncService(store, vault, lanes, opts);
  sync.start();
  // images wait with telemetry while the primary link is metered (metered.ts)
  const media = mediaFetcherFrom(cfg, store, dataDir, disk, sync.uplink);
  const mediaLoop = pollLoop(cfg.POPKIT_MEDIA_FETCH_INTERVAL_MS, () => media?.pass(), {
    onError: (err) => moduleLogger('sync-media').warn({ err: (err as Error).message }, 'image pass'),
    immediate: true,
  });
  // kitd asks for a flush over the kit's local bus (critical power, safe shutdown)
  const bus = cfg.POPKIT_LOCAL_BUS_URL
    ? mqtt.connect(cfg.POPKIT_LOCAL_BUS_URL, {
        ...KIT_MQTT_OPTIONS,
        clientId: `popkit-sync-local-${kitId}`,
        reconnectPeriod: 2000,
      })
    : undefined;
  const cmdTopic = localTopics(cfg.POPKIT_LOCAL_BUS_PREFIX).syncCmd;
  bus?.on('connect', () => bus.subscribe(cmdTopic, { qos: 1 }));
  bus?.on('error', () => {});
  bus?.on('message', (topic, payload) => {
    // anything else on the topic is not a command of ours
    if (topic === cmdTopic && syncCommand.parse(payload)?.cmd === 'flush') sync.flushNow();
  });
  process.stdout.write(
    `popkit sync: kit ${kitId} → ${opts.hubUrl.replace(/\/\/[^@/,]*@/g, '//')}` +
      `${opts.hubPublicKey ? '' : ' (no hub public key: catalogs from the hub will be refused)'}\n`,
  );
  return {
    stop: async () => {
      await bus?.endAsync(true);
      mediaLoop.stop();
      media?.stop();
      await sync.stop();
      await store.close();
    },
  };
}

/** `popkit sync`: run until SIGTERM/SIGINT. */
export async function runSync(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const running = await startSync(env);
  await untilStopSignal();
  await running.stop();
  return 0;
}
