// `popkit up`: the whole kit on this machine. Simulated hardware unless a board is detected, an embedded
// local bus, an embedded hub unless POPKIT_HUB_URL is set, every kit service as its own supervised
// process (as the containers are on a board; on a small board checkout, sync and kitd are threads of one
// supervised `popkit kit` process: POPKIT_KIT_MODE), and a demo catalog on first boot.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Static, Type } from '@sinclair/typebox';
import mqtt from 'mqtt';
import {
  BaseConfig,
  CheckoutConfig,
  composeConfig,
  KitModeConfig,
  loadConfig,
  resolveDataDir,
  resolveKitId,
} from '../../core/config.ts';
import { localTopics, supervisorCommand } from '../../core/contracts/local-bus.ts';
import { readRunStatus, writeRunStatus } from '../../core/contracts/run-status.ts';
import { dataLayout, hubDataLayout, type KitDataLayout } from '../../core/data-dir.ts';
import { type EmbeddedBroker, MosquittoBroker } from '../../core/embedded-broker.ts';
import { ensurePrivateDir } from '../../core/file-modes.ts';
import { SMALL_BOARD_NODE_FLAGS, smallBoardEnv } from '../../core/kit-part.ts';
import { KIT_MQTT_OPTIONS } from '../../core/mqtt-options.ts';
import { CPU_PRIORITY } from '../../core/priorities.ts';
import { ProcessSupervisor } from '../../core/process-supervisor.ts';
import type { LogRotation } from '../../core/rotating-log.ts';
import { loadOrCreateToken, onBalena } from '../../core/secrets.ts';
import { openKitStore, readStoredCatalog, replaceCatalog } from '../../core/store/index.ts';
import { defaultKitMode, detectBoard } from '../../hardware/boards/index.ts';
import { SyncConfig } from '../../services/sync/config.ts';
import { refusePlaintextHub } from '../../services/sync/link.ts';
import { COMMANDS } from './registry.ts';

/** What `popkit up` reads beyond checkout's variables. */
export const UpOwnConfig = Type.Object({
  POPKIT_LOCAL_BUS_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 1885,
    description: 'port of the embedded local bus (Mosquitto); 0 picks a free one',
  }),
  POPKIT_EMBEDDED_HUB_MQTT_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 1884,
    description: "port of the embedded hub's broker when POPKIT_HUB_URL is unset; 0 picks a free one",
  }),
  POPKIT_HUB_HTTP_PORT: Type.Integer({
    minimum: 1,
    maximum: 65535,
    default: 8090,
    description: "the embedded hub's HTTP API",
  }),
  POPKIT_LOG_MAX_MB: Type.Number({
    minimum: 0.001,
    maximum: 4096,
    default: 10,
    description:
      'each service log in the data dir (logs/) rotates when it reaches this size (MB; fractions allowed)',
  }),
  POPKIT_LOG_FILES: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: 5,
    description: 'rotated files kept per service log (service.log.1 is the newest); older ones are removed',
  }),
});

/** The size rotation of the service logs `popkit up` writes. */
export function logRotationFrom(cfg: { POPKIT_LOG_MAX_MB: number; POPKIT_LOG_FILES: number }): LogRotation {
  return { maxBytes: Math.round(cfg.POPKIT_LOG_MAX_MB * 1024 * 1024), files: cfg.POPKIT_LOG_FILES };
}
// BaseConfig carries the local bus prefix every process reads: the supervisor listens where kitd's
// watchdog publishes
const UpConfig = composeConfig(
  composeConfig(composeConfig(BaseConfig, CheckoutConfig), UpOwnConfig),
  KitModeConfig,
);
type UpConfigT = Static<typeof UpConfig>;

const here = path.dirname(fileURLToPath(import.meta.url));
// the same launcher this process came through (bin/popkit.js sits beside dist/ and the sources alike)
const BIN = findUp(here, 'bin/popkit.js');
const DEMO_CATALOG = path.resolve(here, '../../services/checkout/demo-catalog.json');

function findUp(from: string, rel: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, rel);
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`${rel} not found above ${from}`);
  }
}

async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  stepMs = 100,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return res.status < 500;
  } catch {
    return false;
  }
}

const has = (cmd: string) => cmd in COMMANDS;

