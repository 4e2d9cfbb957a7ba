// `popkit up`: the whole kit on this machine. Simulated hardware unless a board is detected, an embedded
// local bus, an embedded hub unless POPKIT_HUB_URL is set, every kit service as its own supervised
// process (as the containers are on a board), and a demo catalog on first boot.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Type } from '@sinclair/typebox';
import mqtt from 'mqtt';
import {
  BaseConfig,
  CheckoutConfig,
  composeConfig,
  loadConfig,
  resolveDataDir,
  resolveKitId,
} from '../../core/config.ts';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../core/embedded-broker.ts';
import { ProcessSupervisor } from '../../core/process-supervisor.ts';
import { writeServiceStatus } from '../../core/run-status.ts';
import { openKitStore, readStoredCatalog, replaceCatalog } from '../../core/store/index.ts';
import { detectBoard } from '../../hardware/boards/index.ts';
import { loadOrCreateAdminToken } from '../../services/checkout/main.ts';
import { COMMANDS } from '../popkit.ts';

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
});
const UpConfig = composeConfig(composeConfig(BaseConfig, CheckoutConfig), UpOwnConfig);

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

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { 'no-media': { type: 'boolean', default: false } } });
  const env = { ...process.env };
  const cfg = loadConfig(UpConfig, env);
  const dataDir = resolveDataDir(cfg);
  fs.mkdirSync(dataDir, { recursive: true });
  const board = detectBoard(env);
  const kitId = resolveKitId(cfg);
  const logDir = path.join(dataDir, 'logs');

  // first boot: a demo catalog so the kit sells at once (replaced by PUT /v1/catalog or the hub's)
  {
    const store = openKitStore(dataDir);
    if (!readStoredCatalog(store)) {
      await replaceCatalog(store, JSON.parse(fs.readFileSync(DEMO_CATALOG, 'utf8')), { source: 'local' });
    }
    await store.close();
  }
  const admin = loadOrCreateAdminToken(dataDir, cfg.POPKIT_ADMIN_TOKEN);

  const brokers: EmbeddedBroker[] = [];
  const sup = new ProcessSupervisor(logDir);
  let bus: mqtt.MqttClient | undefined;
  let beat: NodeJS.Timeout | undefined;
  const shutdown = async () => {
    if (beat) clearInterval(beat);
    bus?.end(true);
    await sup.stop();
    for (const b of brokers.reverse()) await b.close();
  };
  // Ctrl-C at any moment, start-up included, stops whatever has started: no broker or service is left behind
  let started = false;
  const stopRequested = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  void stopRequested.then(async () => {
    if (started) return;
    process.stdout.write('popkit up: stopping during start-up\n');
    await shutdown();
    process.exit(130);
  });
  try {
    return await startAndServe();
  } catch (err) {
    await shutdown();
    throw err;
  }

  async function startAndServe(): Promise<number> {
    const localBus = await startEmbeddedBroker({
      port: cfg.POPKIT_LOCAL_BUS_PORT,
      dir: path.join(dataDir, 'bus'),
      name: 'local bus',
    });
    brokers.push(localBus);

    const childEnv: NodeJS.ProcessEnv = {
      ...env,
      POPKIT_DATA_DIR: dataDir,
      POPKIT_BOARD: board.id,
      POPKIT_KIT_ID: kitId,
      POPKIT_LOCAL_BUS_URL: localBus.url,
      POPKIT_ADMIN_TOKEN: admin.token,
    };
    sup.on('exit', (name: string, code: number | null, signal: string | null, backoff: number) => {
      process.stdout.write(`popkit up: ${name} exited (${signal ?? code}); restarting in ${backoff} ms\n`);
    });
    const node = process.execPath;
    const has = (cmd: string) => cmd in COMMANDS;

    let hubLine = `external ${cfg.POPKIT_HUB_URL}`;
    if (!cfg.POPKIT_HUB_URL && has('hub')) {
      const hubBroker = await startEmbeddedBroker({
        port: cfg.POPKIT_EMBEDDED_HUB_MQTT_PORT,
        dir: path.join(dataDir, 'hub-broker'),
        name: 'hub broker',
      });
      brokers.push(hubBroker);
      const hubDir = path.join(dataDir, 'hub');
      sup.add({
        name: 'hub',
        command: node,
        args: [BIN, 'hub'],
        env: {
          ...childEnv,
          POPKIT_DATA_DIR: hubDir,
          POPKIT_HUB_BROKER_URL: hubBroker.url,
          POPKIT_HUB_HTTP_PORT: String(cfg.POPKIT_HUB_HTTP_PORT),
        },
      });
      const pub = path.join(hubDir, 'keys', 'hub-signing.pub');
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
      hubLine = `embedded: http://localhost:${cfg.POPKIT_HUB_HTTP_PORT}  (broker ${hubBroker.url}, data ${hubDir})`;
    }

    sup.add({ name: 'checkout', command: node, args: [BIN, 'checkout'], env: childEnv });
    for (const svc of ['sync', 'kitd', 'media'] as const) {
      if (svc === 'media' && values['no-media']) continue;
      if (has(svc))
        sup.add({
          name: svc,
          command: node,
          args: [BIN, svc],
          env: { ...childEnv, UV_THREADPOOL_SIZE: '8' },
        });
    }

    // kitd's watchdog asks for restarts over the local bus
    bus = mqtt.connect(localBus.url, { clientId: `popkit-up-${process.pid}`, reconnectPeriod: 1000 });
    bus.on('connect', () => bus?.subscribe('popkit/v1/local/supervisor/cmd', { qos: 1 }));
    bus.on('message', (_topic, payload) => {
      try {
        const cmd = JSON.parse(payload.toString()) as { cmd?: string; service?: string };
        if (cmd.cmd === 'restart' && cmd.service && sup.restart(cmd.service)) {
          process.stdout.write(`popkit up: restarting ${cmd.service} (watchdog)\n`);
        }
      } catch {}
    });
    beat = setInterval(() => writeServiceStatus(dataDir, 'supervisor', { children: sup.view() }), 1000);

    const port = cfg.POPKIT_HTTP_PORT;
    const ready = await waitFor(() => httpOk(`http://127.0.0.1:${port}/healthz`), 30_000, 200);
    const lines = [
      `Popkit is up: kit ${kitId} on board ${board.id}${board.id === 'sim' ? ' (simulated hardware)' : ''}${ready ? '' : ' — checkout not answering yet, see logs'}`,
      `  checkout API + dashboard  http://localhost:${port}/`,
      `  API description           http://localhost:${port}/docs/openapi.json`,
      `  live stream (HLS)         http://localhost:${port}/live/index.m3u8`,
      `  hub                       ${has('hub') || cfg.POPKIT_HUB_URL ? hubLine : 'not available in this build'}`,
      `  local bus                 ${localBus.url}`,
      `  data                      ${dataDir}   logs: ${logDir}/<service>.log`,
      `  services                  ${sup
        .view()
        .map((v) => v.name)
        .join(', ')}`,
      admin.created
        ? `  admin token (shown once)  ${admin.token}`
        : `  admin token               in ${path.join(dataDir, 'keys', 'admin.token')}`,
      '',
      `Try:  curl -s -X POST localhost:${port}/v1/orders -H 'content-type: application/json' \\`,
      `        -d '{"lines":[{"sku":"TEE-BLK-M","qty":1}],"payment":{"method":"cash"}}'`,
      `      npx popkit status`,
      'Ctrl-C stops everything.',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);

    started = true;
    await stopRequested;
    process.stdout.write('popkit up: stopping\n');
    await shutdown();
    return 0;
  }
}
