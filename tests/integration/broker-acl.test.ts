// The fallback hub broker config (deploy/hub/mosquitto-passwd.conf + acl + add-kit.sh; the shipped one,
// on dynamic security, is tests/integration/hub-broker-dynsec.test.ts's) on a real Mosquitto:
// a kit may publish only under its own topics and read only its acks and its events' catalogs; its
// client id is its login, so its credentials cannot disconnect another kit or a hub worker; the whole
// kit → hub → kit flow works through it with per-kit credentials. The kits' listener is TLS only, with
// certificates made by deploy/hub/make-certs.sh: the CA connects, no CA or plain MQTT does not.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { topics } from '../../core/contracts/hub-wire.ts';
import { LANES } from '../../core/contracts/lanes.ts';
import { BROKER_MAX_PACKET_BYTES } from '../../core/embedded-broker.ts';
import { HubAuthorizer } from '../../services/checkout/hub-authorizer.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  connectOutcome,
  dropSchema,
  freePort,
  ledgerOrderIds,
  type Mosquitto,
  makeKit,
  mosquitto,
  REPO,
  startHub,
  startSync,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const deploy = path.join(REPO, 'deploy/hub');
const dir = tmpDir('acl');
const kitA = uniqueId('kita');
const kitB = uniqueId('kitb');
const eventA = uniqueId('eva');
const hubPass = 'hub-secret-password';
let broker: Mosquitto;
/** the kits' listener (8883 in the shipped file, TLS); broker.url is the workers' one (1883) */
let kitUrl = '';
const certs = path.join(dir, 'certs');
const caFile = path.join(certs, 'ca.crt');
/** what every client of the kits' listener needs: the private CA */
const tls = (url: string) => (url === kitUrl ? { ca: fs.readFileSync(caFile) } : {});
let passA = '';
let passB = '';
const schema = uniqueId('t_acl').replace(/-/g, '_');

