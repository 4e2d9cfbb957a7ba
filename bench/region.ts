// bench:region — a region's hub under a fleet: hundreds of simulated kits, each its own MQTT session
// (clean: false, its own client id, QoS 1) speaking the hub wire of core/contracts/hub-wire.ts as
// sync does — a retained online status, order batches with a stock snapshot at the kit's selling
// rate, a health and telemetry batch every few seconds — against real `popkit hub` workers on real
// PostgreSQL, through a private Mosquitto (the single-machine region of deploy/hub/).
//
// Measured per fleet: ingest orders/s (orders acked over the time from the first batch to the last
// ack), the end-to-end ack latency (batch published → its ack received at the kit) p50/p99, the
// broker's resident memory per connected kit (its RSS with the fleet connected less its RSS with the
// hub alone, over the kits), the hub workers' RSS, and that the ledger holds every order once. The
// baseline in the same run is the same region under a quarter of the fleet: the ratios say how the
// path scales with kits on this machine.
//
// Regions: `mosquitto` (one broker, workers on a shared subscription), `nats` (a three-node NATS
// cluster, kits and one worker on its MQTT 3.1.1 gateways: NATS has no `$share`), `nats-js` (the same
// cluster, kits on the gateways, `--workers` workers consuming a JetStream work queue:
// POPKIT_HUB_INGEST=jetstream). `--region both` is mosquitto and nats, `all` the three, or a list.
//
//   npm run bench:region -- [--kits 400] [--seconds 20] [--rate 1] [--workers 2] [--mqtt 5|3.1.1]
//                           [--region mosquitto|nats|nats-js|both|all|a,b]
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import {
  type AckT,
  type BatchT,
  MQTT_VERSIONS,
  type MqttVersion,
  mqttProtocolLevel,
  topics,
} from '../core/contracts/hub-wire.ts';
import { percentile } from '../services/checkout/series/signals.ts';
import {
  dropSchema,
  freePort,
  hubProcessEnv,
  mosquitto,
  PG_URL,
  REPO,
  tmpDir,
  uniqueId,
  waitFor,
} from '../tests/support/hub-link.ts';
import { startNatsCluster } from '../tests/support/nats-cluster.ts';

const { values } = parseArgs({
  options: {
    kits: { type: 'string', default: '400' },
    seconds: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1' },
    workers: { type: 'string', default: '2' },
    mqtt: { type: 'string', default: '5' },
    region: { type: 'string', default: 'both' },
  },
});
const KITS = Number(values.kits);
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const WORKERS = Number(values.workers);
const VERSION = values.mqtt as MqttVersion;
type RegionKind = 'mosquitto' | 'nats' | 'nats-js';
const REGION_KINDS: readonly string[] = ['mosquitto', 'nats', 'nats-js'];
const REGIONS: string[] =
  values.region === 'both'
    ? ['mosquitto', 'nats']
    : values.region === 'all'
      ? [...REGION_KINDS]
      : (values.region ?? '').split(',');
if (
  !(Number.isInteger(KITS) && KITS >= 4) ||
  !(SECONDS > 0) ||
  !(RATE > 0) ||
  !(Number.isInteger(WORKERS) && WORKERS >= 1) ||
  !MQTT_VERSIONS.includes(VERSION) ||
  !REGIONS.every((r) => REGION_KINDS.includes(r))
) {
  process.stderr.write(
    'usage: bench/region.ts [--kits N≥4] [--seconds S] [--rate orders/s per kit] [--workers N] [--mqtt 5|3.1.1] ' +
      '[--region mosquitto|nats|nats-js|both|all|a,b]\n',
  );
  process.exit(2);
}

/** how often a kit's sync publishes what it sold (its poll), and its health and telemetry */
const BATCH_EVERY_MS = 500;
const TELEMETRY_EVERY_MS = 5000;

function rssMb(pid: number | undefined, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** a worker, its log (warn and up) in `logFile` */
function popkitHub(env: Record<string, string>, logFile: string): ChildProcess {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [path.join(REPO, 'bin/popkit.js'), 'hub'], {
    env: { ...process.env, NODE_ENV: 'production', POPKIT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', out, 'inherit'],
  });
  fs.closeSync(out);
  return child;
}

/** the workers' warnings, counted by message ("broker offline": the worker lost its MQTT connection) */
function logCounts(files: string[]): string {
  const counts = new Map<string, number>();
  for (const f of files) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const m = /"msg":"([^"]{1,80})"/.exec(line);
      if (m) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
    }
  }
  return [...counts].map(([msg, n]) => `${msg} ×${n}`).join(', ');
}

