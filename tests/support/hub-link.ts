// Shared wiring for the hub-link tests and bench: a kit (real LMDB + checkout's OrderService), a hub
// worker, sync, a private Mosquitto on a free port, unique PostgreSQL schemas.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { BaseConfig, composeConfig, loadConfig } from '../../core/config.ts';
import { MQTT_VERSIONS, type MqttVersion } from '../../core/contracts/hub-wire.ts';
import { LANES } from '../../core/contracts/lanes.ts';
import { type MosquittoBroker, startEmbeddedBroker } from '../../core/embedded-broker.ts';
import { MonotonicIds } from '../../core/ids.ts';
import { type KitStore, openKitStore, readStoredCatalog, replaceCatalog } from '../../core/store/index.ts';
import { TokenVault } from '../../core/token-vault.ts';
import { OrderService } from '../../services/checkout/orders.ts';
import { HubConfig } from '../../services/hub/config.ts';
import type { PaymentGateway } from '../../services/hub/gateway.ts';
import { HubService } from '../../services/hub/hub-service.ts';
import { SyncConfig } from '../../services/sync/config.ts';
import { LaneKeeper } from '../../services/sync/lanes.ts';
import { laneLimitsFrom, syncOptionsFrom } from '../../services/sync/main.ts';
import { SyncService } from '../../services/sync/sync-service.ts';
import { freePort, startOnFreePort } from './ports.ts';
import { makeTempDir } from './tmp.ts';

export const PG_URL = process.env['POPKIT_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
export const SHARED_BROKER = process.env['POPKIT_TEST_MQTT_URL'] ?? 'mqtt://127.0.0.1:1883';
export const REPO = path.resolve(import.meta.dirname, '../..');

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A temp dir (popkit-<prefix>-…) removed when the test process exits (tests/support/tmp.ts). */
export function tmpDir(prefix: string): string {
  return makeTempDir(`${prefix}-`);
}

export { freePort };

/** Poll until `fn` returns a truthy value; throws after `ms` so a broken run fails instead of hanging. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  ms = 20_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------- kit

export const TEST_CATALOG = {
  version: 1,
  eventId: 'default',
  currency: 'EUR',
  items: [
    { sku: 'TEE', name: 'Tour tee', priceCents: 2500, currency: 'EUR', stock: 10_000_000 },
    { sku: 'CAP', name: 'Cap', priceCents: 1500, currency: 'EUR', stock: 10_000_000 },
  ],
};

export interface TestKit {
  kitId: string;
  dataDir: string;
  store: KitStore;
  vault: TokenVault;
  orders: OrderService;
  /** one order through checkout's own code path (the same LMDB transaction as a 201) */
  place(payment?: { method: 'cash' } | { method: 'token'; token: string }): Promise<string>;
  close(): Promise<void>;
}

export async function makeKit(kitId: string, dataDir = tmpDir(kitId)): Promise<TestKit> {
  const store = openKitStore(dataDir);
  fs.mkdirSync(path.join(dataDir, 'keys'), { recursive: true });
  const keyFile = path.join(dataDir, 'keys', 'token.key');
  if (!fs.existsSync(keyFile)) fs.writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  const vault = new TokenVault(fs.readFileSync(keyFile));
  if (!readStoredCatalog(store)) await replaceCatalog(store, TEST_CATALOG, { source: 'local' });
  const big = 1_000_000_000_000;
  const orders = new OrderService(store, new MonotonicIds(), vault, {
    kitId,
    tokenTtlMs: 24 * 3600 * 1000,
    limits: { maxOrderCents: big, maxUnsyncedCents: big, maxUnsyncedOrders: big, maxUnsyncedAgeS: big },
  });
  let n = 0;
  return {
    kitId,
    dataDir,
    store,
    vault,
    orders,
    async place(payment = { method: 'cash' }) {
      n++;
      const sku = n % 2 ? 'TEE' : 'CAP';
      const res = await orders.create({ lines: [{ sku, qty: 1 + (n % 3) }], payment }, undefined);
      return res.order.id;
    },
    close: () => store.close(),
  };
}

// ---------------------------------------------------------------- hub

