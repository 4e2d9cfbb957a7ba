// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Enrollment at first boot with a one-time code, end to end: the hub's routes (services/hub/routes/kits.ts)
// on real PostgreSQL (a schema of its own, migrated) and a real Mosquitto with the dynamic security
// plugin, over HTTP; the kit side (core/enroll-kit.ts) with only the code and the hub's URL makes its
// key pair, enrolls, keeps the credentials in its data dir and connects to the broker with them. A
// replayed, wrong, expired or burnt code, a race for one code and hostile bodies are refused with coded
// errors and change nothing (no broker client, no claim, no attempt counted except a wrong secret's).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import mqtt from 'mqtt';
import { syncEnvironment } from '../../cli/commands/sync.ts';
import { enrollSigningMessage, splitEnrollCode } from '../../core/contracts/enrollment.ts';
import { topics } from '../../core/contracts/hub-wire.ts';
import {
  enrollmentFiles,
  enrollWithCode,
  firstBootCredentials,
  kitIdentity,
  readKitCredentials,
} from '../../core/enroll-kit.ts';
import { isKitError } from '../../core/errors.ts';
import { errorEnvelopePlugin } from '../../core/http-errors.ts';
import { openPostgres, type SqlDb } from '../../services/hub/db.ts';
import { DynsecClient } from '../../services/hub/dynsec.ts';
import { migrate } from '../../services/hub/migrations.ts';
import { kitRoutes } from '../../services/hub/routes/kits.ts';
import { hubValidatorCompiler } from '../../services/hub/validation.ts';
import {
  dropSchema,
  freePort,
  type Mosquitto,
  mosquitto,
  PG_URL,
  tmpDir,
  uniqueId,
} from '../support/hub-link.ts';

const PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';
const dir = tmpDir('enrollcode');
const dynsecFile = path.join(dir, 'dynamic-security.json');
const adminUser = 'dynsec-admin';
const adminPass = 'dynsec-admin-password';
const adminToken = 'admin-token-0123456789abcdef';
const schema = uniqueId('t_enrollcode').replace(/-/g, '_');
const eventA = uniqueId('eva');

let broker: Mosquitto;
let dynsec: DynsecClient;
let db: SqlDb;
let app: ReturnType<typeof Fastify>;
let hubUrl = '';
const ledger = {
  listKits: async () => [],
  deadLetters: async () => [],
  heldTokenKey: { state: 'ok' as const },
} as unknown as Parameters<typeof kitRoutes>[1]['ledger'];