describe('hub broker ACL (deploy/hub)', () => {
  before(async () => {
    // the shipped files, with only the paths and the port moved for the test
    fs.copyFileSync(path.join(deploy, 'acl'), path.join(dir, 'acl'));
    execFileSync('mosquitto_passwd', ['-c', '-b', path.join(dir, 'hub-passwd'), 'popkit-hub', hubPass]);
    passA = execFileSync(path.join(deploy, 'add-kit.sh'), [dir, kitA, eventA], { encoding: 'utf8' }).trim();
    passB = execFileSync(path.join(deploy, 'add-kit.sh'), [dir, kitB, 'other-event'], {
      encoding: 'utf8',
    }).trim();
    execFileSync(path.join(deploy, 'make-certs.sh'), [certs, '127.0.0.1', 'localhost'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const kitPort = await freePort();
    kitUrl = `mqtts://127.0.0.1:${kitPort}`;
    const conf = (port: number) =>
      fs
        .readFileSync(path.join(deploy, 'mosquitto-passwd.conf'), 'utf8')
        .replaceAll('/mosquitto/config/', `${dir}/`)
        .replaceAll('/mosquitto/certs/', `${certs}/`)
        .replaceAll('/mosquitto/data/', `${dir}/`)
        .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
        .replace(/^listener 8883$/m, `listener ${kitPort} 127.0.0.1`);
    broker = await mosquitto({ rawConf: conf });
  });

  after(async () => {
    await broker?.stop();
    await dropSchema(schema);
  });

  /** a kit on the kits' listener; `hub` logs in on the workers' listener */
  const connect = (username: string, password: string, clientId = uniqueId(username)) => {
    const url = username === 'popkit-hub' ? broker.url : kitUrl;
    return mqtt.connectAsync(url, {
      clientId,
      username,
      password,
      protocolVersion: 5,
      reconnectPeriod: 0,
      ...tls(url),
    });
  };

  test('no credentials or a wrong password: refused', async () => {
    for (const url of [broker.url, kitUrl]) {
      await assert.rejects(
        mqtt.connectAsync(url, {
          clientId: uniqueId('anon'),
          reconnectPeriod: 0,
          protocolVersion: 5,
          ...tls(url),
        }),
        /not authori[sz]ed|bad user name or password/i,
      );
    }
    await assert.rejects(connect(kitA, 'wrong-password'));
  });

  test("a kit's credentials open only the kits' listener, and the hub's only the workers' one", async () => {
    const opts = { reconnectPeriod: 0, protocolVersion: 5 as const };
    await assert.rejects(
      mqtt.connectAsync(broker.url, { ...opts, clientId: uniqueId('a'), username: kitA, password: passA }),
      /not authori[sz]ed|bad user name or password/i,
    );
    await assert.rejects(
      mqtt.connectAsync(kitUrl, {
        ...opts,
        clientId: uniqueId('h'),
        username: 'popkit-hub',
        password: hubPass,
        ...tls(kitUrl),
      }),
      /not authori[sz]ed|bad user name or password/i,
    );
  });

  test("kit A's credentials with kit B's or a hub worker's client id disconnect neither", async () => {
    const workerId = 'popkit-hub-w1';
    const worker = await connect('popkit-hub', hubPass, workerId);
    // kit B as sync connects it (client id popkit-sync-<kit>, a persistent session)
    const b = await mqtt.connectAsync(kitUrl, {
      ...tls(kitUrl),
      clientId: `popkit-sync-${kitB}`,
      username: kitB,
      password: passB,
      protocolVersion: 5,
      reconnectPeriod: 0,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    const dropped: string[] = [];
    worker.on('close', () => dropped.push('worker'));
    b.on('close', () => dropped.push('kit B'));
    try {
      // every client id kit B or the worker could have, and B's login name itself
      for (const clientId of [`popkit-sync-${kitB}`, kitB, workerId, 'popkit-hub']) {
        const intruder = await connect(kitA, passA, clientId);
        await intruder.endAsync(true);
      }
      // both still deliver and receive: a message to each arrives on the connection that was there
      const gotB: string[] = [];
      const gotWorker: string[] = [];
      b.on('message', (t) => gotB.push(t));
      worker.on('message', (t) => gotWorker.push(t));
      // not awaited: a client that was taken over would never settle them (no reconnects here)
      let subscribed = 0;
      b.subscribe({ [topics.acks(kitB)]: { qos: 1 } }, () => subscribed++);
      worker.subscribe({ [topics.orders(kitB)]: { qos: 1 } }, () => subscribed++);
      await waitFor(() => subscribed === 2 || dropped.length > 0, 10_000, 'subscriptions');
      worker.publish(topics.acks(kitB), 'an ack', { qos: 1 });
      b.publish(topics.orders(kitB), '{"ok":true}', { qos: 1 });
      await waitFor(
        () => (gotB.length > 0 && gotWorker.length > 0) || dropped.length > 0,
        10_000,
        'traffic of kit B and the worker',
      );
      assert.deepEqual(dropped, [], 'a connection was taken over');
      assert.equal(b.connected && worker.connected, true);
    } finally {
      await b.endAsync(true);
      await worker.endAsync(true);
    }
  });

  test("a kit cannot publish under another kit's id nor read its acks or other events' catalogs", async () => {
    const hub = await connect('popkit-hub', hubPass);
    const seen: string[] = [];
    hub.on('message', (t) => seen.push(t));
    await hub.subscribeAsync({ 'popkit/v1/kits/+/orders': { qos: 1 } });
    const intruder = await connect(kitA, passA);
    // forbidden first, then allowed: the allowed one arriving proves the forbidden one was not routed
    await assert.rejects(
      intruder.publishAsync(topics.orders(kitB), '{"forged":true}', { qos: 1 }),
      /authori[sz]ed/i,
    );
    await intruder.endAsync(true);
    const a = await connect(kitA, passA);
    await a.publishAsync(topics.orders(kitA), '{"ok":true}', { qos: 1 });
    await waitFor(() => seen.includes(topics.orders(kitA)), 5000, "kit A's own message");
    assert.ok(!seen.includes(topics.orders(kitB)), 'the broker routed a message published under another kit');

    // Mosquitto 2 grants every SUBACK and applies read rules per delivered message: prove it by delivery
    const got: string[] = [];
    a.on('message', (t) => got.push(t));
    await a.subscribeAsync({
      [topics.acks(kitB)]: { qos: 1 },
      [topics.orders(kitB)]: { qos: 1 },
      [topics.catalog('other-event')]: { qos: 1 },
      [topics.acks(kitA)]: { qos: 1 },
      [topics.catalog(eventA)]: { qos: 1 },
    });
    for (const t of [topics.acks(kitB), topics.orders(kitB), topics.catalog('other-event')]) {
      await hub.publishAsync(t, 'not for kit A', { qos: 1 });
    }
    await hub.publishAsync(topics.catalog(eventA), 'its catalog', { qos: 1 });
    await hub.publishAsync(topics.acks(kitA), 'its acks', { qos: 1 });
    await waitFor(() => got.includes(topics.acks(kitA)), 5000, "kit A's acks");
    assert.deepEqual(got, [topics.catalog(eventA), topics.acks(kitA)]);
    await a.endAsync();
    await hub.endAsync();
  });

  test("a kit reads its own shared-stock statements, not another kit's, and cannot publish one", async () => {
    const hub = await connect('popkit-hub', hubPass);
    const intruder = await connect(kitA, passA);
    await assert.rejects(
      intruder.publishAsync(topics.allocation(kitA, eventA), 'forged grant', { qos: 1, retain: true }),
      /authori[sz]ed/i,
    );
    await intruder.endAsync(true);
    const a = await connect(kitA, passA);
    const got: string[] = [];
    a.on('message', (t, p) => got.push(`${t} ${p.toString()}`));
    // the filter sync subscribes, and kit B's as a wildcard attempt
    await a.subscribeAsync({
      [topics.kitAllocations(kitA)]: { qos: 1 },
      [topics.kitAllocations(kitB)]: { qos: 1 },
    });
    await hub.publishAsync(topics.allocation(kitB, eventA), "kit B's", { qos: 1 });
    await hub.publishAsync(topics.allocation(kitA, eventA), "kit A's", { qos: 1 });
    await waitFor(() => got.length > 0, 5000, "kit A's statement");
    assert.deepEqual(got, [`${topics.allocation(kitA, eventA)} kit A's`]);
    await a.endAsync(true);
    await hub.endAsync();
  });

  test("every kit reads the hub's seal key; no kit can publish one", async () => {
    const hub = await connect('popkit-hub', hubPass);
    const intruder = await connect(kitB, passB);
    // a kit that publishes a key of its own is refused
    await assert.rejects(
      intruder.publishAsync(topics.sealKey, 'forged key', { qos: 1, retain: true }),
      /authori[sz]ed/i,
    );
    await intruder.endAsync(true);
    const a = await connect(kitA, passA);
    const got: string[] = [];
    a.on('message', (t, p) => got.push(`${t} ${p.toString()}`));
    await a.subscribeAsync({ [topics.sealKey]: { qos: 1 } });
    await hub.publishAsync(topics.sealKey, 'the hub key', { qos: 1 });
    await waitFor(() => got.length > 0, 5000, 'the seal key delivered to a kit');
    assert.deepEqual(got, [`${topics.sealKey} the hub key`]);
    await a.endAsync(true);
    await hub.endAsync();
  });

  test('the real flow works through the ACL: orders in, acks back, status retained', async () => {
    const hub: HubService = await startHub({
      schema,
      brokerUrl: broker.url,
      env: { POPKIT_HUB_BROKER_USERNAME: 'popkit-hub', POPKIT_HUB_BROKER_PASSWORD: hubPass },
    });
    const kit = await makeKit(kitA);
    const sync: SyncService = startSync(kit, kitUrl, {
      POPKIT_HUB_PASSWORD: passA,
      POPKIT_HUB_CA_FILE: caFile,
    });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push(await kit.place());
      ids.push(await kit.place({ method: 'token', token: 'tok_ok_1' }));
      await waitFor(
        () => kit.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] }) === 0,
        15_000,
        'drain through the ACL broker',
      );
      assert.deepEqual((await ledgerOrderIds(schema, kitA)).ids, ids.sort());
      await waitFor(
        async () => (await hub.ledger!.listKits()).find((k) => k.kitId === kitA)?.online === true,
        5000,
        'retained status seen by the hub',
      );
      // a catalog whose signed message the broker would refuse is refused by the hub, and not stored
      const latest = await hub.ledger!.latestCatalogVersion(eventA);
      const item = (i: number) => ({
        sku: `S${i}`,
        name: `Item ${i}`,
        description: 'x'.repeat(2000),
        priceCents: 100,
        currency: 'EUR',
        stock: 1,
      });
      const res = await fetch(`${hub.httpUrl}/v1/events/${eventA}/catalog`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ currency: 'EUR', items: Array.from({ length: 1100 }, (_, i) => item(i)) }),
      });
      assert.equal(res.status, 413);
      const refused = (await res.json()) as { error: { code: string; details?: { max?: number } } };
      assert.equal(refused.error.code, 'BODY_TOO_LARGE');
      assert.equal(refused.error.details?.max, BROKER_MAX_PACKET_BYTES);
      assert.equal(await hub.ledger!.latestCatalogVersion(eventA), latest);
    } finally {
      await sync.stop();
      await hub.stop();
      await kit.close();
    }
  });

  test('the online card check through the ACL: a kit asks and reads only its own answers', async () => {
    const sandbox = new SandboxGateway(undefined, { cards: 'strict' });
    const hub: HubService = await startHub({
      schema,
      brokerUrl: broker.url,
      gateway: sandbox,
      env: { POPKIT_HUB_BROKER_USERNAME: 'popkit-hub', POPKIT_HUB_BROKER_PASSWORD: hubPass },
    });
    const kit = await makeKit(kitA);
    const sync: SyncService = startSync(kit, kitUrl, {
      POPKIT_HUB_PASSWORD: passA,
      POPKIT_HUB_CA_FILE: caFile,
    });
    const authz = HubAuthorizer.forDataDir(kit.dataDir).start();
    // kit B listens for any answer it should not get
    const b = await connect(kitB, passB);
    const gotB: string[] = [];
    b.on('message', (t) => gotB.push(t));
    try {
      await waitFor(() => authz.online(), 15_000, 'link up through TLS');
      const ok = await waitFor(async () => {
        const out = await authz.authorize(
          { orderId: uniqueId('o'), token: sandbox.issueToken(), amountCents: 100, currency: 'EUR' },
          3000,
        );
        return out.verdict === 'approved' ? out : undefined;
      }, 20_000);
      assert.match(ok.ref ?? '', /^sandbox_/);
      await b.subscribeAsync({
        [topics.authorizations(kitA)]: { qos: 0 },
        [topics.authorizations(kitB)]: { qos: 0 },
      });
      // kit B may not ask as kit A (the broker refuses the publish), nor read kit A's answers
      const forged = {
        v: 1,
        kitId: kitA,
        requestId: uniqueId('r'),
        orderId: uniqueId('o'),
        token: sandbox.issueToken(),
        amountCents: 100,
        currency: 'EUR',
        deadline: Date.now() + 30_000,
      };
      const calls = sandbox.exchangeCalls;
      await assert.rejects(
        b.publishAsync(topics.authorize(kitA), JSON.stringify(forged), {
          qos: 1,
          properties: { responseTopic: topics.authorizations(kitB), correlationData: Buffer.from('x') },
        }),
        /authori[sz]ed/i,
      );
      // kit A asks again: its answer reaches kit A only
      const again = await authz.authorize(
        { orderId: uniqueId('o'), token: sandbox.issueToken(), amountCents: 100, currency: 'EUR' },
        3000,
      );
      assert.equal(again.verdict, 'approved');
      assert.equal(sandbox.exchangeCalls, calls + 1, 'the forged request reached no gateway');
      assert.deepEqual(gotB, []);
    } finally {
      await b.endAsync(true);
      await authz.close();
      await sync.stop();
      await hub.stop();
      await kit.close();
    }
  });

  test("the kits' listener is TLS only: without the CA, or in plain MQTT, a kit gets no session", async () => {
    const base = {
      clientId: uniqueId('k'),
      username: kitA,
      password: passA,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    };
    // with the CA it connects (the certificate from make-certs.sh names 127.0.0.1)
    const ok = await mqtt.connectAsync(kitUrl, { ...base, protocolVersion: 5, ...tls(kitUrl) });
    await ok.endAsync(true);
    await assert.rejects(mqtt.connectAsync(kitUrl, { ...base, protocolVersion: 5 }), /certificate/i);
    assert.notEqual(
      await connectOutcome(kitUrl.replace('mqtts:', 'mqtt:'), { ...base, protocolVersion: 5 }),
      'connected',
    );
  });

  test('make-certs.sh: the files docker-compose mounts, keys 0600, a CA kept across runs', () => {
    for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key'])
      assert.ok(fs.existsSync(path.join(certs, f)), f);
    for (const f of ['ca.key', 'server.key'])
      assert.equal(fs.statSync(path.join(certs, f)).mode & 0o077, 0, `${f} is private`);
    const ca = fs.readFileSync(caFile, 'utf8');
    execFileSync(path.join(deploy, 'make-certs.sh'), [certs, '127.0.0.1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.equal(fs.readFileSync(caFile, 'utf8'), ca, 'the CA kits trust is kept');
    execFileSync('openssl', ['verify', '-CAfile', caFile, path.join(certs, 'server.crt')], { stdio: 'pipe' });
    // hostile names are refused, nothing is written for them
    for (const bad of ['a b', '-subj', 'x/../y', '']) {
      assert.throws(() => execFileSync(path.join(deploy, 'make-certs.sh'), [certs, bad], { stdio: 'pipe' }));
    }
  });

  test("add-kit.sh refuses the hub's names and an existing kit, and changes nothing for them", () => {
    execFileSync('mosquitto_passwd', ['-b', path.join(dir, 'hub-passwd'), 'ops-worker-2', 'another-secret']);
    const before = ['passwd', 'acl', 'hub-passwd'].map((f) => fs.readFileSync(path.join(dir, f)));
    for (const id of [
      'popkit-hub',
      'popkit-hub-w1',
      'Popkit-Hub',
      'POPKIT',
      'popkit-sync-x',
      'ops-worker-2',
      'OPS-WORKER-2',
      kitA,
    ]) {
      let stderr = '';
      assert.throws(() => {
        try {
          execFileSync(path.join(deploy, 'add-kit.sh'), [dir, id, 'ev1'], {
            encoding: 'utf8',
            stdio: 'pipe',
          });
        } catch (err) {
          stderr = String((err as { stderr?: string }).stderr);
          throw err;
        }
      }, `${id} was accepted`);
      assert.match(stderr, /reserved kit id|exists already/, id);
    }
    const afterwards = ['passwd', 'acl', 'hub-passwd'].map((f) => fs.readFileSync(path.join(dir, f)));
    assert.deepEqual(afterwards, before);
  });

  test('a packet over the limit disconnects its sender only; its next connection and other kits work', async () => {
    const worker = await connect('popkit-hub', hubPass, 'popkit-hub-limits');
    const got: Buffer[] = [];
    worker.on('message', (_t, p) => got.push(p));
    await worker.subscribeAsync({ 'popkit/v1/kits/+/orders': { qos: 1 } });
    const b = await connect(kitB, passB);
    let bDropped = false;
    b.on('close', () => {
      bDropped = true;
    });
    const a = mqtt.connect(kitUrl, {
      clientId: kitA,
      username: kitA,
      password: passA,
      protocolVersion: 5,
      reconnectPeriod: 0,
      ...tls(kitUrl),
    });
    try {
      const connack = await new Promise<{ properties?: { maximumPacketSize?: number } }>(
        (resolve, reject) => {
          a.once('connect', resolve);
          a.once('error', reject);
        },
      );
      assert.equal(connack.properties?.maximumPacketSize, BROKER_MAX_PACKET_BYTES, 'the limit is advertised');
      const closed = new Promise<void>((resolve) => a.once('close', () => resolve()));
      a.on('error', () => {});
      a.publish(topics.orders(kitA), Buffer.alloc(BROKER_MAX_PACKET_BYTES, 0x61), { qos: 1 });
      await Promise.race([
        closed,
        new Promise((_, rej) => setTimeout(() => rej(new Error('not disconnected')), 15_000)),
      ]);
      // the same kit again, a normal batch: delivered; kit B never noticed
      const again = await connect(kitA, passA);
      await again.publishAsync(topics.orders(kitA), '{"small":true}', { qos: 1 });
      await b.publishAsync(topics.orders(kitB), '{"b":true}', { qos: 1 });
      await waitFor(() => got.length >= 2, 10_000, 'the small batches');
      await again.endAsync(true);
      assert.deepEqual(got.map((p) => p.toString()).sort(), ['{"b":true}', '{"small":true}']);
      assert.equal(bDropped, false);
    } finally {
      a.end(true);
      await b.endAsync(true);
      await worker.endAsync(true);
    }
  });
});