/** nearest rank, as the series recorder's p95 (NaN for no samples) */
const quantile = (sorted: number[], q: number) => percentile(sorted, q) ?? Number.NaN;

/** A kit as the hub sees it: one MQTT session, the wire sync speaks, nothing else of a kit. */
class SimKit {
  readonly kitId: string;
  client!: MqttClient;
  private seq = 0;
  private sold = 0;
  private stock = { TEE: 100_000, CAP: 100_000 };
  /** entry id → when its batch was published (ms, performance.now()) */
  readonly pending = new Map<string, number>();
  readonly latencies: number[] = [];
  orders = 0;
  acked = 0;
  rejected = 0;
  /** acks for entries already acked: the same batch delivered (and committed) again */
  dupAcks = 0;
  /** SUBSCRIBEs the broker refused while the kit connected */
  subscribeRefusals = 0;

  constructor(
    readonly fleet: string,
    i: number,
    readonly version: MqttVersion,
  ) {
    this.kitId = `${fleet}-k${String(i).padStart(4, '0')}`;
  }

  async connect(url: string): Promise<void> {
    const offline = JSON.stringify({ v: 1, kitId: this.kitId, online: false, at: Date.now() });
    this.client = mqtt.connect(url, {
      clientId: `popkit-sync-${this.kitId}`,
      clean: false,
      protocolVersion: mqttProtocolLevel(this.version),
      ...(this.version === '5' ? { properties: { sessionExpiryInterval: 3600 } } : {}),
      keepalive: 30,
      reconnectPeriod: 1000,
      will: { topic: topics.status(this.kitId), payload: Buffer.from(offline), qos: 1, retain: true },
    });
    this.client.on('message', (_t, payload) => this.onAck(payload));
    await new Promise<void>((resolve, reject) => {
      this.client.once('connect', () => resolve());
      this.client.once('error', reject);
    });
    // a NATS node busy electing stream leaders may refuse a QoS 1 SUBSCRIBE (SUBACK 0x80): again, as
    // sync's reconnect backoff would
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.subscribeAsync(topics.acks(this.kitId), { qos: 1 });
        break;
      } catch (err) {
        if (attempt >= 20) throw err;
        this.subscribeRefusals++;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
    const online = { v: 1, kitId: this.kitId, online: true, at: Date.now() };
    await this.client.publishAsync(topics.status(this.kitId), JSON.stringify(online), {
      qos: 1,
      retain: true,
    });
  }

  private onAck(payload: Buffer): void {
    const now = performance.now();
    const ack = JSON.parse(payload.toString()) as AckT;
    for (const a of ack.acks) {
      const sent = this.pending.get(a.id);
      if (sent === undefined) {
        this.dupAcks++;
        continue;
      }
      this.pending.delete(a.id);
      if (a.lane !== 'orders') continue;
      this.latencies.push(now - sent);
      if (a.state === 'rejected') this.rejected++;
      else this.acked++;
    }
  }

  private id(): string {
    this.seq++;
    return `${Date.now().toString(36)}-${this.kitId}-${String(this.seq).padStart(8, '0')}`.slice(-64);
  }

  /** What the kit sold since its last batch (a Poisson draw at RATE), with a stock snapshot behind it. */
  async sell(): Promise<void> {
    let n = 0;
    const mean = (RATE * BATCH_EVERY_MS) / 1000;
    // Knuth's Poisson draw: fine for the small means of a kit's half second
    for (let p = Math.random(), l = Math.exp(-mean); p > l; p *= Math.random()) n++;
    if (n === 0) return;
    const entries: BatchT['entries'] = [];
    const at = new Date().toISOString();
    for (let k = 0; k < n; k++) {
      const sku = this.sold++ % 2 ? 'TEE' : 'CAP';
      const qty = 1 + (this.sold % 3);
      const price = sku === 'TEE' ? 2500 : 1500;
      this.stock[sku] -= qty;
      const id = this.id();
      entries.push({
        lane: 'orders',
        id,
        order: {
          id,
          kitId: this.kitId,
          eventId: this.fleet,
          catalogVersion: 1,
          totalCents: qty * price,
          currency: 'EUR',
          lines: [
            {
              sku,
              name: sku === 'TEE' ? 'Tour tee' : 'Cap',
              qty,
              unitPriceCents: price,
              lineCents: qty * price,
            },
          ],
          payment: { method: 'cash' },
          createdAt: at,
          status: 'accepted',
        },
      });
    }
    entries.push({ lane: 'stock', id: this.id(), at: Date.now(), stock: { ...this.stock } });
    // counted before the publish: an order in flight is outstanding until its ack
    this.orders += n;
    await this.publish(topics.orders(this.kitId), entries);
  }

