// Composition root of one hub worker: ledger database (migrated at start), payment gateway, MQTT
// ingest and the HTTP API.
import os from 'node:os';
import path from 'node:path';
import { type BaseConfigT, hubUrlList } from '../../core/config.ts';
import { topics } from '../../core/contracts/hub-wire.ts';
import { hubDataLayout } from '../../core/data-dir.ts';
import { KitError } from '../../core/errors.ts';
import { moduleLogger, redactUrl } from '../../core/logger.ts';
import { type PollLoop, pollLoop } from '../../core/poll-loop.ts';
import { loadDependentKey, loadOrCreateKey, loadOrCreateToken } from '../../core/secrets.ts';
import { signSealKey } from '../../core/telemetry-seal.ts';
import { TokenVault } from '../../core/token-vault.ts';
import { HubAlerts } from './alerts.ts';
import { buildHubApp, type HubApp } from './app.ts';
import { HubAuthorize } from './authorize.ts';
import type { HubConfigT } from './config.ts';
import { openPglite, openPostgres, type SqlDb } from './db.ts';
import { DynsecClient } from './dynsec.ts';
import { createGateway, type PaymentGateway } from './gateway.ts';
import { HubIngest } from './ingest.ts';
import { JetStreamIngest } from './jetstream.ts';
import { loadOrCreateSealKey, loadOrCreateSigningKey } from './keys.ts';
import { type HeldTokenKeyLost, Ledger } from './ledger.ts';
import { migrate } from './migrations.ts';
import { ReplicaReads } from './read-replica.ts';
import { SharedStock } from './shared-stock.ts';

const log = moduleLogger('hub');

export interface HubServiceOptions {
  cfg: HubConfigT;
  dataDir: string;
  /** injected in tests to drive the sandbox; default: from POPKIT_HUB_GATEWAY */
  gateway?: PaymentGateway;
  httpLogger?: boolean;
}

/**
 * The vault of held tokens. Its key is generated when nothing depends on it (a damaged one is then
 * moved aside and replaced); while tokens sealed with it wait in the ledger, a missing, empty or torn
 * key is never replaced: the loss is returned, named, and the ledger refuses only the card work that
 * needs the key (HELD_TOKEN_KEY_LOST in /healthz, /v1/kits and the log) until the key is restored.
 */
async function heldTokenVault(db: SqlDb, file: string): Promise<TokenVault | HeldTokenKeyLost> {
  const res = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM orders WHERE sealed_token IS NOT NULL',
  );
  const heldTokens = Number(res.rows[0]?.n ?? 0);
  const key = loadDependentKey(file, undefined, () => heldTokens > 0);
  if (key.state === 'ok') {
    if (key.replaced)
      log.warn({ file, was: key.replaced }, 'held-token key was damaged, nothing depended on it: replaced');
    return new TokenVault(key.value);
  }
  const lost: HeldTokenKeyLost = {
    code: 'HELD_TOKEN_KEY_LOST',
    state: key.state,
    file,
    heldTokens,
    message: `${file} is ${key.state} and ${heldTokens} held card token(s) in the ledger were sealed with it: it is not replaced; new card orders wait on their kits and held ones wait for it, cash orders go on; restore the key from a backup and restart the hub (docs/security.md#secrets-and-keys-on-disk)`,
  };
  log.error({ code: lost.code, file, state: key.state, heldTokens }, lost.message);
  return lost;
}

export class HubService {
  db: SqlDb | undefined;
  /** the read replica (POPKIT_HUB_READ_DATABASE_URL); unset: the primary answers every read */
  readReplica: ReplicaReads | undefined;
  ledger: Ledger | undefined;
  ingest: HubIngest | undefined;
  /** POPKIT_HUB_INGEST=jetstream: the worker's JetStream consumer and card-check queue group */
  jetstream: JetStreamIngest | undefined;
  app: HubApp | undefined;
  gateway: PaymentGateway | undefined;
  authorize: HubAuthorize | undefined;
  alerts: HubAlerts | undefined;
  private orphanLoop: PollLoop | undefined;
  /** the timed shared-stock rebalance (POPKIT_HUB_REBALANCE_S) */
  private rebalanceLoop: PollLoop | undefined;
  /** kit enrollment (POPKIT_HUB_DYNSEC_USERNAME set): connects on the first enrollment */
  dynsec: DynsecClient | undefined;
  adminToken = '';
  adminTokenGenerated = false;
  publicKeyFile = '';
  /** the telemetry seal key's id (core/telemetry-seal.ts kidOf) */
  sealKid = '';
  httpUrl = '';

  constructor(private readonly opts: HubServiceOptions) {}