/** Everything `popkit up` starts, so that one shutdown stops whatever has started. */
interface Up {
  cfg: UpConfigT;
  env: NodeJS.ProcessEnv;
  layout: KitDataLayout;
  board: ReturnType<typeof detectBoard>;
  kitId: string;
  admin: { token: string; created: boolean; replaced?: 'empty' | 'torn' };
  noMedia: boolean;
  brokers: EmbeddedBroker[];
  sup: ProcessSupervisor;
  bus?: mqtt.MqttClient;
  beat?: NodeJS.Timeout;
}

export async function run(argv: string[]): Promise<number> {
  const up = await prepare(argv);
  // Ctrl-C at any moment, start-up included, stops whatever has started: no broker or service is left behind
  let started = false;
  const stopRequested = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  void stopRequested.then(async () => {
    if (started) return;
    process.stdout.write('popkit up: stopping during start-up\n');
    await shutdown(up);
    process.exit(130);
  });
  try {
    await start(up);
  } catch (err) {
    await shutdown(up);
    throw err;
  }
  started = true;
  await stopRequested;
  process.stdout.write('popkit up: stopping\n');
  await shutdown(up);
  return 0;
}

/** Config, data dir, board, and on first boot a demo catalog so the kit sells at once. */
async function prepare(argv: string[]): Promise<Up> {
  const { values } = parseArgs({ args: argv, options: { 'no-media': { type: 'boolean', default: false } } });
  const env = { ...process.env };
  const cfg = loadConfig(UpConfig, env);
  // sync would refuse it at every restart: say so once, before anything starts
  if (cfg.POPKIT_HUB_URL)
    refusePlaintextHub(cfg.POPKIT_HUB_URL, loadConfig(SyncConfig, env).POPKIT_HUB_ALLOW_PLAINTEXT);
  const dataDir = resolveDataDir(cfg);
  ensurePrivateDir(dataDir);
  await seedDemoCatalog(dataDir);
  const layout = dataLayout(dataDir);
  return {
    cfg,
    env,
    layout,
    board: detectBoard(env),
    kitId: resolveKitId(cfg),
    admin: adminToken(layout, cfg.POPKIT_ADMIN_TOKEN),
    noMedia: Boolean(values['no-media']),
    brokers: [],
    sup: new ProcessSupervisor(layout.logs, { log: logRotationFrom(cfg) }),
  };
}

function adminToken(
  layout: KitDataLayout,
  fromEnv: string | undefined,
): { token: string; created: boolean; replaced?: 'empty' | 'torn' } {
  const t = loadOrCreateToken(layout.adminToken, fromEnv);
  // checkout gets it from the environment and cannot see the damage: named here (docs/power-cuts.md)
  return { token: t.value, created: t.created, ...(t.replaced ? { replaced: t.replaced } : {}) };
}

/** The demo catalog, unless one is stored (it is replaced by PUT /v1/catalog or the hub's). */
async function seedDemoCatalog(dataDir: string): Promise<void> {
  const store = openKitStore(dataDir);
  if (!readStoredCatalog(store)) {
    await replaceCatalog(store, JSON.parse(fs.readFileSync(DEMO_CATALOG, 'utf8')), { source: 'local' });
  }
  await store.close();
}

async function start(up: Up): Promise<void> {
  const localBus = await startBroker(up, up.cfg.POPKIT_LOCAL_BUS_PORT, up.layout.bus, 'local bus');
  const childEnv: NodeJS.ProcessEnv = {
    ...up.env,
    POPKIT_DATA_DIR: up.layout.root,
    POPKIT_BOARD: up.board.id,
    POPKIT_KIT_ID: up.kitId,
    POPKIT_LOCAL_BUS_URL: localBus.url,
    POPKIT_ADMIN_TOKEN: up.admin.token,
  };
  up.sup.on('exit', (name: string, code: number | null, signal: string | null, backoff: number) => {
    process.stdout.write(`popkit up: ${name} exited (${signal ?? code}); restarting in ${backoff} ms\n`);
  });
  // checkout before the embedded hub: it sells offline and needs nothing from the hub (it reads the
  // hub's key file once the hub has written it), so the first order does not wait for the hub's database
  // (combined mode: checkout is a thread of the kit process, which starts with sync once the hub is up)
  if (!combinedMode(up)) startCheckout(up, childEnv);
  let hubLine = `external ${up.cfg.POPKIT_HUB_URL}`;
  if (!up.cfg.POPKIT_HUB_URL && has('hub')) hubLine = await startEmbeddedHub(up, childEnv);
  startServices(up, childEnv);
  superviseOverBus(up, localBus.url);
  const ready = await waitFor(
    () => httpOk(`http://127.0.0.1:${up.cfg.POPKIT_HTTP_PORT}/healthz`),
    30_000,
    200,
  );
  process.stdout.write(banner(up, { ready, hubLine, localBusUrl: localBus.url }));
}

