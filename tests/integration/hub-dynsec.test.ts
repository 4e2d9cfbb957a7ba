// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Kit enrollment through Mosquitto's dynamic security plugin (services/hub/dynsec.ts, routes/kits.ts)
// against a real private Mosquitto with the plugin loaded: an enrolled kit connects with the password
// the API returned once, publishes and reads only its own topics and its event's catalog; a wrong
// password is refused; revoking disconnects the connected kit at once and it cannot come back; a
// second enrollment of the same kit is 409; hostile ids are refused before anything reaches the broker.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import mqtt from 'mqtt';
import { run as fleet } from '../../cli/commands/fleet.ts';
import { topics } from '../../core/contracts/hub-wire.ts';
import { isKitError } from '../../core/errors.ts';
import { errorEnvelopePlugin } from '../../core/http-errors.ts';
import { DynsecClient, kitRoleAcls } from '../../services/hub/dynsec.ts';
import { kitRoutes } from '../../services/hub/routes/kits.ts';
import { hubValidatorCompiler } from '../../services/hub/validation.ts';
import {
  connectOutcome,
  freePort,
  type Mosquitto,
  mosquitto,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';
const dir = tmpDir('dynsec');
const dynsecFile = path.join(dir, 'dynamic-security.json');
const adminUser = 'dynsec-admin';
const adminPass = 'dynsec-admin-password';
const adminToken = 'admin-token-0123456789abcdef';
const kitA = uniqueId('kita');
const kitB = uniqueId('kitb');
const eventA = uniqueId('eva');
const eventB = uniqueId('evb');

let broker: Mosquitto;
let dynsec: DynsecClient;
/** every command the API sent the broker: hostile requests must leave it empty */
const sent: string[] = [];
const ledger = {
  listKits: async () => [],
  deadLetters: async () => [],
  heldTokenKey: { state: 'ok' as const },
} as unknown as Parameters<typeof kitRoutes>[1]['ledger'];

function buildApp(withDynsec: boolean) {
  // validated as the hub validates (strict bodies, services/hub/validation.ts)
  const app = Fastify({ logger: false });
  app.setValidatorCompiler(hubValidatorCompiler());
  app.register(errorEnvelopePlugin);
  const counted: Pick<DynsecClient, 'addKit' | 'revokeKit' | 'reserved'> = {
    reserved: dynsec?.reserved ?? [],
    addKit: (k, e) => {
      sent.push(`addKit ${k}`);
      return dynsec.addKit(k, e);
    },
    revokeKit: (k) => {
      sent.push(`revokeKit ${k}`);
      return dynsec.revokeKit(k);
    },
  };
  app.register(kitRoutes, { ledger, adminToken, ...(withDynsec ? { dynsec: counted } : {}) });
  return app;
}
let app: ReturnType<typeof buildApp>;

const auth = { authorization: `Bearer ${adminToken}` };
async function enroll(body: unknown, headers: Record<string, string> = auth) {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/kits/enroll',
    headers: { ...headers, 'content-type': 'application/json' },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: res.statusCode,
    body: res.json() as Record<string, unknown> & { error?: { code: string } },
  };
}

