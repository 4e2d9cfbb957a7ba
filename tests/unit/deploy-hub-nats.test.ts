// deploy/hub/docker-compose.nats.yml and nats.conf: the clustered region (docs/scaling.md#a-nats-cluster).
// No Docker engine here: the compose file is parsed, `${VAR}` filled from a sample .env and the hub
// worker's environment loaded through the hub's own configuration schema; nats.conf is checked by
// nats-server itself (`-t`: parse and exit) with the node's environment, and by what a node needs for
// MQTT (a server name, JetStream, an R3 MQTT stream, routes to the three nodes).
// tests/integration/sync-hub-nats.test.ts runs a real three-node cluster of the same shape on loopback.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { BaseConfig, composeConfig, hubUrlList, loadConfig } from '../../core/config.ts';
import { HubConfig } from '../../services/hub/config.ts';
import { composeInterpolator } from '../support/compose.ts';
import { NATS_SERVER } from '../support/nats-cluster.ts';
import { makeTempDir } from '../support/tmp.ts';

const DIR = path.resolve(import.meta.dirname, '../../deploy/hub');
const read = (f: string) => fs.readFileSync(path.join(DIR, f), 'utf8');

type Service = {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
};
const compose = parseYaml(read('docker-compose.nats.yml'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const NODES = ['nats-1', 'nats-2', 'nats-3'];

const ENV: Record<string, string> = {
  POSTGRES_PASSWORD: 'pg-secret-0123',
  POPKIT_HUB_BROKER_PASSWORD: 'broker-secret-0123',
  POPKIT_HUB_ADMIN_TOKEN: 'admin-token-0123456789abcdef',
};
const interpolate = composeInterpolator(ENV);

describe('deploy/hub: the NATS cluster variant', () => {
  test('three nodes, each with its own name and JetStream volume, one config file', () => {
    for (const n of NODES) {
      const svc = compose.services[n]!;
      assert.ok(svc, n);
      assert.match(svc.image ?? '', /^nats:2\.9/);
      assert.equal(svc.environment?.['NATS_SERVER_NAME'], n);
      const vols = svc.volumes ?? [];
      assert.ok(vols.includes('./nats.conf:/etc/nats/nats.conf:ro'));
      assert.ok(vols.includes(`${n}-data:/data`), `${n} keeps its store`);
      assert.ok(`${n}-data` in compose.volumes);
      assert.ok(!vols.some((v) => v.includes('ca.key')), "the CA's key stays out");
    }
  });

  test("the worker's environment passes the hub's schema: MQTT 3.1.1, the three nodes, JetStream ingest over TLS", () => {
    const hub = compose.services['hub']!;
    const env = Object.fromEntries(
      Object.entries(hub.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]),
    );
    const cfg = loadConfig(composeConfig(BaseConfig, HubConfig), env);
    assert.equal(cfg.POPKIT_HUB_MQTT_VERSION, '3.1.1');
    assert.notEqual(cfg.POPKIT_HUB_SHARED_SUBSCRIPTION, 'on');
    const hosts = hubUrlList(cfg.POPKIT_HUB_BROKER_URL).map((u) => new URL(u));
    assert.deepEqual(
      hosts.map((u) => u.hostname),
      NODES,
    );
    for (const u of hosts) assert.equal(u.protocol, 'mqtts:');
    for (const n of NODES) assert.ok(hub.depends_on?.[n], `hub waits for ${n}`);
    // the batches from the R3 work queue over the NATS client port, TLS, the three nodes
    assert.equal(cfg.POPKIT_HUB_INGEST, 'jetstream');
    assert.equal(cfg.POPKIT_HUB_JS_REPLICAS, 3);
    const nats = cfg.POPKIT_HUB_NATS_URL.split(',').map((u) => new URL(u));
    assert.deepEqual(
      nats.map((u) => [u.protocol, u.hostname, u.port]),
      NODES.map((n) => ['tls:', n, '4222']),
    );
    assert.ok(cfg.POPKIT_HUB_NATS_CA_FILE && cfg.POPKIT_HUB_NATS_USER && cfg.POPKIT_HUB_NATS_PASSWORD);
    // scalable: no fixed host port, no fixed worker id (each replica is its container's hostname)
    assert.equal(hub.ports, undefined);
    assert.equal(hub.environment?.['POPKIT_HUB_WORKER_ID'], undefined);
  });

  test('nats.conf: what MQTT needs, routes to every node; nats-server parses it', () => {
    const conf = read('nats.conf');
    assert.match(conf, /^server_name: \$NATS_SERVER_NAME$/m);
    assert.match(conf, /^jetstream \{/m);
    assert.match(conf, /^\s+stream_replicas: 3$/m);
    for (const n of NODES) assert.match(conf, new RegExp(`nats-route://${n}:6222`));
    assert.match(conf, /^mqtt \{[^}]*listen: 0\.0\.0\.0:8883/ms);
    // the client port the workers' JetStream ingest uses, with TLS
    assert.match(conf, /^listen: 0\.0\.0\.0:4222\n(#.*\n)*tls \{/m);
    // the real parser, on a copy with local paths (the certificate and the users file are the operator's)
    const dir = makeTempDir('nats-conf-');
    fs.mkdirSync(path.join(dir, 'config'));
    fs.writeFileSync(
      path.join(dir, 'config', 'nats-users.conf'),
      'authorization { users = [ { user: popkit-hub, password: "x" } ] }\n',
    );
    const local = conf.replace('/data/jetstream', path.join(dir, 'js')).replace(/^\s*tls \{[^}]*\}\n/gm, '');
    fs.writeFileSync(path.join(dir, 'nats.conf'), local);
    const res = spawnSync(NATS_SERVER, ['-t', '-c', path.join(dir, 'nats.conf')], {
      env: { ...process.env, NATS_SERVER_NAME: 'nats-1' },
      encoding: 'utf8',
    });
    assert.equal(res.status, 0, `${res.stdout}${res.stderr}`);
  });

  test('every secret the variant asks for is named in docs/scaling.md', () => {
    const doc = fs.readFileSync(path.resolve(DIR, '../../docs/scaling.md'), 'utf8');
    const names = new Set([...read('docker-compose.nats.yml').matchAll(/\$\{(\w+):\?/g)].map((m) => m[1]!));
    assert.ok(names.size > 0);
    for (const n of names) assert.ok(doc.includes(n), `${n} in docs/scaling.md`);
    assert.ok(doc.includes('docker-compose.nats.yml'));
  });
});