  async telemetry(): Promise<void> {
    const at = Date.now();
    await this.publish(topics.telemetry(this.kitId), [
      { lane: 'health', id: this.id(), at, body: { service: 'kitd', state: 'ready', health: { score: 92 } } },
      { lane: 'telemetry', id: this.id(), at, body: { outbox: this.pending.size, link: 'up' } },
    ]);
  }

  private async publish(topic: string, entries: BatchT['entries']): Promise<void> {
    const batch: BatchT = { v: 1, kitId: this.kitId, sentAt: Date.now(), entries };
    const t = performance.now();
    for (const e of entries) this.pending.set((e as { id: string }).id, t);
    await this.client.publishAsync(topic, JSON.stringify(batch), { qos: 1 });
  }

  outstandingOrders(): number {
    return this.orders - this.acked - this.rejected;
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

interface FleetResult {
  region: string;
  kits: number;
  orders: number;
  ordersPerS: number;
  p50: number;
  p99: number;
  brokerKbPerKit: number;
  hubRssMb: number;
  ledgerRows: number;
  rejected: number;
  /** orders never acked within 2 minutes of the end of selling */
  unacked: number;
  /** acks the kits got again for entries already acked (redeliveries) */
  dupAcks: number;
  /** the workers' warnings, counted by message */
  workerLog: string;
  /** NATS regions: the JetStream consumers holding messages when the selling stopped and at the end (/jsz) */
  jsz?: string | undefined;
}

async function ledgerRows(schema: string, eventId: string): Promise<number> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const r = await c.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${schema}".orders WHERE event_id = $1`,
      [eventId],
    );
    return Number(r.rows[0]?.n ?? 0);
  } finally {
    await c.end();
  }
}

/**
 * A region's brokers: Mosquitto (one broker, `--workers` hub workers on a shared subscription, MQTT
 * `--mqtt`) or a three-node NATS cluster (tests/support/nats-cluster.ts: JetStream, routes, MQTT 3.1.1
 * gateways; kits spread over the nodes, one hub worker with every node's URL: NATS has no `$share`).
 */
interface Region {
  name: string;
  /** the workers' environment beyond the broker URL (worker w) */
  workerEnv(w: number): Record<string, string>;
  /** NATS: what its JetStream consumers hold unacked, for the report */
  jsz?(): Promise<string>;
  version: MqttVersion;
  workers: number;
  /** the broker URL kit i connects to */
  kitUrl(i: number): string;
  /** POPKIT_HUB_BROKER_URL of the workers */
  hubUrl: string;
  /** resident memory of the region's broker processes, MB */
  brokerRssMb(): number;
  stop(): Promise<void>;
}

async function startRegion(kind: RegionKind): Promise<Region> {
  if (kind === 'mosquitto') {
    const broker = await mosquitto({ dir: tmpDir('bench-region-mosq') });
    return {
      name: `Mosquitto, ${WORKERS} worker(s), MQTT ${VERSION}`,
      workerEnv: () => ({
        POPKIT_HUB_MQTT_VERSION: VERSION,
        POPKIT_HUB_SHARED_SUBSCRIPTION: WORKERS > 1 ? 'on' : 'auto',
      }),
      version: VERSION,
      workers: WORKERS,
      kitUrl: () => broker.url,
      hubUrl: broker.url,
      brokerRssMb: () => rssMb(broker.pid),
      stop: () => broker.stop(),
    };
  }
  const cluster = await startNatsCluster(3);
  await cluster.waitHealthy();
  const urls = cluster.nodes.map((n) => n.mqttUrl);
  const natsUrls = cluster.nodes.map((n) => n.natsUrl);
  const rotate = (list: string[], w: number) => list.map((_, i) => list[(w + i) % list.length]!).join(',');
  const js = kind === 'nats-js';
  return {
    name: js
      ? `NATS cluster of 3 (MQTT 3.1.1 gateways), ${WORKERS} worker(s) on a JetStream work queue`
      : 'NATS cluster of 3 (MQTT 3.1.1 gateways), 1 worker',
    workerEnv: (w) => ({
      POPKIT_HUB_MQTT_VERSION: '3.1.1',
      POPKIT_HUB_SHARED_SUBSCRIPTION: 'auto',
      ...(js
        ? {
            POPKIT_HUB_INGEST: 'jetstream',
            POPKIT_HUB_NATS_URL: rotate(natsUrls, w),
            POPKIT_HUB_JS_REPLICAS: '3',
          }
        : {}),
    }),
    jsz: async () => {
      const out: string[] = [];
      for (const n of cluster.nodes) {
        const res = await fetch(`${n.monitorUrl}/jsz?accounts=true&consumers=true`).catch(() => null);
        if (!res?.ok) continue;
        const j = (await res.json()) as {
          account_details?: {
            stream_detail?: {
              name: string;
              state?: { messages?: number };
              consumer_detail?: {
                name: string;
                num_ack_pending: number;
                num_redelivered: number;
                num_pending: number;
                cluster?: { leader?: string };
              }[];
            }[];
          }[];
        };
        for (const a of j.account_details ?? [])
          for (const st of a.stream_detail ?? [])
            for (const c of st.consumer_detail ?? [])
              if (
                (c.cluster?.leader ?? n.name) === n.name &&
                (c.num_ack_pending > 0 || c.num_pending > 0 || c.num_redelivered > 0)
              )
                out.push(
                  `${st.name}/${c.name}: ack pending ${c.num_ack_pending}, redelivered ${c.num_redelivered}, not yet delivered ${c.num_pending} (stream holds ${st.state?.messages ?? '?'})`,
                );
      }
      return out.slice(0, 8).join('; ') || 'none pending';
    },
    version: '3.1.1',
    workers: js ? WORKERS : 1,
    kitUrl: (i) => urls[i % urls.length]!,
    hubUrl: urls.join(','),
    brokerRssMb: () => cluster.nodes.reduce((sum, n) => sum + rssMb(n.proc?.pid), 0),
    stop: () => cluster.stop(),
  };
}