export async function startHub(opts: {
  dataDir?: string;
  schema?: string;
  brokerUrl?: string;
  databaseUrl?: string | null;
  env?: Record<string, string>;
  gateway?: PaymentGateway;
}): Promise<HubService> {
  const env: Record<string, string> = {
    POPKIT_DATA_DIR: opts.dataDir ?? tmpDir('hub'),
    POPKIT_HUB_BROKER_URL: opts.brokerUrl ?? SHARED_BROKER,
    POPKIT_HUB_HTTP_PORT: '0',
    POPKIT_HUB_HTTP_HOST: '127.0.0.1',
    POPKIT_HUB_WORKER_ID: uniqueId('w'),
    POPKIT_HUB_SHARED_SUBSCRIPTION: 'on',
    // a group of its own: hubs of other test files share this broker
    POPKIT_HUB_SHARE_GROUP: uniqueId('g'),
    ...(opts.databaseUrl === null ? {} : { DATABASE_URL: opts.databaseUrl ?? PG_URL }),
    ...(opts.schema ? { POPKIT_HUB_DB_SCHEMA: opts.schema } : {}),
    ...opts.env,
  };
  const cfg = loadConfig(composeConfig(BaseConfig, HubConfig), env);
  const hub = new HubService({
    cfg,
    dataDir: env['POPKIT_DATA_DIR']!,
    ...(opts.gateway ? { gateway: opts.gateway } : {}),
  });
  await hub.start();
  return hub;
}

/** The environment of a `popkit hub` child process on real PostgreSQL (crash tests, the sync bench). */
export function hubProcessEnv(o: {
  dataDir: string;
  brokerUrl: string;
  schema: string;
  port: number;
  workerId?: string;
}): Record<string, string> {
  return {
    POPKIT_DATA_DIR: o.dataDir,
    POPKIT_HUB_BROKER_URL: o.brokerUrl,
    DATABASE_URL: PG_URL,
    POPKIT_HUB_DB_SCHEMA: o.schema,
    POPKIT_HUB_HTTP_PORT: String(o.port),
    POPKIT_HUB_HTTP_HOST: '127.0.0.1',
    POPKIT_HUB_SHARED_SUBSCRIPTION: 'on',
    ...(o.workerId ? { POPKIT_HUB_WORKER_ID: o.workerId } : {}),
  };
}

// ---------------------------------------------------------------- sync

export function syncEnv(
  kit: { kitId: string; dataDir: string },
  hubUrl: string,
  extra: Record<string, string> = {},
) {
  return {
    POPKIT_KIT_ID: kit.kitId,
    POPKIT_DATA_DIR: kit.dataDir,
    POPKIT_HUB_URL: hubUrl,
    POPKIT_SYNC_ACK_TIMEOUT_MS: '3000',
    POPKIT_SYNC_BACKOFF_MIN_MS: '100',
    POPKIT_SYNC_BACKOFF_MAX_MS: '1000',
    POPKIT_SYNC_POLL_MS: '50',
    // many kits on one machine: each LAN stock listener on a free port
    POPKIT_LAN_STOCK_PORT: '0',
    ...extra,
  };
}

export function startSync(kit: TestKit, hubUrl: string, extra: Record<string, string> = {}): SyncService {
  const cfg = loadConfig(composeConfig(BaseConfig, SyncConfig), syncEnv(kit, hubUrl, extra));
  const sync = new SyncService(
    kit.store,
    kit.vault,
    new LaneKeeper(kit.store, laneLimitsFrom(cfg)),
    syncOptionsFrom(cfg, kit.kitId, kit.dataDir),
  );
  sync.start();
  return sync;
}

// ---------------------------------------------------------------- postgres

export async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await c.end();
  }
}