  get dataDir(): string {
    return this.opts.dataDir;
  }

  async start(): Promise<void> {
    const { cfg, dataDir } = this.opts;
    checkAlertConfig(cfg);
    checkReadConfig(cfg);
    const layout = hubDataLayout(dataDir);
    const signing = loadOrCreateSigningKey(dataDir);
    this.publicKeyFile = signing.pubFile;
    // the key kits seal their telemetry to, published signed with the catalog key
    const sealOpener = loadOrCreateSealKey(dataDir);
    this.sealKid = sealOpener.kid;
    const admin = loadOrCreateToken(layout.adminToken, cfg.POPKIT_HUB_ADMIN_TOKEN);
    this.adminToken = admin.value;
    this.adminTokenGenerated = admin.created;
    this.db = cfg.DATABASE_URL
      ? await openPostgres(cfg.DATABASE_URL, cfg.POPKIT_HUB_DB_SCHEMA, cfg.POPKIT_HUB_DB_POOL)
      : await openPglite(layout.pglite, cfg.POPKIT_HUB_DB_SCHEMA, {
          template: cfg.POPKIT_HUB_PGLITE_TEMPLATE === 'none' ? null : cfg.POPKIT_HUB_PGLITE_TEMPLATE,
        });
    await migrate(this.db);
    const readUrl = cfg.POPKIT_HUB_READ_DATABASE_URL;
    if (readUrl && readUrl !== cfg.DATABASE_URL) {
      this.readReplica = new ReplicaReads(this.db, {
        url: readUrl,
        schema: cfg.POPKIT_HUB_DB_SCHEMA,
        poolSize: cfg.POPKIT_HUB_DB_POOL,
        maxLagS: cfg.POPKIT_HUB_READ_MAX_LAG_S,
      });
      // a replica down at start is not a hub down: its reads go to the primary until it answers
      await this.readReplica.start();
    }
    const reads = this.readReplica ?? this.db;
    this.gateway =
      this.opts.gateway ??
      createGateway(cfg.POPKIT_HUB_GATEWAY, {
        ...(cfg.POPKIT_GATEWAY_SANDBOX_JOURNAL ? { sandboxJournal: cfg.POPKIT_GATEWAY_SANDBOX_JOURNAL } : {}),
        sandboxCards: cfg.POPKIT_HUB_SANDBOX_CARDS,
        // the key its issued tokens are checked with: a restarted hub still knows its buyers' cards
        sandboxCardKey: loadOrCreateKey(
          path.join(layout.keys, 'sandbox-cards.key'),
          cfg.POPKIT_HUB_SANDBOX_CARD_KEY,
        ).value,
      });
    // tokens the hub must hold while the gateway is unreachable are sealed with the hub's own key
    this.ledger = new Ledger(
      this.db,
      this.gateway,
      await heldTokenVault(this.db, layout.heldTokenKey),
      cfg.POPKIT_HUB_GATEWAY_CONCURRENCY,
      reads,
    );
    this.authorize = new HubAuthorize(this.db, this.gateway, {
      ratePerS: cfg.POPKIT_HUB_AUTHORIZE_RATE_PER_S,
      burst: cfg.POPKIT_HUB_AUTHORIZE_BURST,
      concurrency: cfg.POPKIT_HUB_GATEWAY_CONCURRENCY,
    });
    const workerId = cfg.POPKIT_HUB_WORKER_ID ?? os.hostname().replace(/[^A-Za-z0-9_.-]/g, '-');
    this.ingest = new HubIngest(this.ledger, {
      brokerUrl: cfg.POPKIT_HUB_BROKER_URL,
      username: cfg.POPKIT_HUB_BROKER_USERNAME,
      password: cfg.POPKIT_HUB_BROKER_PASSWORD,
      caFile: cfg.POPKIT_HUB_BROKER_CA_FILE,
      workerId,
      mqttVersion: cfg.POPKIT_HUB_MQTT_VERSION,
      shared: cfg.POPKIT_HUB_SHARED_SUBSCRIPTION,
      shareGroup: cfg.POPKIT_HUB_SHARE_GROUP,
      retryDeferredMs: cfg.POPKIT_HUB_GATEWAY_RETRY_S * 1000,
      verdictResendMs: cfg.POPKIT_HUB_VERDICT_RESEND_S * 1000,
      kitQuota: {
        batchMax: cfg.POPKIT_HUB_KIT_BATCH_MAX,
        ratePerS: cfg.POPKIT_HUB_KIT_RATE_PER_S,
        burst: cfg.POPKIT_HUB_KIT_BURST,
      },
      seal: { opener: sealOpener, signed: signSealKey(signing.privateKey, sealOpener) },
      batches: cfg.POPKIT_HUB_INGEST === 'jetstream' ? 'external' : 'mqtt',
    });
    await this.ingest.start();
    await this.authorize.start({
      brokerUrl: cfg.POPKIT_HUB_BROKER_URL,
      username: cfg.POPKIT_HUB_BROKER_USERNAME,
      password: cfg.POPKIT_HUB_BROKER_PASSWORD,
      caFile: cfg.POPKIT_HUB_BROKER_CA_FILE,
      workerId,
      mqttVersion: cfg.POPKIT_HUB_MQTT_VERSION,
      shared: this.ingest.sharedSubscription ?? false,
      shareGroup: cfg.POPKIT_HUB_SHARE_GROUP,
      listen: cfg.POPKIT_HUB_INGEST !== 'jetstream',
    });
    if (cfg.POPKIT_HUB_INGEST === 'jetstream') {
      const js = new JetStreamIngest(this.ingest, this.authorize, {
        natsUrl: cfg.POPKIT_HUB_NATS_URL,
        user: cfg.POPKIT_HUB_NATS_USER,
        password: cfg.POPKIT_HUB_NATS_PASSWORD,
        caFile: cfg.POPKIT_HUB_NATS_CA_FILE,
        workerId,
        stream: cfg.POPKIT_HUB_JS_STREAM,
        consumer: cfg.POPKIT_HUB_JS_CONSUMER,
        replicas: cfg.POPKIT_HUB_JS_REPLICAS,
        ackWaitS: cfg.POPKIT_HUB_JS_ACK_WAIT_S,
        concurrency: cfg.POPKIT_HUB_JS_CONCURRENCY,
        queueGroup: cfg.POPKIT_HUB_SHARE_GROUP,
      });
      this.jetstream = js;
      this.ingest.externalConnected = () => js.connected;
      await js.start();
    }
    const orphanMs = cfg.POPKIT_HUB_AUTHORIZE_ORPHAN_S * 1000;
    const authorize = this.authorize;
    this.orphanLoop = pollLoop(Math.min(60_000, orphanMs), () => authorize.reportOrphans(orphanMs), {
      unref: true,
      onError: (err) => log.warn({ err: (err as Error).message }, 'orphan authorizations not reported'),
    });
    if (cfg.POPKIT_HUB_DYNSEC_USERNAME && cfg.POPKIT_HUB_DYNSEC_PASSWORD) {
      this.dynsec = new DynsecClient({
        url: cfg.POPKIT_HUB_DYNSEC_URL ?? hubUrlList(cfg.POPKIT_HUB_BROKER_URL)[0]!,
        username: cfg.POPKIT_HUB_DYNSEC_USERNAME,
        password: cfg.POPKIT_HUB_DYNSEC_PASSWORD,
        caFile: cfg.POPKIT_HUB_BROKER_CA_FILE,
      });
    }
    const ingest = this.ingest;
    const ledger = this.ledger;
    const sharedStock = new SharedStock({
      db: this.db,
      signingKey: signing.privateKey,
      publishRetained: (topic, payload) => ingest.publishRetained(topic, payload),
      storeAndPublishCatalog: async (eventId, version, signed) => {
        await ledger.storeCatalog(eventId, version, signed);
        await ingest.publishCatalog(eventId, signed).catch(() => undefined);
      },
    });
    ingest.sharedStock = sharedStock;
    await sharedStock.republishAll();
    if (cfg.POPKIT_HUB_REBALANCE_S > 0) {
      const below = cfg.POPKIT_HUB_REBALANCE_BELOW_PERCENT;
      this.rebalanceLoop = pollLoop(
        cfg.POPKIT_HUB_REBALANCE_S * 1000,
        async () => {
          const n = await sharedStock.rebalanceAll(below);
          if (n > 0) log.info({ transfers: n }, 'shared stock rebalanced');
        },
        {
          unref: true,
          onError: (err) => log.warn({ err: (err as Error).message }, 'shared stock rebalance'),
        },
      );
    }
    this.alerts = hubAlerts(cfg, this.db, this.ingest);
    this.alerts.start();
    this.app = buildHubApp({
      ...(this.dynsec ? { dynsec: this.dynsec } : {}),
      alerts: this.alerts,
      ledger: this.ledger,
      ingest: this.ingest,
      db: this.db,
      reads,
      ...(this.readReplica ? { readReplica: this.readReplica } : {}),
      gateway: this.gateway,
      authorize: this.authorize,
      orphanMs,
      adminToken: this.adminToken,
      signingKey: signing.privateKey,
      sharedStock,
      gatewayCheckCacheMs: cfg.POPKIT_HUB_GATEWAY_CHECK_CACHE_S * 1000,
      // the hub process loads BaseConfig with HubConfig (main.ts): Chromium for the report's PDF
      chromium: (cfg as HubConfigT & Partial<BaseConfigT>).POPKIT_CHROMIUM,
      logger: this.opts.httpLogger ?? false,
    });
    const addr = await this.app.listen({ port: cfg.POPKIT_HUB_HTTP_PORT, host: cfg.POPKIT_HUB_HTTP_HOST });
    this.httpUrl = addr.replace('0.0.0.0', '127.0.0.1');
    log.info(
      {
        http: this.httpUrl,
        broker: redactUrl(cfg.POPKIT_HUB_BROKER_URL),
        db: this.db.kind,
        reads: this.readReplica ? redactUrl(readUrl ?? '') : 'primary',
        gateway: this.gateway.name,
        sandbox: this.gateway.sandbox,
      },
      'hub ready',
    );
  }

