// Test helpers for checkout: a real checkout (real LMDB) in a temp data dir, the demo catalog, and the
// invariants every test checks (stock + sold = initial, orders exactly once).
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { allOrders, openKitStore, readAllStock, scanOutbox, tokenCount } from '../../core/store/index.ts';
import { createCheckout } from '../../services/checkout/main.ts';
import { makeTempDir } from './tmp.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin/popkit.js');
export const ADMIN = 'test-admin-token-0123456789';
export const DEMO_CATALOG = JSON.parse(
  fs.readFileSync(path.join(ROOT, 'services/checkout/demo-catalog.json'), 'utf8'),
);

/** A temp dir (popkit-<prefix>…) removed when the test process exits (tests/support/tmp.ts). */
export function tempDir(prefix = 'popkit-test-'): string {
  return makeTempDir(prefix);
}

export function kitEnv(dataDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'],
    NODE_ENV: 'test',
    POPKIT_DATA_DIR: dataDir,
    POPKIT_BOARD: 'sim',
    POPKIT_KIT_ID: `kit-${path.basename(dataDir).slice(-6)}`,
    POPKIT_ADMIN_TOKEN: ADMIN,
    POPKIT_LOG_LEVEL: 'silent',
    POPKIT_STORE_RESERVE_MB: '0',
    ...extra,
  };
}

/**
 * A `popkit checkout` process on `port` logging at `logLevel`; `output()` is everything it printed.
 * `env` adds variables; an undefined value removes one of kitEnv's.
 */
export function spawnCheckout(
  dataDir: string,
  port: number,
  logLevel: string,
  env: Record<string, string | undefined> = {},
): { proc: ChildProcess; output: () => string } {
  const full = kitEnv(dataDir, {
    POPKIT_HTTP_PORT: String(port),
    POPKIT_HTTP_HOST: '127.0.0.1',
    POPKIT_LOG_LEVEL: logLevel,
  });
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete full[k];
    else full[k] = v;
  }
  const proc = spawn(process.execPath, [BIN, 'checkout'], {
    env: full,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { proc, output: captureOutput(proc) };
}

/** Gathers a child's stdout and stderr; the returned function gives everything printed so far. */
export function captureOutput(proc: ChildProcess): () => string {
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    out += d;
  });
  return () => out;
}

export async function startCheckout(extra: Record<string, string> = {}, dataDir = tempDir()) {
  const kit = await createCheckout(kitEnv(dataDir, extra));
  return { kit, app: kit.app, dataDir };
}

export const auth = { authorization: `Bearer ${ADMIN}` };

/**
 * `app.inject` as staff (the admin token may do all a paired terminal may): orders of any payment,
 * /v1/status, /metrics. A request that names its own `authorization` keeps it.
 */
export function asStaff(app: {
  inject(o: InjectOptions): Promise<LightMyRequestResponse>;
}): (o: InjectOptions) => Promise<LightMyRequestResponse> {
  return (o) => app.inject({ ...o, headers: { ...auth, ...(o.headers ?? {}) } });
}

/** A checkout that already sells `stock` (see smallCatalog: SKU A costs 1000, B 1100, …). */
export async function startCheckoutWithCatalog(
  stock: Record<string, number>,
  extra: Record<string, string> = {},
) {
  const kit = await startCheckout(extra);
  const res = await kit.app.inject({
    method: 'PUT',
    url: '/v1/catalog',
    headers: auth,
    payload: smallCatalog(stock),
  });
  if (res.statusCode !== 200) throw new Error(`catalog refused: ${res.body}`);
  return kit;
}

export function smallCatalog(stock: Record<string, number>, version = 1, eventId = 'ev-test') {
  return {
    version,
    eventId,
    currency: 'USD',
    items: Object.entries(stock).map(([sku, n], i) => ({
      sku,
      name: `Item ${sku}`,
      priceCents: 1000 + i * 100,
      stock: n,
    })),
  };
}

/** A read-only look at a data dir, as a fresh process would see it after a restart. */
export async function inspectStore(dataDir: string) {
  const store = openKitStore(dataDir);
  try {
    const orders = [...allOrders(store)];
    const stock = readAllStock(store);
    const outbox = [...scanOutbox(store)].map((e) => ({ key: e.key, value: e.value }));
    const tokens = tokenCount(store);
    return { orders, stock, outbox, tokens };
  } finally {
    await store.close();
  }
}

/** A sync run status of the contract's shape (core/contracts/run-status.ts) with the given link state. */
export function syncRunStatus(link: 'connecting' | 'up' | 'down') {
  return {
    link,
    hubUrl: 'mqtt://127.0.0.1:1',
    kitId: 'kit-test',
    backlog: { orders: 0, stock: 0, health: 0, telemetry: 0 },
    oldestAgeMs: { orders: 0, stock: 0, health: 0, telemetry: 0 },
    inflight: 0,
    lastAckAt: null,
    drained: 0,
    published: 0,
    resent: 0,
    reconnects: 0,
    dropped: {},
    catalogVersion: null,
    catalogEventId: null,
    catalogSubscribed: null,
    catalogRefusals: [],
  };
}