/** One fleet against a fresh region (brokers, workers, schema): connect, sell, drain, measure, tear down. */
async function runFleet(kind: RegionKind, kits: number): Promise<FleetResult> {
  const schema = uniqueId('bench_region').replace(/-/g, '_');
  const region = await startRegion(kind);
  const hubs: ChildProcess[] = [];
  const hubLogs: string[] = [];
  const fleet = uniqueId('fleet');
  const sims: SimKit[] = [];
  try {
    for (let w = 0; w < region.workers; w++) {
      const port = await freePort();
      const logFile = path.join(tmpDir('bench-region-log'), `hub-w${w}.log`);
      hubLogs.push(logFile);
      hubs.push(
        popkitHub(
          {
            ...hubProcessEnv({
              dataDir: tmpDir('bench-region-hub'),
              brokerUrl: region.hubUrl,
              schema,
              port,
              workerId: `w${w}`,
            }),
            ...region.workerEnv(w),
          },
          logFile,
        ),
      );
      await waitFor(() => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok), 60_000, 'hub healthz');
    }
    await new Promise((r) => setTimeout(r, 1000));
    const brokerBefore = region.brokerRssMb();
    for (let i = 0; i < kits; i++) sims.push(new SimKit(fleet, i, region.version));
    // connect in waves, as a venue's kits come up, not all in one millisecond
    for (let i = 0; i < sims.length; i += 50)
      await Promise.all(sims.slice(i, i + 50).map((k, j) => k.connect(region.kitUrl(i + j))));
    await new Promise((r) => setTimeout(r, 1000));
    const brokerConnected = region.brokerRssMb();

    const t0 = performance.now();
    const timers: NodeJS.Timeout[] = [];
    const errors: string[] = [];
    const guard = (p: Promise<void>) => p.catch((err: Error) => void errors.push(err.message));
    for (const k of sims) {
      // each kit on its own phase, as real kits' polls are
      const phase = Math.random() * BATCH_EVERY_MS;
      timers.push(
        setTimeout(() => {
          timers.push(setInterval(() => guard(k.sell()), BATCH_EVERY_MS));
          timers.push(setInterval(() => guard(k.telemetry()), TELEMETRY_EVERY_MS));
        }, phase),
      );
    }
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    for (const t of timers) clearInterval(t);
    // NATS: what its consumers hold when the selling stops (the backlog, the redeliveries)
    const jszAtStop = region.jsz ? await region.jsz() : undefined;
    // a region that loses or stalls acks is a finding, not a crash of the bench: counted and reported
    await waitFor(() => sims.every((k) => k.outstandingOrders() === 0), 120_000, 'every order acked').catch(
      () => {},
    );
    const unacked = sims.reduce((sum, k) => sum + k.outstandingOrders(), 0);
    const jsz = region.jsz
      ? `at the end of selling: ${jszAtStop}; after the drain: ${await region.jsz()}`
      : undefined;
    const lastAck = performance.now();
    if (errors.length) throw new Error(`publishes failed: ${errors.slice(0, 3).join('; ')}`);
    const orders = sims.reduce((s, k) => s + k.orders, 0);
    const lat = sims.flatMap((k) => k.latencies).sort((a, b) => a - b);
    const rows = await ledgerRows(schema, fleet);
    return {
      region: region.name,
      kits,
      orders,
      ordersPerS: orders / ((lastAck - t0) / 1000),
      p50: quantile(lat, 0.5),
      p99: quantile(lat, 0.99),
      brokerKbPerKit: ((brokerConnected - brokerBefore) * 1024) / kits,
      hubRssMb: hubs.reduce((s, h) => s + rssMb(h.pid, 'VmHWM'), 0),
      ledgerRows: rows,
      rejected: sims.reduce((s, k) => s + k.rejected, 0),
      unacked,
      dupAcks: sims.reduce((s, k) => s + k.dupAcks, 0),
      workerLog: logCounts(hubLogs),
      jsz,
    };
  } finally {
    await Promise.all(sims.map((k) => k.close().catch(() => {})));
    for (const h of hubs) h.kill('SIGTERM');
    await Promise.all(hubs.map((h) => (h.exitCode === null ? new Promise((r) => h.once('exit', r)) : null)));
    await region.stop();
    await dropSchema(schema);
  }
}