  async stop(): Promise<void> {
    this.orphanLoop?.stop();
    this.rebalanceLoop?.stop();
    await this.alerts?.stop().catch(() => undefined);
    await this.authorize?.stop().catch(() => undefined);
    await this.app?.close().catch(() => undefined);
    await this.dynsec?.close().catch(() => undefined);
    // first the source, then the connection the acks go out on
    await this.jetstream?.stop().catch(() => undefined);
    await this.ingest?.stop().catch(() => undefined);
    await this.readReplica?.close();
    await this.db?.close().catch(() => undefined);
  }
}

/** Refused before anything starts: a webhook without its secret would send unsigned alerts. */
function checkAlertConfig(cfg: HubConfigT): void {
  if (cfg.POPKIT_HUB_ALERT_WEBHOOK_URL && !cfg.POPKIT_HUB_ALERT_WEBHOOK_SECRET)
    throw new KitError(
      'CONFIG_INVALID',
      'POPKIT_HUB_ALERT_WEBHOOK_URL is set without POPKIT_HUB_ALERT_WEBHOOK_SECRET: alerts are only sent signed',
    );
}

/**
 * Refused before anything starts: a read replica needs a PostgreSQL primary it replicates (the embedded
 * PGlite has none), and a URL the driver can parse (the schema's pattern checks only its scheme).
 */