async function startBroker(up: Up, port: number, dir: string, name: string): Promise<EmbeddedBroker> {
  // listed before it starts: a Ctrl-C while Mosquitto is still coming up stops it too
  const broker = await MosquittoBroker.create({ port, dir, name });
  up.brokers.push(broker);
  await broker.start();
  return broker;
}

/**
 * The embedded hub with a broker of its own. Once it answers, `childEnv` points sync at it and carries
 * its catalog signing key; the banner's hub line comes back.
 */
async function startEmbeddedHub(up: Up, childEnv: NodeJS.ProcessEnv): Promise<string> {
  const { cfg, layout } = up;
  const hubBroker = await startBroker(up, cfg.POPKIT_EMBEDDED_HUB_MQTT_PORT, layout.hubBroker, 'hub broker');
  up.sup.add({
    name: 'hub',
    command: process.execPath,
    args: [BIN, 'hub'],
    nice: CPU_PRIORITY.hub.nice,
    env: {
      ...childEnv,
      POPKIT_DATA_DIR: layout.hub,
      POPKIT_HUB_BROKER_URL: hubBroker.url,
      POPKIT_HUB_HTTP_PORT: String(cfg.POPKIT_HUB_HTTP_PORT),
    },
  });
  const pub = hubDataLayout(layout.hub).signingPub;
  if (await waitFor(() => fs.existsSync(pub), 30_000)) {
    childEnv['POPKIT_HUB_PUBLIC_KEY'] = fs.readFileSync(pub, 'utf8');
  } else {
    process.stderr.write(
      'popkit up: the embedded hub did not write its signing key; catalogs from it will be refused\n',
    );
  }
  // the hub subscribes with a clean session: what sync sent before that would wait for a resend
  await waitFor(() => httpOk(`http://127.0.0.1:${cfg.POPKIT_HUB_HTTP_PORT}/healthz`), 30_000, 200);
  childEnv['POPKIT_HUB_URL'] = hubBroker.url;
  childEnv['POPKIT_HUB_HTTP_URL'] = `http://127.0.0.1:${cfg.POPKIT_HUB_HTTP_PORT}`;
  return `embedded: http://localhost:${cfg.POPKIT_HUB_HTTP_PORT}  (broker ${hubBroker.url}, data ${layout.hub})`;
}

function startCheckout(up: Up, childEnv: NodeJS.ProcessEnv): void {
  // checkout first: the others start niced (core/priorities.ts CPU_PRIORITY, as cpu_shares on balena)
  up.sup.add({
    name: 'checkout',
    command: process.execPath,
    args: [BIN, 'checkout'],
    env: { ...childEnv },
    nice: CPU_PRIORITY.checkout.nice,
  });
}

/** a small board's mode: checkout, sync and kitd as threads of one process (cli/commands/kit.ts) */
const combinedMode = (up: Up) => (up.cfg.POPKIT_KIT_MODE ?? defaultKitMode(up.board)) === 'combined';

function startServices(up: Up, childEnv: NodeJS.ProcessEnv): void {
  const node = process.execPath;
  if (combinedMode(up)) {
    // a small board: checkout, sync and kitd as threads of one process (cli/commands/kit.ts), at
    // checkout's priority (each thread then nices itself as its process would be); media on its own
    const small = smallBoardEnv(childEnv);
    up.sup.add({
      name: 'kit',
      command: node,
      args: [...SMALL_BOARD_NODE_FLAGS, BIN, 'kit'],
      env: { ...childEnv, ...small, POPKIT_KIT_MODE: 'combined', UV_THREADPOOL_SIZE: '8' },
      nice: CPU_PRIORITY.checkout.nice,
    });
    if (!up.noMedia && has('media'))
      up.sup.add({
        name: 'media',
        command: node,
        args: [...SMALL_BOARD_NODE_FLAGS, BIN, 'media'],
        env: { ...childEnv, ...small, UV_THREADPOOL_SIZE: '8' },
        nice: CPU_PRIORITY.media.nice,
      });
    return;
  }
  for (const svc of ['sync', 'kitd', 'media'] as const) {
    if (svc === 'media' && up.noMedia) continue;
    if (has(svc))
      up.sup.add({
        name: svc,
        command: node,
        args: [BIN, svc],
        env: { ...childEnv, UV_THREADPOOL_SIZE: '8' },
        nice: CPU_PRIORITY[svc].nice,
      });
  }
}