const auth = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
async function post(url: string, body: unknown, headers: Record<string, string> = auth) {
  const res = await fetch(`${hubUrl}${url}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: JSON.parse(text) as Record<string, unknown> & { error?: { code: string } },
  };
}
async function issue(body: Record<string, unknown> = { eventIds: [eventA] }): Promise<string> {
  const r = await post('/v1/kits/enrollment-codes', body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body['code'] as string;
}
async function row(code: string) {
  const { codeId } = splitEnrollCode(code);
  const r = await db.query<{ attempts: number; used_kit_id: string | null; used_public_key: string | null }>(
    'SELECT attempts, used_kit_id, used_public_key FROM enrollment_codes WHERE code_id = $1',
    [codeId],
  );
  return r.rows[0];
}
/** A kit's signed enrollment body made by hand (hostile variants are built from it). */
function signedBody(code: string, kitId: string) {
  const { privateKey } = generateKeyPairSync('ed25519');
  const publicKey = (privateKey.export({ format: 'jwk' }) as { x: string }).x;
  const signature = sign(
    null,
    enrollSigningMessage(splitEnrollCode(code).codeId, kitId, publicKey),
    privateKey,
  );
  return { code, kitId, publicKey, signature: signature.toString('base64url') };
}
const kitDir = (name: string) => tmpDir(name);
const codeOf = (e: unknown) => (isKitError(e) ? e.code : String(e));

async function connectKit(username: string, password: string): Promise<mqtt.MqttClient> {
  const c = mqtt.connect(broker.url, { username, password, clientId: username, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

describe('enrollment at first boot with a one-time code', () => {
  before(async () => {
    execFileSync('mosquitto_ctrl', ['dynsec', 'init', dynsecFile, adminUser, adminPass], { stdio: 'pipe' });
    broker = await mosquitto({
      dir,
      rawConf: (port) =>
        [
          'per_listener_settings false',
          'persistence false',
          `log_dest file ${path.join(dir, 'mosquitto.log')}`,
          `listener ${port} 127.0.0.1`,
          'allow_anonymous false',
          `plugin ${PLUGIN}`,
          `plugin_opt_config_file ${dynsecFile}`,
          '',
        ].join('\n'),
    });
    dynsec = new DynsecClient({ url: broker.url, username: adminUser, password: adminPass, timeoutMs: 5000 });
    db = await openPostgres(PG_URL, schema, 4);
    await migrate(db);
    app = Fastify({ logger: false });
    app.setValidatorCompiler(hubValidatorCompiler());
    app.register(errorEnvelopePlugin);
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

  test('a kit with only the code and the hub URL enrolls itself, keeps its credentials and connects', async () => {
    const code = await issue({ eventIds: [eventA], ttlSeconds: 3600, maxAttempts: 3 });
    assert.match(code, /^pke1\.[A-Za-z0-9_-]{12}\.[A-Za-z0-9_-]{32}$/);
    // the hub keeps a hash of the secret, never the code
    const stored = await db.query<{ s: Buffer }>('SELECT secret_sha256 AS s FROM enrollment_codes');
    for (const r of stored.rows) assert.ok(!code.includes(Buffer.from(r.s).toString('base64url')));
    const dataDir = kitDir('kit1');
    const kitId = uniqueId('kit1');
    const first = await enrollWithCode({ dataDir, hubHttpUrl: hubUrl, code, kitId });
    assert.equal(first.enrolled, true);
    assert.equal(first.credentials.kitId, kitId);
    assert.deepEqual(first.credentials.eventIds, [eventA]);
    // kept durably, private: 0600 files in the 0700 keys directory
    const files = enrollmentFiles(dataDir);
    for (const f of [files.credentials, files.identityKey])
      assert.equal(fs.statSync(f).mode & 0o777, 0o600, f);
    assert.equal(fs.statSync(path.dirname(files.credentials)).mode & 0o777, 0o700);
    assert.equal(createPrivateKey(fs.readFileSync(files.identityKey)).asymmetricKeyType, 'ed25519');
    // the hub recorded the key the kit made (its public half only)
    assert.equal((await row(code))?.used_public_key, kitIdentity(dataDir).publicKey);
    assert.equal((await row(code))?.used_kit_id, kitId);
    // the broker knows it: the kit connects and may read its acks, and only its own
    const c = await connectKit(first.credentials.username, first.credentials.password);
    const g = await c.subscribeAsync(topics.acks(kitId), { qos: 1 });
    assert.ok((g[0]?.qos ?? 128) < 128, 'its own acks');
    const other = await c.subscribeAsync(topics.acks('someone-else'), { qos: 1 }).catch(() => []);
    assert.ok(other.length === 0 || (other[0]?.qos ?? 128) >= 128, 'not another kit acks');
    await c.endAsync();
    // a reboot reads the kept credentials and sends nothing (the hub is away here)
    const down = `http://127.0.0.1:${await freePort()}`;
    const again = await enrollWithCode({ dataDir, hubHttpUrl: down, code, kitId });
    assert.equal(again.enrolled, false);
    assert.deepEqual(again.credentials, first.credentials);
    assert.deepEqual(readKitCredentials(dataDir), first.credentials);
  });

  test('a used code replayed by another kit is ENROLL_CODE_USED and enrolls nobody', async () => {
    const code = await issue();
    const kitId = uniqueId('kit2');
    await enrollWithCode({ dataDir: kitDir('kit2'), hubHttpUrl: hubUrl, code, kitId });
    const thief = uniqueId('thief');
    await assert.rejects(
      enrollWithCode({ dataDir: kitDir('thief'), hubHttpUrl: hubUrl, code, kitId: thief }),
      (e) => codeOf(e) === 'ENROLL_CODE_USED',
    );
    // the same body again (a replay of the kit's own request) too
    const r = await post('/v1/kits/enroll/code', signedBody(code, kitId), {
      'content-type': 'application/json',
    });
    assert.equal(r.status, 409);
    assert.equal(r.body.error?.code, 'ENROLL_CODE_USED');
    assert.equal(await dynsec.getKit(thief), undefined, 'no broker client for the replay');
    assert.equal((await row(code))?.used_kit_id, kitId);
  });

  test('wrong secrets count and burn the code at its limit; then even the right one is refused', async () => {
    const code = await issue({ eventIds: [eventA], maxAttempts: 2 });
    const { codeId } = splitEnrollCode(code);
    const wrong = `pke1.${codeId}.${'A'.repeat(32)}`;
    const kitId = uniqueId('kit3');
    const open = { 'content-type': 'application/json' };
    const r1 = await post('/v1/kits/enroll/code', signedBody(wrong, kitId), open);
    assert.equal(r1.status, 401);
    assert.equal(r1.body.error?.code, 'ENROLL_CODE_INVALID');
    assert.equal((await row(code))?.attempts, 1);
    const r2 = await post('/v1/kits/enroll/code', signedBody(wrong, kitId), open);
    assert.equal(r2.body.error?.code, 'ENROLL_CODE_INVALID');
    const r3 = await post('/v1/kits/enroll/code', signedBody(code, kitId), open);
    assert.equal(r3.status, 429);
    assert.equal(r3.body.error?.code, 'ENROLL_CODE_LOCKED');
    assert.equal((await row(code))?.used_kit_id, null);
    assert.equal(await dynsec.getKit(kitId), undefined);
    // an unknown code id is the same refusal, and counts against nothing
    const unknown = await post(
      '/v1/kits/enroll/code',
      signedBody(`pke1.${'B'.repeat(12)}.${'C'.repeat(32)}`, kitId),
      open,
    );
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.error?.code, 'ENROLL_CODE_INVALID');
  });

  test('an expired code is ENROLL_CODE_EXPIRED, counts no attempt and enrolls nobody', async () => {
    const code = await issue({ eventIds: [eventA], ttlSeconds: 60 });
    await db.query(
      "UPDATE enrollment_codes SET expires_at = now() - interval '1 second' WHERE code_id = $1",
      [splitEnrollCode(code).codeId],
    );
    const kitId = uniqueId('kit4');
    await assert.rejects(
      enrollWithCode({ dataDir: kitDir('kit4'), hubHttpUrl: hubUrl, code, kitId }),
      (e) => codeOf(e) === 'ENROLL_CODE_EXPIRED',
    );
    assert.equal((await row(code))?.attempts, 0);
    assert.equal(await dynsec.getKit(kitId), undefined);
    assert.equal(readKitCredentials(kitDir('kit4')), undefined);
  });

  test('two kits racing for one code: exactly one is enrolled, the other is ENROLL_CODE_USED', async () => {
    const code = await issue();
    const ids = [uniqueId('racea'), uniqueId('raceb'), uniqueId('racec')];
    const results = await Promise.allSettled(
      ids.map((kitId) => enrollWithCode({ dataDir: kitDir(kitId), hubHttpUrl: hubUrl, code, kitId })),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const r of results) if (r.status === 'rejected') assert.equal(codeOf(r.reason), 'ENROLL_CODE_USED');
    const onBroker = (await Promise.all(ids.map((k) => dynsec.getKit(k)))).filter(Boolean);
    assert.equal(onBroker.length, 1);
  });

  test('a code bound to a kit id enrolls that kit only; an existing kit is CONFLICT and frees the code', async () => {
    const bound = uniqueId('bound');
    const code = await issue({ eventIds: [eventA], kitId: bound });
    const open = { 'content-type': 'application/json' };
    const other = await post('/v1/kits/enroll/code', signedBody(code, uniqueId('other')), open);
    assert.equal(other.status, 403);
    assert.equal(other.body.error?.code, 'FORBIDDEN');
    assert.equal((await row(code))?.used_kit_id, null);
    // the kit exists already (enrolled by the admin route): the broker refuses, the code is not consumed
    await dynsec.addKit(bound, [eventA]);
    const dup = await post('/v1/kits/enroll/code', signedBody(code, bound), open);
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error?.code, 'CONFLICT');
    assert.equal((await row(code))?.used_kit_id, null, 'released');
    await dynsec.revokeKit(bound);
    const ok = await post('/v1/kits/enroll/code', signedBody(code, bound), open);
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });

  test('hostile bodies are refused with coded errors and change nothing', async () => {
    const code = await issue();
    const kitId = uniqueId('kit5');
    const good = signedBody(code, kitId);
    const other = signedBody(code, kitId);
    const open = { 'content-type': 'application/json' };
    const cases: Array<[unknown, number, string]> = [
      [{ ...good, kitId: 'a\u0000b' }, 400, 'VALIDATION'],
      [{ ...good, kitId: 'a/b' }, 400, 'VALIDATION'],
      [{ ...good, kitId: 'x'.repeat(65) }, 400, 'VALIDATION'],
      [{ ...good, kitId: 42 }, 400, 'VALIDATION'],
      [{ ...good, code: 7 }, 400, 'VALIDATION'],
      [{ ...good, code: `${code}x` }, 400, 'VALIDATION'],
      [{ ...good, extra: 1 }, 400, 'VALIDATION'],
      // a prototype key is refused by the JSON parser itself (secure-json-parse)
      ['{"__proto__":{"admin":true},"code":"x"}', 400, 'BAD_REQUEST'],
      [JSON.stringify(good).replace('{', '{"__proto__":{"x":1},'), 400, 'BAD_REQUEST'],
      // a signature by another key, and a key that is no curve point
      [{ ...good, signature: other.signature }, 400, 'VALIDATION'],
      [{ ...good, publicKey: '_'.repeat(43) }, 400, 'VALIDATION'],
      // a reserved name: the hub's own users
      [signedBody(code, 'popkit-hub'), 400, 'VALIDATION'],
      [signedBody(code, adminUser), 400, 'VALIDATION'],
      ['{"code":', 400, 'BAD_REQUEST'],
      [`{"code":"${'x'.repeat(8000)}"}`, 413, 'BODY_TOO_LARGE'],
    ];
    for (const [body, status, errCode] of cases) {
      const r = await post('/v1/kits/enroll/code', body, open);
      assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 120)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, errCode, JSON.stringify(body).slice(0, 120));
    }
    assert.deepEqual(await row(code), { attempts: 0, used_kit_id: null, used_public_key: null });
    assert.equal(({} as Record<string, unknown>)['admin'], undefined);
    // the admin route: no token, and hostile issue bodies
    const before = (await db.query<{ n: string }>('SELECT count(*) AS n FROM enrollment_codes')).rows[0]?.n;
    assert.equal((await post('/v1/kits/enrollment-codes', { eventIds: [eventA] }, open)).status, 401);
    for (const body of [
      { eventIds: [] },
      { eventIds: ['a/b'] },
      { eventIds: [eventA], ttlSeconds: 8 * 24 * 3600 },
      { eventIds: [eventA], ttlSeconds: 1 },
      { eventIds: [eventA], maxAttempts: 0 },
      { eventIds: [eventA], kitId: 'popkit' },
      { eventIds: [eventA], kitId: 'a\u0000' },
      { eventIds: [eventA, eventA] },
      { eventIds: [eventA], used: true },
    ]) {
      const r = await post('/v1/kits/enrollment-codes', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error?.code, 'VALIDATION');
    }
    const afterN = (await db.query<{ n: string }>('SELECT count(*) AS n FROM enrollment_codes')).rows[0]?.n;
    assert.equal(afterN, before);
  });

  test('the kit refuses a plaintext hub URL, a malformed code, and keeps nothing on a refusal', async () => {
    const dataDir = kitDir('kit6');
    const code = await issue();
    await assert.rejects(
      enrollWithCode({ dataDir, hubHttpUrl: 'http://hub.example.com', code, kitId: uniqueId('k6') }),
      (e) => codeOf(e) === 'CONFIG_INVALID',
    );
    await assert.rejects(
      enrollWithCode({ dataDir, hubHttpUrl: hubUrl, code: 'pke1.nope', kitId: uniqueId('k6') }),
      (e) => codeOf(e) === 'CONFIG_INVALID',
    );
    await assert.rejects(
      enrollWithCode({
        dataDir,
        hubHttpUrl: `http://127.0.0.1:${await freePort()}`,
        code,
        kitId: uniqueId('k6'),
      }),
      (e) => codeOf(e) === 'NOT_READY',
    );
    assert.equal(readKitCredentials(dataDir), undefined);
    // the unreachable hub consumed nothing: the code still enrolls
    assert.equal((await row(code))?.used_kit_id, null);
  });

  test('popkit sync at first boot: the code in the environment becomes the credentials sync runs with', async () => {
    const dataDir = kitDir('kit7');
    const kitId = uniqueId('kit7');
    const code = await issue();
    const env = {
      POPKIT_DATA_DIR: dataDir,
      POPKIT_KIT_ID: kitId,
      POPKIT_HUB_HTTP_URL: hubUrl,
      POPKIT_ENROLL_CODE: code,
    };
    const out = await syncEnvironment(env);
    const kept = readKitCredentials(dataDir);
    assert.ok(kept);
    assert.equal(out['POPKIT_HUB_USERNAME'], kitId);
    assert.equal(out['POPKIT_HUB_PASSWORD'], kept.password);
    const c = await connectKit(kitId, kept.password);
    await c.endAsync();
    // the next start uses the kept ones (the code is used: sending it again would be refused)
    assert.deepEqual(await syncEnvironment(env), out);
    // credentials set by hand win, and nothing is sent
    const byHand = { ...env, POPKIT_HUB_USERNAME: 'manual', POPKIT_HUB_PASSWORD: 'manual-password-123' };
    assert.deepEqual(await syncEnvironment(byHand), byHand);
    // a malformed code stops the start with the config error
    await assert.rejects(
      syncEnvironment({ ...env, POPKIT_DATA_DIR: kitDir('kit8'), POPKIT_ENROLL_CODE: 'pke1.x' }),
      (e) => codeOf(e) === 'CONFIG_INVALID',
    );
    assert.equal(readKitCredentials(kitDir('kit8')), undefined);
  });

  test('an unreachable hub at first boot is retried, with growing waits, until it answers or is stopped', async () => {
    const dataDir = kitDir('kit9');
    const code = await issue();
    const waits: number[] = [];
    const stop = new AbortController();
    await assert.rejects(
      firstBootCredentials({
        dataDir,
        kitId: uniqueId('kit9'),
        hubHttpUrl: `http://127.0.0.1:${await freePort()}`,
        code,
        username: undefined,
        retryMinMs: 5,
        retryMaxMs: 20,
        signal: stop.signal,
        onWait: (_e, ms) => {
          waits.push(ms);
          if (waits.length === 4) stop.abort();
        },
      }),
      (e) => codeOf(e) === 'NOT_READY',
    );
    assert.deepEqual(waits, [5, 10, 20, 20]);
    assert.equal(readKitCredentials(dataDir), undefined);
    assert.equal((await row(code))?.used_kit_id, null, 'nothing consumed');
    // a refusal is not retried: it throws its code at once
    await assert.rejects(
      firstBootCredentials({
        dataDir,
        kitId: uniqueId('kit9'),
        hubHttpUrl: hubUrl,
        code: `pke1.${splitEnrollCode(code).codeId}.${'Z'.repeat(32)}`,
        username: undefined,
        retryMinMs: 5,
      }),
      (e) => codeOf(e) === 'ENROLL_CODE_INVALID',
    );
  });
});