async function connectKit(username: string, password: string): Promise<mqtt.MqttClient> {
  const c = mqtt.connect(broker.url, { username, password, clientId: username, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

/** subscribe and say whether the broker granted it (MQTT 3.1.1 refusal: granted qos 128) */
async function granted(c: mqtt.MqttClient, topic: string): Promise<boolean> {
  // mqtt.js rejects a refused subscription (SUBACK 128) with ErrorWithSubackPacket
  const g = await c.subscribeAsync(topic, { qos: 1 }).catch((err: Error) => {
    if (err.name === 'ErrorWithSubackPacket') return [];
    throw err;
  });
  return g.length === 1 && (g[0]?.qos ?? 128) < 128;
}

describe('kit enrollment with Mosquitto dynamic security', () => {
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
    app = buildApp(true);
  });

  after(async () => {
    await app?.close();
    await dynsec?.close();
    await broker?.stop();
  });

  test('the role template is deploy/hub/acl with the kit id in place, and nothing else', () => {
    const acls = kitRoleAcls(kitA, [eventA]);
    const send = acls.filter((a) => a.acltype === 'publishClientSend').map((a) => a.topic);
    assert.deepEqual(
      send.sort(),
      ['authorize', 'orders', 'receipts', 'status', 'telemetry'].map((l) => `popkit/v1/kits/${kitA}/${l}`),
    );
    const sub = acls.filter((a) => a.acltype === 'subscribeLiteral').map((a) => a.topic);
    assert.deepEqual(sub, [
      topics.acks(kitA),
      topics.authorizations(kitA),
      topics.kitAllocations(kitA),
      topics.sealKey,
      topics.catalog(eventA),
    ]);
    // one wildcard only: the last level of the kit's own allocations (one retained statement per event)
    const own = topics.kitAllocations(kitA);
    assert.ok(own.startsWith(`popkit/v1/kits/${kitA}/allocations/`) && own.endsWith('/+'));
    assert.ok(
      acls.every((a) => a.allow && !/[#\0]/.test(a.topic) && (a.topic === own || !a.topic.includes('+'))),
    );
    for (const bad of ['a/b', 'a+', '#', 'a\0b', '', 'x'.repeat(65)]) {
      assert.throws(
        () => kitRoleAcls(bad, [eventA]),
        (e) => isKitError(e) && e.code === 'VALIDATION',
      );
      assert.throws(
        () => kitRoleAcls(kitA, [bad]),
        (e) => isKitError(e) && e.code === 'VALIDATION',
      );
    }
  });

  test('a broker that refuses the admin or does not answer is a coded, bounded BROKER_UNAVAILABLE', async () => {
    const wrong = new DynsecClient({
      url: broker.url,
      username: adminUser,
      password: 'not-it',
      timeoutMs: 2000,
    });
    await assert.rejects(
      wrong.addKit(uniqueId('kitx'), [eventA]),
      (e) => isKitError(e) && e.code === 'BROKER_UNAVAILABLE',
    );
    await wrong.close();
    const port = await freePort();
    const none = new DynsecClient({
      url: `mqtt://127.0.0.1:${port}`,
      username: adminUser,
      password: adminPass,
      timeoutMs: 2000,
    });
    await assert.rejects(
      none.revokeKit(uniqueId('kitx')),
      (e) => isKitError(e) && e.code === 'BROKER_UNAVAILABLE',
    );
    await none.close();
  });

  test('without a dynsec admin the routes say how to enable them', async () => {
    const off = buildApp(false);
    const res = await off.inject({
      method: 'POST',
      url: '/v1/kits/enroll',
      headers: auth,
      payload: { kitId: kitA, eventIds: [eventA] },
    });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().error.code, 'NOT_READY');
    assert.match(res.json().error.message, /POPKIT_HUB_DYNSEC_USERNAME/);
    const del = await off.inject({ method: 'DELETE', url: `/v1/kits/${kitA}/enrollment`, headers: auth });
    assert.equal(del.statusCode, 503);
    await off.close();
  });

  test('hostile requests are refused with coded errors before anything reaches the broker', async () => {
    const before = sent.length;
    const cases: Array<[unknown, number, string]> = [
      [{ kitId: 'a/b', eventIds: [eventA] }, 400, 'VALIDATION'],
      [{ kitId: 'a+', eventIds: [eventA] }, 400, 'VALIDATION'],
      [{ kitId: '#', eventIds: [eventA] }, 400, 'VALIDATION'],
      [{ kitId: 'a\u0000b', eventIds: [eventA] }, 400, 'VALIDATION'],
      [{ kitId: 'k'.repeat(65), eventIds: [eventA] }, 400, 'VALIDATION'],
      [{ kitId: 'k'.repeat(100_000), eventIds: [eventA] }, 413, 'BODY_TOO_LARGE'],
      [{ kitId: kitA, eventIds: ['ev/+'] }, 400, 'VALIDATION'],
      [{ kitId: kitA, eventIds: ['#'] }, 400, 'VALIDATION'],
      [{ kitId: kitA, eventIds: [] }, 400, 'VALIDATION'],
      [{ kitId: kitA, eventIds: [eventA, eventA] }, 400, 'VALIDATION'],
      [{ kitId: kitA, eventIds: Array.from({ length: 65 }, (_, i) => `e${i}`) }, 400, 'VALIDATION'],
      [{ kitId: 12345, eventIds: [eventA] }, 400, 'VALIDATION'],
      [{ kitId: true, eventIds: [eventA] }, 400, 'VALIDATION'],
      [{ kitId: kitA, eventIds: eventA }, 400, 'VALIDATION'],
      [{ kitId: kitA, eventIds: [7] }, 400, 'VALIDATION'],
      [{ kitId: kitA, eventIds: [eventA], extra: 1 }, 400, 'VALIDATION'],
      [[kitA], 400, 'VALIDATION'],
      [`{"kitId":"${kitA}","eventIds":["${eventA}"],"__proto__":{"admin":true}}`, 400, 'BAD_REQUEST'],
      // the hub's own names and the dynsec admin itself
      [{ kitId: 'popkit-hub', eventIds: [eventA] }, 400, 'VALIDATION'],
      [{ kitId: 'PopKit-x', eventIds: [eventA] }, 400, 'VALIDATION'],
      [{ kitId: adminUser, eventIds: [eventA] }, 400, 'VALIDATION'],
    ];
    for (const [body, status, code] of cases) {
      const r = await enroll(body);
      assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 80)} → ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, code, JSON.stringify(body).slice(0, 80));
    }
    const noAuth = await enroll({ kitId: kitA, eventIds: [eventA] }, {});
    assert.equal(noAuth.status, 401);
    const del = await app.inject({ method: 'DELETE', url: '/v1/kits/a%2Fb/enrollment', headers: auth });
    assert.equal(del.statusCode, 400);
    const delReserved = await app.inject({
      method: 'DELETE',
      url: `/v1/kits/${adminUser}/enrollment`,
      headers: auth,
    });
    assert.equal(delReserved.statusCode, 400);
    assert.equal(sent.length, before, `reached the broker: ${sent.slice(before).join(', ')}`);
    // and the admin still exists: nothing was deleted
    assert.equal(await connectOutcome(broker.url, { username: adminUser, password: adminPass }), 'connected');
  });

  test('an enrolled kit uses only its own topics and its event catalog; revoke cuts it off at once', {
    timeout: 60_000,
  }, async () => {
    const a = await enroll({ kitId: kitA, eventIds: [eventA] });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    assert.equal(a.body['kitId'], kitA);
    assert.equal(a.body['username'], kitA);
    const passA = String(a.body['password']);
    assert.ok(passA.length >= 32);
    const b = await enroll({ kitId: kitB, eventIds: [eventB] });
    assert.equal(b.status, 201);
    assert.notEqual(b.body['password'], passA);

    // replaying the enrollment: 409, and the kit's password is unchanged
    const again = await enroll({ kitId: kitA, eventIds: [eventA] });
    assert.equal(again.status, 409);
    assert.equal(again.body.error?.code, 'CONFLICT');
    assert.equal(again.body['password'], undefined);

    assert.equal(await connectOutcome(broker.url, { username: kitA, password: 'wrong-password' }), 'error');
    assert.equal(await connectOutcome(broker.url, { username: 'nobody', password: passA }), 'error');

    const kit = await connectKit(kitA, passA);
    const other = await connectKit(kitB, String(b.body['password']));
    assert.equal(await granted(kit, topics.acks(kitA)), true);
    assert.equal(await granted(kit, topics.catalog(eventA)), true);
    assert.equal(await granted(kit, topics.catalog(eventB)), false);
    assert.equal(await granted(kit, topics.acks(kitB)), false);
    assert.equal(await granted(kit, 'popkit/v1/#'), false);
    assert.equal(await granted(kit, `popkit/v1/kits/${kitA}/#`), false);

    // publish rights, seen by an observer with the hub workers' read rights (popkit/v1/#). It is set
    // up before it connects: Mosquitto 2.0 disconnects a client whose roles change.
    await dynsec.run([
      {
        command: 'createRole',
        rolename: 'test-hub-reader',
        acls: [
          { acltype: 'subscribePattern', topic: 'popkit/v1/#', allow: true },
          { acltype: 'publishClientReceive', topic: 'popkit/v1/#', allow: true },
        ],
      },
      {
        command: 'createClient',
        username: 'test-hub-reader',
        password: 'reader-password',
        roles: [{ rolename: 'test-hub-reader' }],
      },
    ]);
    const hub = await connectKit('test-hub-reader', 'reader-password');
    const seen: string[] = [];
    hub.on('message', (t) => seen.push(t));
    assert.equal(await granted(hub, 'popkit/v1/#'), true);
    // kit A may not write its event's catalog nor under kit B (the broker acks QoS 1 and drops them)
    await kit.publishAsync(topics.catalog(eventA), 'forged', { qos: 1 }).catch(() => undefined);
    await kit.publishAsync(topics.orders(kitB), 'forged', { qos: 1 }).catch(() => undefined);
    await kit.publishAsync(topics.acks(kitA), 'forged', { qos: 1 }).catch(() => undefined);
    // its own orders go through; they arrive after the refused ones would have (one connection, in order)
    await kit.publishAsync(topics.orders(kitA), 'ok', { qos: 1 });
    await waitFor(() => seen.includes(topics.orders(kitA)), 5000, "kit A's own order at the hub");
    assert.deepEqual(
      seen,
      [topics.orders(kitA)],
      `kit A reached topics that are not its own: ${seen.join(', ')}`,
    );

    // revoke: the connected kit is disconnected at once and cannot reconnect
    const closed = new Promise<void>((resolve) => kit.once('close', () => resolve()));
    const del = await app.inject({ method: 'DELETE', url: `/v1/kits/${kitA}/enrollment`, headers: auth });
    assert.equal(del.statusCode, 200, del.body);
    assert.deepEqual(del.json(), { kitId: kitA, revoked: true });
    await closed;
    assert.equal(kit.connected, false);
    assert.equal(await connectOutcome(broker.url, { username: kitA, password: passA }), 'error');
    // B is untouched
    assert.equal(other.connected, true);
    // revoking again: 404
    const del2 = await app.inject({ method: 'DELETE', url: `/v1/kits/${kitA}/enrollment`, headers: auth });
    assert.equal(del2.statusCode, 404);
    assert.equal(del2.json().error.code, 'NOT_FOUND');
    // re-enrolling after revoke gives a new password that works
    const re = await enroll({ kitId: kitA, eventIds: [eventA] });
    assert.equal(re.status, 201);
    assert.notEqual(re.body['password'], passA);
    assert.equal(
      await connectOutcome(broker.url, { username: kitA, password: String(re.body['password']) }),
      'connected',
    );

    for (const c of [kit, other, hub]) c.end(true);
    const persisted = fs.readFileSync(dynsecFile, 'utf8');
    assert.ok(!persisted.includes(passA), 'the broker keeps hashes, never the password');
  });
  test('popkit fleet provision enrolls kits and writes their balena variables, private files only', async () => {
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const out = path.join(dir, 'provision');
    const k1 = uniqueId('fleet1');
    const k2 = uniqueId('fleet2');
    const uuid = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const base = ['provision', '--hub-http', url, '--event', eventA, '--out'];
    const env = { POPKIT_HUB_ADMIN_TOKEN: adminToken };

    // hostile ids and a bad token: refused here, nothing sent to the hub
    const before = sent.length;
    for (const ids of ['a/b', '#', 'popkit-hub', `${k1},${k1}`, `${k1}:NOTHEX`, 'a\u0000b']) {
      assert.equal(await fleet([...base, out, '--ids', ids], env), 2, ids);
    }
    assert.equal(await fleet([...base, out, '--ids', k1], { POPKIT_HUB_ADMIN_TOKEN: 'short' }), 2);
    assert.equal(sent.length, before);

    assert.equal(
      await fleet([...base, out, '--ids', `${k1}:${uuid},${k2}`, '--hub-mqtt', broker.url], env),
      0,
    );
    assert.equal(fs.statSync(out).mode & 0o777, 0o700);
    for (const f of [
      'balena-env.sh',
      'report.json',
      `${k1}/balena-env.json`,
      `${k1}/identity.key`,
      `${k1}/identity.pub`,
      `${k2}/balena-env.json`,
    ]) {
      assert.equal(fs.statSync(path.join(out, f)).mode & 0o777, 0o600, f);
    }
    const vars = JSON.parse(fs.readFileSync(path.join(out, k1, 'balena-env.json'), 'utf8'));
    assert.equal(vars.POPKIT_KIT_ID, k1);
    assert.equal(vars.POPKIT_HUB_USERNAME, k1);
    assert.match(vars.POPKIT_TOKEN_KEY, /^[0-9a-f]{64}$/);
    assert.equal(vars.POPKIT_HUB_URL, broker.url);
    const key = createPrivateKey(fs.readFileSync(path.join(out, k1, 'identity.key')));
    assert.equal(key.asymmetricKeyType, 'ed25519');
    // the credentials work at the broker, and only for that kit
    assert.equal(
      await connectOutcome(broker.url, { username: k1, password: vars.POPKIT_HUB_PASSWORD }),
      'connected',
    );
    assert.equal(
      await connectOutcome(broker.url, { username: k2, password: vars.POPKIT_HUB_PASSWORD }),
      'error',
    );
    const sh = fs.readFileSync(path.join(out, 'balena-env.sh'), 'utf8');
    assert.ok(
      sh.includes(`balena env set POPKIT_HUB_PASSWORD '${vars.POPKIT_HUB_PASSWORD}' --device ${uuid}`),
    );
    assert.match(sh, new RegExp(`balena env set POPKIT_KIT_ID '${k2}' --device "\\$\\{DEVICE:\\?`));
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    assert.equal(report.enrolled, 2);
    assert.ok(!JSON.stringify(report).includes(vars.POPKIT_HUB_PASSWORD), 'the report holds no password');

    // the same kit again (another directory): the hub says 409, the command exits 1, nothing written for it
    const out2 = path.join(dir, 'provision-again');
    assert.equal(await fleet([...base, out2, '--ids', k1], env), 1);
    const again = JSON.parse(fs.readFileSync(path.join(out2, 'report.json'), 'utf8'));
    assert.equal(again.kits[0].error.code, 'CONFLICT');
    assert.equal(fs.existsSync(path.join(out2, k1)), false);
    // an existing output is never overwritten
    assert.equal(await fleet([...base, out, '--ids', k1], env), 2);
  });
});