/** kitd's watchdog asks for restarts over the local bus; the children's view goes to run/supervisor.json. */
function superviseOverBus(up: Up, localBusUrl: string): void {
  const topic = localTopics(up.cfg.POPKIT_LOCAL_BUS_PREFIX).supervisorCmd;
  const bus = mqtt.connect(localBusUrl, {
    ...KIT_MQTT_OPTIONS,
    clientId: `popkit-up-${process.pid}`,
    reconnectPeriod: 1000,
  });
  up.bus = bus;
  bus.on('connect', () => bus.subscribe(topic, { qos: 1 }));
  bus.on('message', (t, payload) => {
    const cmd = t === topic ? supervisorCommand.parse(payload) : undefined;
    if (cmd && up.sup.restart(cmd.service)) {
      process.stdout.write(`popkit up: restarting ${cmd.service} (watchdog)\n`);
    }
  });
  up.beat = setInterval(
    () => writeRunStatus(up.layout.root, 'supervisor', { children: childrenView(up) }),
    1000,
  );
}

/** The children, and in combined mode the parts running as threads of the kit process (run/kit.json). */
function childrenView(up: Up) {
  const children = up.sup.view();
  const kit = children.find((c) => c.name === 'kit');
  if (!kit) return children;
  const parts = readRunStatus(up.layout.root, 'kit')?.parts ?? [];
  return [
    ...children,
    ...parts.map((p) => ({
      name: p.name,
      pid: kit.running && p.running ? kit.pid : null,
      running: kit.running && p.running,
      restarts: p.restarts,
      lastExit: p.lastExit,
      in: 'kit',
    })),
  ];
}

function banner(up: Up, o: { ready: boolean; hubLine: string; localBusUrl: string }): string {
  const { cfg, board, layout } = up;
  const port = cfg.POPKIT_HTTP_PORT;
  const lines = [
    `Popkit is up: kit ${up.kitId} on board ${board.id}${board.id === 'sim' ? ' (simulated hardware)' : ''}${o.ready ? '' : ' — checkout not answering yet, see logs'}`,
    `  checkout API + dashboard  http://localhost:${port}/`,
    `  API description           http://localhost:${port}/docs/openapi.json`,
    `  live stream (HLS)         http://localhost:${port}/live/index.m3u8`,
    `  hub                       ${has('hub') || cfg.POPKIT_HUB_URL ? o.hubLine : 'not available in this build'}`,
    `  local bus                 ${o.localBusUrl}`,
    `  data                      ${layout.root}   logs: ${layout.logs}/<service>.log`,
    `  services                  ${up.sup
      .view()
      .map((v) => (v.name === 'kit' ? 'kit (checkout, sync, kitd as threads)' : v.name))
      .join(', ')}`,
    // never printed under balena: its cloud keeps this log (core/secrets.ts onBalena)
    up.admin.created && !onBalena(up.env)
      ? `  admin token (shown once)  ${up.admin.token}`
      : `  admin token               in ${layout.adminToken}`,
    ...(up.admin.replaced
      ? [
          `  ! ${layout.adminToken} was ${up.admin.replaced} (a power cut?): replaced by a new admin token; paired terminals keep theirs`,
        ]
      : []),
    '',
    `Try:  curl -s -X POST localhost:${port}/v1/orders -H 'content-type: application/json' \\`,
    `        -d '{"lines":[{"sku":"TEE-BLK-M","qty":1}],"payment":{"method":"cash"}}'`,
    `      npx popkit status`,
    'Ctrl-C stops everything.',
  ];
  return `${lines.join('\n')}\n`;
}

async function shutdown(up: Up): Promise<void> {
  if (up.beat) clearInterval(up.beat);
  up.bus?.end(true);
  await up.sup.stop();
  for (const b of up.brokers.reverse()) await b.close();
}