/** The hub's admin HTTP API: one request with the hub's admin token, its status and JSON answer. */
export function hubAdminApi(hub: () => Pick<HubService, 'httpUrl' | 'adminToken'>) {
  return async (path: string, method: string, body?: unknown) => {
    const h = hub();
    const res = await fetch(`${h.httpUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${h.adminToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
}

/** One query on a test's own hub schema (a connection each: the rows). */
export function schemaSql(schema: string) {
  return async <R>(text: string, params: unknown[] = []): Promise<R[]> => {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      await c.query(`SET search_path TO "${schema}"`);
      return (await c.query(text, params)).rows as R[];
    } finally {
      await c.end();
    }
  };
}

/** The orders lane's entries still in a kit's outbox (unacked). */
export function outboxOrders(k: TestKit): number {
  return k.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] });
}

/** Every order each kit placed is acked (settled) on the kit and in the hub's ledger exactly once. */
export async function assertSettledOnceInLedger(
  schema: string,
  kits: readonly TestKit[],
  placed: readonly (readonly string[])[],
): Promise<void> {
  for (const [i, k] of kits.entries()) {
    const mine = placed[i] ?? [];
    for (const id of mine)
      assert.equal(k.store.orders.get(id)?.syncState, 'settled', `${k.kitId} ${id} acked`);
    const ledger = await ledgerOrderIds(schema, k.kitId);
    assert.deepEqual(ledger.ids, [...mine].sort(), `ledger of ${k.kitId}`);
    assert.equal(ledger.rows, mine.length, 'each order once');
  }
}

export async function ledgerOrderIds(
  schema: string,
  kitId: string,
): Promise<{ ids: string[]; rows: number }> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const res = await c.query<{ order_id: string }>(
      `SELECT order_id FROM "${schema}".orders WHERE kit_id = $1 ORDER BY order_id`,
      [kitId],
    );
    return { ids: res.rows.map((r) => r.order_id), rows: res.rowCount ?? res.rows.length };
  } finally {
    await c.end();
  }
}

// ---------------------------------------------------------------- mosquitto

/** How one MQTT connection attempt ends (no reconnects): a TLS port spoken to in plain MQTT must not connect. */
export async function connectOutcome(
  url: string,
  opts: mqtt.IClientOptions = {},
): Promise<'connected' | 'error' | 'closed'> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  const outcome = await new Promise<'connected' | 'error' | 'closed'>((resolve) => {
    c.once('connect', () => resolve('connected'));
    c.once('error', () => resolve('error'));
    c.once('close', () => resolve('closed'));
  });
  c.end(true);
  return outcome;
}

export type Mosquitto = MosquittoBroker;

/** The hub link's MQTT versions, each test of a parameterized file runs once per version. */
export { MQTT_VERSIONS, type MqttVersion };

/** A hub worker's and a kit's sync's environment for one MQTT version (a region's broker's). */
export function mqttEnv(v: MqttVersion): { hub: Record<string, string>; sync: Record<string, string> } {
  return { hub: { POPKIT_HUB_MQTT_VERSION: v }, sync: { POPKIT_SYNC_MQTT_VERSION: v } };
}

/**
 * The connections Mosquitto logged (its notice `New client connected from … as <id> (p<level>, c<clean>,
 * k<keepalive>)`), of the client ids `id` matches: the broker's own word on which protocol a client
 * spoke (level 2 is MQTT 3.1.1, 5 is MQTT 5) and whether it asked for a clean session.
 */
export function brokerConnections(
  broker: Mosquitto,
  id: RegExp,
): { clientId: string; protocol: '3.1' | '3.1.1' | '5'; clean: boolean }[] {
  const log = fs.readFileSync(path.join(path.dirname(broker.confFile), 'mosquitto.log'), 'utf8');
  const out: { clientId: string; protocol: '3.1' | '3.1.1' | '5'; clean: boolean }[] = [];
  for (const m of log.matchAll(/New client connected from \S+ as (\S+) \(p(\d), c(\d),/g)) {
    const clientId = m[1]!;
    if (!id.test(clientId)) continue;
    const level = m[2];
    const protocol = level === '5' ? '5' : level === '2' ? '3.1.1' : '3.1';
    out.push({ clientId, protocol, clean: m[3] === '1' });
  }
  return out;
}

/**
 * A private Mosquitto on a free port (the same broker `popkit up` embeds). `extraConf` replaces the
 * anonymous access line; queued messages are never capped. Without `port`, a port is claimed
 * (tests/support/ports.ts) and the start is retried on another one if Mosquitto cannot bind it.
 */
export async function mosquitto(
  // rawConf: a whole config, used as it is; a function gets the port its listener must use
  opts: {
    port?: number;
    extraConf?: string;
    dir?: string;
    rawConf?: string | ((port: number) => string);
  } = {},
): Promise<Mosquitto> {
  const dir = opts.dir ?? tmpDir('mosq');
  const start = (port: number) => {
    const raw = typeof opts.rawConf === 'function' ? opts.rawConf(port) : opts.rawConf;
    return startEmbeddedBroker({
      port,
      dir,
      ...(opts.extraConf ? { extraConf: opts.extraConf } : {}),
      ...(raw ? { rawConf: raw } : {}),
    });
  };
  return opts.port ? start(opts.port) : startOnFreePort(start);
}

/**
 * A test file's hub link: a private broker, a hub on its own schema (sandbox gateway) and a kit, made
 * before the file's tests and torn down after them, with the sync a test started (`rig.sync`) stopped
 * first and `rig.cleanup` run before anything else. Read the parts inside tests, after `before` ran.
 */
export interface HubLinkRig {
  schema: string;
  broker: Mosquitto;
  hub: HubService;
  kit: TestKit;
  sync?: SyncService;
  cleanup?: () => Promise<void> | void;
}

export function hubLinkRig(name: string, gateway: () => PaymentGateway): HubLinkRig {
  const rig = { schema: uniqueId(`t_${name}`).replace(/-/g, '_') } as HubLinkRig;
  before(async () => {
    rig.broker = await mosquitto();
    rig.hub = await startHub({ schema: rig.schema, gateway: gateway(), brokerUrl: rig.broker.url });
    rig.kit = await makeKit(uniqueId(`kit-${name}`));
  });
  after(async () => {
    await rig.cleanup?.();
    await rig.sync?.stop();
    await rig.hub?.stop();
    await rig.broker?.stop();
    await rig.kit?.close();
    await dropSchema(rig.schema);
  });
  return rig;
}
