// A three-node NATS cluster on loopback for the clustered-region tests (docs/scaling.md#a-nats-cluster):
// Debian's nats-server (scripts/setup.sh), one config file per node in a temp dir, free ports from
// tests/support/ports.ts, each node with JetStream (its own store_dir), routes to the other two, and an
// MQTT 3.1.1 listener whose sessions and retained messages live in R3 streams (`stream_replicas: 3`).
// A node can be SIGKILLed and started again on the same ports and store; `stop()` kills every node and
// removes the dir, whether the test passed or not (also at process exit).
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './ports.ts';
import { makeTempDir } from './tmp.ts';

export const NATS_SERVER = process.env['POPKIT_TEST_NATS_SERVER'] ?? '/usr/sbin/nats-server';

export interface NatsNode {
  name: string;
  /** nats://127.0.0.1:<client port> */
  natsUrl: string;
  /** mqtt://127.0.0.1:<mqtt port>: the node's MQTT 3.1.1 gateway */
  mqttUrl: string;
  monitorUrl: string;
  confFile: string;
  storeDir: string;
  logFile: string;
  proc: ChildProcess | undefined;
}

export interface NatsCluster {
  dir: string;
  nodes: NatsNode[];
  /** SIGKILL one node (no shutdown of its own: its JetStream store is left as a crash leaves it) */
  kill(i: number): Promise<void>;
  /** start a node again on its ports and store; resolves once the cluster has its JetStream meta leader */
  restart(i: number): Promise<void>;
  /** until every running node answers /healthz ok (JetStream current) */
  waitHealthy(ms?: number): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

function killAllAtExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const p of live) {
      try {
        p.kill('SIGKILL');
      } catch {
        // gone already
      }
    }
  });
}

function nodeConf(o: {
  name: string;
  client: number;
  cluster: number;
  mqtt: number;
  monitor: number;
  storeDir: string;
  routes: number[];
}): string {
  return `# ${o.name}: written by tests/support/nats-cluster.ts
server_name: ${o.name}
listen: 127.0.0.1:${o.client}
http: 127.0.0.1:${o.monitor}
jetstream {
  store_dir: "${o.storeDir}"
  max_memory_store: 64MB
  max_file_store: 1GB
}
cluster {
  name: popkit-test
  listen: 127.0.0.1:${o.cluster}
  routes: [
${o.routes.map((p) => `    nats-route://127.0.0.1:${p}`).join('\n')}
  ]
}
mqtt {
  listen: 127.0.0.1:${o.mqtt}
  # the MQTT sessions', retained messages' and QoS 1 messages' streams on all three nodes
  stream_replicas: 3
  # a QoS 1 message not PUBACKed within this is sent again (NATS's own redelivery)
  ack_wait: "5s"
}
`;
}

async function healthy(monitorUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${monitorUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

async function until(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`NATS cluster: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  killAllAtExit();
  const dir = makeTempDir('nats-');
  const ports: { client: number; cluster: number; mqtt: number; monitor: number }[] = [];
  for (let i = 0; i < size; i++)
    ports.push({
      client: await freePort(),
      cluster: await freePort(),
      mqtt: await freePort(),
      monitor: await freePort(),
    });
  const nodes: NatsNode[] = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const storeDir = path.join(dir, name, 'js');
    fs.mkdirSync(storeDir, { recursive: true });
    const confFile = path.join(dir, name, 'nats.conf');
    fs.writeFileSync(
      confFile,
      nodeConf({
        name,
        ...p,
        storeDir,
        routes: ports.filter((_, j) => j !== i).map((q) => q.cluster),
      }),
    );
    return {
      name,
      natsUrl: `nats://127.0.0.1:${p.client}`,
      mqttUrl: `mqtt://127.0.0.1:${p.mqtt}`,
      monitorUrl: `http://127.0.0.1:${p.monitor}`,
      confFile,
      storeDir,
      logFile: path.join(dir, name, 'nats.log'),
      proc: undefined,
    };
  });

  const launch = (n: NatsNode): void => {
    const out = fs.openSync(n.logFile, 'a');
    const proc = spawn(NATS_SERVER, ['-c', n.confFile], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    n.proc = proc;
  };

  const waitHealthy = async (ms = 30_000) => {
    for (const n of nodes) if (n.proc) await until(() => healthy(n.monitorUrl), ms, `${n.name} healthy`);
  };

  const killNode = async (n: NatsNode, signal: NodeJS.Signals) => {
    const p = n.proc;
    n.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    await gone;
  };

  const cluster: NatsCluster = {
    dir,
    nodes,
    async kill(i) {
      await killNode(nodes[i]!, 'SIGKILL');
    },
    async restart(i) {
      launch(nodes[i]!);
      await waitHealthy();
    },
    waitHealthy,
    async stop() {
      for (const n of nodes) await killNode(n, 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
  try {
    for (const n of nodes) launch(n);
    await waitHealthy(60_000);
  } catch (err) {
    const logs = nodes.map((n) => `${n.name}:\n${safeTail(n.logFile)}`).join('\n');
    await cluster.stop();
    throw new Error(`${(err as Error).message}\n${logs}`);
  }
  return cluster;
}

function safeTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}
