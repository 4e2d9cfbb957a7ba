// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// The shipped hub broker (deploy/hub/mosquitto.conf, the mosquitto-init command of
// deploy/hub/docker-compose.yml, make-certs.sh) on a real Mosquitto with only paths and ports moved:
// the init makes the dynamic security file with the hub's admin, readable by the broker's user only; the
// hub's admin enrolls over the kits' TLS listener as the compose file configures it; a kit enrolled with
// a one-time code connects over TLS, publishes its orders, which a hub worker on the workers' listener
// receives; the kit's credentials do not open the workers' listener and it cannot read another kit's
// acks. The fallback (mosquitto-passwd.conf) differs only in the kits' listener's authentication.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import mqtt from 'mqtt';
import { parse as parseYaml } from 'yaml';
import { topics } from '../../core/contracts/hub-wire.ts';
import { enrollWithCode } from '../../core/enroll-kit.ts';
import { errorEnvelopePlugin } from '../../core/http-errors.ts';
import { openPostgres, type SqlDb } from '../../services/hub/db.ts';
import { DynsecClient } from '../../services/hub/dynsec.ts';
import { migrate } from '../../services/hub/migrations.ts';
import { kitRoutes } from '../../services/hub/routes/kits.ts';
import { hubValidatorCompiler } from '../../services/hub/validation.ts';
import {
  connectOutcome,
  dropSchema,
  freePort,
  type Mosquitto,
  mosquitto,
  PG_URL,
  REPO,
  tmpDir,
  uniqueId,
} from '../support/hub-link.ts';

const deploy = path.join(REPO, 'deploy/hub');
const dir = tmpDir('hubdynsec');
const certs = path.join(dir, 'certs');
const caFile = path.join(certs, 'ca.crt');
const dynsecFile = path.join(dir, 'dynamic-security.json');
const hubPass = 'hub-secret-password';
const dynsecPass = 'dynsec-admin-secret-password';
const adminToken = 'admin-token-0123456789abcdef';
const schema = uniqueId('t_hubdynsec').replace(/-/g, '_');
const eventA = uniqueId('eva');
const PLUGIN_HERE = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';