function checkReadConfig(cfg: HubConfigT): void {
  const url = cfg.POPKIT_HUB_READ_DATABASE_URL;
  if (url === undefined) return;
  if (!cfg.DATABASE_URL)
    throw new KitError(
      'CONFIG_INVALID',
      'POPKIT_HUB_READ_DATABASE_URL is set without DATABASE_URL: a read replica replicates a PostgreSQL primary, and the embedded PGlite is none',
    );
  try {
    new URL(url);
  } catch {
    throw new KitError(
      'CONFIG_INVALID',
      'POPKIT_HUB_READ_DATABASE_URL is not a URL (postgres://user@host:port/db)',
    );
  }
}

/** The alert evaluator and its deliveries from the hub's configuration (services/hub/alerts.ts). */
function hubAlerts(cfg: HubConfigT, db: SqlDb, ingest: HubIngest): HubAlerts {
  const url = cfg.POPKIT_HUB_ALERT_WEBHOOK_URL;
  const secret = cfg.POPKIT_HUB_ALERT_WEBHOOK_SECRET;
  return new HubAlerts(db, {
    intervalMs: cfg.POPKIT_HUB_ALERT_INTERVAL_S * 1000,
    thresholds: {
      silentS: cfg.POPKIT_HUB_ALERT_SILENT_S,
      batteryPct: cfg.POPKIT_HUB_ALERT_BATTERY_PCT,
      backlogAgeS: cfg.POPKIT_HUB_ALERT_BACKLOG_AGE_S,
      spikeWindowS: cfg.POPKIT_HUB_ALERT_SPIKE_WINDOW_S,
      declines: cfg.POPKIT_HUB_ALERT_DECLINES,
      rejects: cfg.POPKIT_HUB_ALERT_REJECTS,
      dropWindowS: cfg.POPKIT_HUB_ALERT_DROP_WINDOW_S,
    },
    publish: (payload) => ingest.publish(topics.alerts, payload),
    ...(url && secret
      ? {
          webhook: {
            url,
            secret,
            attempts: cfg.POPKIT_HUB_ALERT_WEBHOOK_ATTEMPTS,
            backoffMs: cfg.POPKIT_HUB_ALERT_WEBHOOK_BACKOFF_MS,
            timeoutMs: cfg.POPKIT_HUB_ALERT_WEBHOOK_TIMEOUT_MS,
          },
        }
      : {}),
  });
}