const line = (r: FleetResult) =>
  `  ${r.region}: ${r.kits} kits, ${r.orders} orders, ${Math.round(r.ordersPerS)} orders/s ingested, ack p50 ` +
  `${r.p50.toFixed(1)} ms p99 ${r.p99.toFixed(1)} ms, broker ${r.brokerKbPerKit.toFixed(0)} KiB per kit, hub ` +
  `workers peak RSS ${Math.round(r.hubRssMb)} MB, ledger rows ${r.ledgerRows}${r.rejected ? `, rejected ${r.rejected}` : ''}` +
  `${r.dupAcks ? `, acks again for acked entries ${r.dupAcks}` : ''}` +
  `${r.unacked ? `, NOT ACKED within 2 min: ${r.unacked}` : ''}` +
  `${r.workerLog ? `\n    workers' warnings: ${r.workerLog}` : ''}${r.jsz ? `\n    JetStream consumers ${r.jsz}` : ''}\n`;

process.stdout.write(
  `bench:region — simulated kits (own MQTT session each, clean: false, QoS 1) selling ${RATE} order/s ` +
    `each for ${SECONDS} s, batches every ${BATCH_EVERY_MS} ms with a stock snapshot, health+telemetry every ` +
    `${TELEMETRY_EVERY_MS / 1000} s; \`popkit hub\` workers on PostgreSQL\n\n`,
);
const results: FleetResult[] = [];
const first = REGIONS[0] as RegionKind;
const base = await runFleet(first, Math.max(1, Math.round(KITS / 4)));
process.stdout.write(`baseline: a quarter of the fleet\n${line(base)}`);
results.push(base);
for (const kind of REGIONS as RegionKind[]) {
  const r = await runFleet(kind, KITS);
  process.stdout.write(`fleet\n${line(r)}`);
  results.push(r);
}
const full = results[1]!;
process.stdout.write(
  `\nresult (${full.region}): ${KITS} kits vs ${base.kits}: ingest ${(full.ordersPerS / base.ordersPerS).toFixed(2)}x ` +
    `the orders/s for ${(full.kits / base.kits).toFixed(1)}x the kits, ack p99 ${(full.p99 / base.p99).toFixed(2)}x, ` +
    `broker memory per kit ${(full.brokerKbPerKit / base.brokerKbPerKit).toFixed(2)}x\n`,
);
for (const other of results.slice(2))
  process.stdout.write(
    `result (${other.region} vs ${full.region}, ${KITS} kits): ingest ${(other.ordersPerS / full.ordersPerS).toFixed(2)}x, ` +
      `ack p50 ${(other.p50 / full.p50).toFixed(2)}x, p99 ${(other.p99 / full.p99).toFixed(2)}x, broker memory per kit ` +
      `${(other.brokerKbPerKit / full.brokerKbPerKit).toFixed(2)}x\n`,
  );
for (const r of results) {
  if (r.unacked > 0) {
    process.stderr.write(`${r.region}: ${r.unacked} orders of ${r.kits} kits were never acked\n`);
    process.exitCode = 1;
  }
  // every acked order in the ledger, none twice (an unacked one may or may not have reached it)
  if (r.ledgerRows > r.orders - r.rejected || r.ledgerRows < r.orders - r.rejected - r.unacked) {
    process.stderr.write(
      `${r.region}: the ledger holds ${r.ledgerRows} orders, ${r.orders - r.rejected} were acked\n`,
    );
    process.exitCode = 1;
  }
}
