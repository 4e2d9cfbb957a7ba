// deploy/hub/docker-compose.replica.yml on top of deploy/hub/docker-compose.yml (the read replica,
// docs/scaling.md#a-read-replica). No Docker engine here: both files are parsed and merged as Compose
// merges an override (mappings merged, sequences of volumes and ports joined by target, command and
// entrypoint replaced), `${VAR}` filled from a sample .env, and the hub workers' environment loaded
// through the hub's own configuration schema. tests/integration/hub-read-replica.test.ts runs
// postgres-replication.sh and the replica's pg_basebackup on a real PostgreSQL.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { BaseConfig, composeConfig, loadConfig } from '../../core/config.ts';
import { HubConfig } from '../../services/hub/config.ts';
import { composeInterpolator } from '../support/compose.ts';

const DIR = path.resolve(import.meta.dirname, '../../deploy/hub');
const read = (f: string) => fs.readFileSync(path.join(DIR, f), 'utf8');

type Service = {
  image?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: unknown;
};
type Compose = { services: Record<string, Service>; volumes?: Record<string, unknown> };

const REPLACED = new Set(['command', 'entrypoint', 'healthcheck', 'image']);
const JOINED = new Set(['volumes', 'ports']);

/** Compose's merge of an override file onto a service (the rules the files here rely on). */
function mergeService(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = base[k];
    if (REPLACED.has(k) || b === undefined) out[k] = v;
    else if (JOINED.has(k)) {
      const target = (s: string) => s.split(':')[1] ?? s;
      const kept = (b as string[]).filter((x) => !(v as string[]).some((y) => target(y) === target(x)));
      out[k] = [...kept, ...(v as string[])];
    } else if (typeof b === 'object' && !Array.isArray(b)) out[k] = { ...(b as object), ...(v as object) };
    else out[k] = v;
  }
  return out;
}

const base = parseYaml(read('docker-compose.yml')) as Compose;
const over = parseYaml(read('docker-compose.replica.yml')) as Compose;
const merged: Compose = {
  services: { ...base.services },
  volumes: { ...base.volumes, ...over.volumes },
};
for (const [name, svc] of Object.entries(over.services))
  merged.services[name] = mergeService(
    (base.services[name] ?? {}) as Record<string, unknown>,
    svc as Record<string, unknown>,
  ) as Service;

/** a sample .env: every variable either file asks for */
const ENV: Record<string, string> = {
  POSTGRES_PASSWORD: 'pg-secret-0123',
  POSTGRES_REPLICATION_PASSWORD: 'repl-secret-0123',
  POPKIT_HUB_BROKER_PASSWORD: 'broker-secret-0123',
  POPKIT_HUB_ADMIN_TOKEN: 'admin-token-0123456789abcdef',
  POPKIT_HUB_DYNSEC_PASSWORD: 'dynsec-secret-0123',
};
const interpolate = composeInterpolator(ENV);

const replica = merged.services['postgres-replica']!;
const primary = merged.services['postgres']!;
const hub = merged.services['hub']!;

describe('deploy/hub: the read replica variant', () => {
  test('it adds a replica service and touches only services the single-machine file has', () => {
    for (const name of Object.keys(over.services))
      assert.ok(name === 'postgres-replica' || base.services[name], `${name} is not in docker-compose.yml`);
    // physical replication needs the same major version on both sides
    assert.equal(replica.image, base.services['postgres']!.image);
    assert.deepEqual(replica.ports ?? [], [], 'the replica publishes no port');
    const data = (replica.volumes ?? []).map((v) => v.split(':')[0]!);
    assert.ok(data.includes('postgres-replica-data'));
    assert.ok(merged.volumes && 'postgres-replica-data' in merged.volumes, 'its volume is declared');
    assert.ok(!data.includes('postgres-data'), "never the primary's volume");
  });

  test("the workers' environment passes the hub's own configuration schema, reads on the replica", () => {
    const env = Object.fromEntries(
      Object.entries(hub.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]),
    );
    const cfg = loadConfig(composeConfig(BaseConfig, HubConfig), env);
    const write = new URL(cfg.DATABASE_URL!);
    const readUrl = new URL(cfg.POPKIT_HUB_READ_DATABASE_URL!);
    assert.equal(write.hostname, 'postgres');
    assert.equal(readUrl.hostname, 'postgres-replica');
    // the same database as the same user: a copy of the primary has the primary's roles
    for (const part of ['protocol', 'username', 'password', 'port', 'pathname'] as const)
      assert.equal(readUrl[part], write[part], part);
    assert.ok(cfg.POPKIT_HUB_READ_MAX_LAG_S > 0);
    // the replica down must not keep the workers from starting: reads fall back to the primary
    assert.equal(hub.depends_on?.['postgres-replica']?.condition, 'service_started');
    assert.equal(hub.depends_on?.['postgres']?.condition, 'service_healthy');
    assert.equal(replica.depends_on?.['postgres']?.condition, 'service_healthy');
  });

  test('the primary runs postgres-replication.sh once, and the replica streams as the role it makes', () => {
    const script = read('postgres-replication.sh');
    const mount = (primary.volumes ?? []).find((v) => v.includes('/docker-entrypoint-initdb.d/'));
    assert.ok(mount, 'the script is an init script of the primary');
    const source = path.join(DIR, mount.split(':')[0]!);
    assert.ok(fs.existsSync(source));
    assert.ok(fs.statSync(source).mode & 0o100, 'executable');
    assert.ok(
      (primary.volumes ?? []).some((v) => v.startsWith('postgres-data:')),
      "the primary's data kept",
    );
    const role = script.match(/CREATE ROLE (\w+) WITH REPLICATION LOGIN/)?.[1];
    assert.ok(role);
    assert.match(script, new RegExp(`^echo "host replication ${role} all scram-sha-256"`, 'm'));
    const entry = interpolate((replica.entrypoint ?? []).join(' '));
    const backup = entry.match(/pg_basebackup ([^;]*)/)?.[1] ?? '';
    assert.match(backup, /-h postgres /);
    assert.match(backup, new RegExp(`-U ${role} `));
    assert.match(backup, / -R /, 'a standby (standby.signal, primary_conninfo)');
    assert.match(entry, /if \[ ! -s "\$PGDATA\/PG_VERSION" \]/, 'copied once, into an empty volume');
    assert.match(entry, /exec docker-entrypoint\.sh postgres/);
    // the primary's init script and the replica's login read the same secret
    assert.equal(
      interpolate(String(primary.environment?.['POSTGRES_REPLICATION_PASSWORD'])),
      interpolate(String(replica.environment?.['PGPASSWORD'])),
    );
  });

  test('every secret the variant asks for is named in docs/scaling.md', () => {
    const doc = fs.readFileSync(path.resolve(DIR, '../../docs/scaling.md'), 'utf8');
    const raw = read('docker-compose.replica.yml');
    const names = new Set([...raw.matchAll(/\$\{(\w+)/g)].map((m) => m[1]!));
    assert.ok(names.size > 0);
    for (const n of names) assert.ok(doc.includes(n), `${n} in docs/scaling.md`);
    assert.ok(doc.includes('docker-compose.replica.yml'));
  });
});