interface ComposeService {
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
}
const compose = parseYaml(fs.readFileSync(path.join(deploy, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, ComposeService>;
};

let broker: Mosquitto;
let kitUrl = '';
let dynsec: DynsecClient;
let db: SqlDb;
let app: ReturnType<typeof Fastify>;
let hubUrl = '';

/** the config lines that are not comments or blank */
const directives = (file: string) =>
  fs
    .readFileSync(path.join(deploy, file), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

describe('the shipped hub broker on dynamic security (deploy/hub)', () => {
  before(async () => {
    fs.copyFileSync(path.join(deploy, 'acl'), path.join(dir, 'acl'));
    execFileSync('mosquitto_passwd', ['-c', '-b', path.join(dir, 'hub-passwd'), 'popkit-hub', hubPass]);
    execFileSync(path.join(deploy, 'make-certs.sh'), [certs, '127.0.0.1', 'localhost'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // the init exactly as the compose file runs it (compose's $$ is a $ for the shell)
    const init = compose.services['mosquitto-init'];
    assert.ok(init?.command);
    assert.deepEqual(init.command.slice(0, 2), ['/bin/sh', '-c']);
    const script = (init.command[2] ?? '').replaceAll('$$', '$').replaceAll('/mosquitto/data/', `${dir}/`);
    for (let run = 0; run < 2; run++)
      execFileSync('/bin/sh', ['-c', script], {
        env: { PATH: process.env['PATH'], DYNSEC_ADMIN: 'popkit-dynsec', DYNSEC_PASSWORD: dynsecPass },
        stdio: 'pipe',
      });
    const kitPort = await freePort();
    kitUrl = `mqtts://127.0.0.1:${kitPort}`;
    const conf = (port: number) =>
      fs
        .readFileSync(path.join(deploy, 'mosquitto.conf'), 'utf8')
        .replaceAll('/mosquitto/config/', `${dir}/`)
        .replaceAll('/mosquitto/certs/', `${certs}/`)
        .replaceAll('/mosquitto/data/', `${dir}/`)
        // the plugin's path in this machine's Debian package (the image has it in /usr/lib)
        .replace('/usr/lib/mosquitto_dynamic_security.so', PLUGIN_HERE)
        .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
        .replace(/^listener 8883$/m, `listener ${kitPort} 127.0.0.1`);
    broker = await mosquitto({ dir, rawConf: conf });
    // the hub's admin as the compose file gives it: over the kits' TLS listener, with the CA
    const hubEnv = compose.services['hub']?.environment ?? {};
    assert.equal(hubEnv['POPKIT_HUB_DYNSEC_URL'], 'mqtts://mosquitto:8883');
    dynsec = new DynsecClient({
      url: hubEnv['POPKIT_HUB_DYNSEC_URL']!.replace('mosquitto:8883', `127.0.0.1:${kitPort}`),
      username: hubEnv['POPKIT_HUB_DYNSEC_USERNAME']!,
      password: dynsecPass,
      caFile,
      timeoutMs: 5000,
    });
    db = await openPostgres(PG_URL, schema, 2);
    await migrate(db);
    app = Fastify({ logger: false });
    app.setValidatorCompiler(hubValidatorCompiler());
    app.register(errorEnvelopePlugin);
    const ledger = {
      listKits: async () => [],
      deadLetters: async () => [],
      heldTokenKey: { state: 'ok' as const },
    } as unknown as Parameters<typeof kitRoutes>[1]['ledger'];
    app.register(kitRoutes, { ledger, adminToken, dynsec, db });
    hubUrl = (await app.listen({ port: 0, host: '127.0.0.1' })).replace('0.0.0.0', '127.0.0.1');
  });

  after(async () => {
    await app?.close();
    await dynsec?.close();
    await db?.close();
    await dropSchema(schema);
    await broker?.stop();
  });

  test('the init makes the dynamic security file once, for the broker user only, with the hub admin', () => {
    const st = fs.statSync(dynsecFile);
    assert.equal(st.mode & 0o777, 0o600);
    const mosq = execFileSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }).trim();
    assert.equal(String(st.uid), mosq);
    const doc = JSON.parse(fs.readFileSync(dynsecFile, 'utf8')) as { clients: Array<{ username: string }> };
    assert.ok(doc.clients.some((c) => c.username === 'popkit-dynsec'));
    // the broker starts after it, and the secrets are variables, never in the file
    assert.equal(
      compose.services['mosquitto']?.depends_on?.['mosquitto-init']?.condition,
      'service_completed_successfully',
    );
    const text = fs.readFileSync(path.join(deploy, 'docker-compose.yml'), 'utf8');
    assert.match(text, /POPKIT_HUB_DYNSEC_PASSWORD: \$\{POPKIT_HUB_DYNSEC_PASSWORD:\?/);
    assert.equal(compose.services['hub']?.environment?.['POPKIT_HUB_BROKER_CA_FILE'], '/certs/ca.crt');
    assert.ok(compose.services['hub']?.volumes?.includes('./certs/ca.crt:/certs/ca.crt:ro'));
    // the kits' passwd file is no longer mounted: dynamic security holds the kits
    assert.ok(!compose.services['mosquitto']?.volumes?.some((v) => v.startsWith('./config/passwd:')));
  });

  test('the fallback config differs from the shipped one only in the kits listener authentication', () => {
    const shipped = directives('mosquitto.conf');
    const fallback = directives('mosquitto-passwd.conf');
    const split = (lines: string[]) => {
      const at = lines.indexOf('listener 8883');
      assert.ok(at > 0, 'a kits listener');
      return [lines.slice(0, at), lines.slice(at)] as const;
    };
    const [shippedTop, shippedKits] = split(shipped);
    const [fallbackTop, fallbackKits] = split(fallback);
    assert.deepEqual(shippedTop, fallbackTop, 'everything before the kits listener is the same');
    const PLUGIN = [
      'plugin /usr/lib/mosquitto_dynamic_security.so',
      'plugin_opt_config_file /mosquitto/data/dynamic-security.json',
    ];
    const FILES = ['password_file /mosquitto/config/passwd', 'acl_file /mosquitto/config/acl'];
    for (const l of PLUGIN) assert.ok(shippedKits.includes(l), l);
    for (const l of FILES) assert.ok(fallbackKits.includes(l), l);
    assert.deepEqual(
      shippedKits.filter((l) => !PLUGIN.includes(l)),
      fallbackKits.filter((l) => !FILES.includes(l)),
    );
    assert.ok(!shippedKits.some((l) => l.startsWith('password_file') || l.startsWith('acl_file')));
  });

  test('a kit enrolled with a one-time code reaches the hub workers over TLS, and nothing else', async () => {
    const issued = await fetch(`${hubUrl}/v1/kits/enrollment-codes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ eventIds: [eventA] }),
    });
    assert.equal(issued.status, 201);
    const { code } = (await issued.json()) as { code: string };
    const kitId = uniqueId('kit');
    const { credentials } = await enrollWithCode({
      dataDir: tmpDir('kitdata'),
      hubHttpUrl: hubUrl,
      code,
      kitId,
    });
    // a hub worker on the workers' listener, with its password file
    const worker = mqtt.connect(broker.url, {
      username: 'popkit-hub',
      password: hubPass,
      reconnectPeriod: 0,
    });
    await new Promise<void>((resolve, reject) => {
      worker.once('connect', () => resolve());
      worker.once('error', reject);
    });
    await worker.subscribeAsync(topics.allOrders, { qos: 1 });
    const got = new Promise<string>((resolve) => worker.on('message', (t) => resolve(t)));
    const kit = mqtt.connect(kitUrl, {
      username: credentials.username,
      password: credentials.password,
      ca: fs.readFileSync(caFile),
      reconnectPeriod: 0,
    });
    await new Promise<void>((resolve, reject) => {
      kit.once('connect', () => resolve());
      kit.once('error', reject);
    });
    await kit.publishAsync(topics.orders(kitId), '{}', { qos: 1 });
    assert.equal(await got, topics.orders(kitId));
    const other = await kit.subscribeAsync(topics.acks('another-kit'), { qos: 1 }).catch(() => []);
    assert.ok(other.length === 0 || (other[0]?.qos ?? 128) >= 128, 'another kit acks');
    const own = await kit.subscribeAsync(topics.acks(kitId), { qos: 1 });
    assert.ok((own[0]?.qos ?? 128) < 128, 'its own acks');
    await kit.endAsync();
    await worker.endAsync();
    // the kit's credentials do not open the workers' listener; no CA, no kits' listener
    assert.equal(
      await connectOutcome(broker.url, { username: credentials.username, password: credentials.password }),
      'error',
    );
    assert.notEqual(
      await connectOutcome(kitUrl, { username: credentials.username, password: credentials.password }),
      'connected',
    );
  });

  test('scaled hub workers sharing the admin: enrollments one after another succeed on any of them', async () => {
    // the kits' listener binds the client id to the user name: each worker's connect takes the
    // session from the other, and each reconnects at its next command (docs/fleet.md, the known limit)
    const hubEnv = compose.services['hub']?.environment ?? {};
    const worker = () =>
      new DynsecClient({
        url: kitUrl,
        username: hubEnv['POPKIT_HUB_DYNSEC_USERNAME']!,
        password: dynsecPass,
        caFile,
        timeoutMs: 5000,
      });
    const [a, b] = [worker(), worker()];
    try {
      const ids = [uniqueId('wa'), uniqueId('wb'), uniqueId('wc'), uniqueId('wd')];
      for (const [i, id] of ids.entries()) {
        const kit = await (i % 2 === 0 ? a : b).addKit(id, [eventA]);
        assert.equal(kit.kitId, id);
      }
      for (const id of ids) assert.ok(await (ids.indexOf(id) % 2 === 0 ? b : a).getKit(id), id);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
