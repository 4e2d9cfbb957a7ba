// The online card check end to end through a real hub link (docs/security.md#online-authorization):
// checkout's HubAuthorizer → sync's relay (unix socket) → Mosquitto (MQTT 5 request/response, or over
// MQTT 3.1.1 the reply topic and correlation in the payload: every test runs once per version) → a hub
// worker on PostgreSQL → the strict sandbox gateway → back. Verdicts, every way of falling back
// (gateway unavailable, a hub that does not answer in the budget, the link down), no second charge
// when the authorized order reaches the ledger, orphans reported, and hostile requests at the hub
// refused with no effect, forged answers at the kit refused.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import pg from 'pg';
import { authorizeSocketPath } from '../../core/contracts/authorize-relay.ts';
import { type AuthorizeRequestT, type AuthorizeResponseT, topics } from '../../core/contracts/hub-wire.ts';
import { KitError } from '../../core/errors.ts';
import { MonotonicIds } from '../../core/ids.ts';
import { HubAuthorizer } from '../../services/checkout/hub-authorizer.ts';
import type { OrderFeature } from '../../services/checkout/order-features.ts';
import { OrderService } from '../../services/checkout/orders.ts';
import { AUTHORIZE_MAX_BYTES, HubAuthorize } from '../../services/hub/authorize.ts';
import {
  type ExchangeRequest,
  type ExchangeResult,
  type JournalLine,
  type PaymentGateway,
  SandboxGateway,
} from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  type Mosquitto,
  MQTT_VERSIONS,
  makeKit,
  mosquitto,
  mqttEnv,
  PG_URL,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

/** The strict sandbox, and a switch that makes it answer only after the kit stopped waiting. */
class SlowSandbox implements PaymentGateway {
  readonly name = 'sandbox';
  readonly sandbox = true;
  readonly testToken: string;
  stallMs = 0;
  constructor(readonly inner: SandboxGateway) {
    this.testToken = inner.testToken;
  }
  async exchange(req: ExchangeRequest): Promise<ExchangeResult> {
    if (this.stallMs > 0) await new Promise((r) => setTimeout(r, this.stallMs));
    return this.inner.exchange(req);
  }
}

const BUDGET_MS = 2000;
for (const mqttVersion of MQTT_VERSIONS)
  describe(`online authorization through the hub link (MQTT ${mqttVersion})`, () => {
    const schema = uniqueId('t_auth').replace(/-/g, '_');
    const kitId = uniqueId('kauth');
    const journal = path.join(tmpDir('auth-journal'), 'charges.jsonl');
    const sandbox = new SandboxGateway(journal, { cards: 'strict' });
    const gateway = new SlowSandbox(sandbox);
    let broker: Mosquitto;
    let hub: HubService;
    let kit: TestKit;
    let sync: SyncService;
    let authz: HubAuthorizer;
    let db: pg.Client;

    const journalLines = () =>
      fs.existsSync(journal)
        ? fs
            .readFileSync(journal, 'utf8')
            .split('\n')
            .filter((l) => l.trim())
            .map((l) => JSON.parse(l) as JournalLine)
        : [];
    const ask = (token: string, orderId = uniqueId('o'), budgetMs = BUDGET_MS) =>
      authz.authorize({ orderId, token, amountCents: 2500, currency: 'EUR' }, budgetMs);
    const rows = async (where = 'true', params: unknown[] = []) =>
      (
        await db.query(`SELECT * FROM "${schema}".authorizations WHERE kit_id = $1 AND ${where}`, [
          kitId,
          ...params,
        ])
      ).rows;

    const env = mqttEnv(mqttVersion);

    before(async () => {
      broker = await mosquitto();
      hub = await startHub({ schema, brokerUrl: broker.url, gateway, env: env.hub });
      kit = await makeKit(kitId);
      sync = startSync(kit, broker.url, env.sync);
      authz = HubAuthorizer.forDataDir(kit.dataDir).start();
      await waitFor(() => authz.online(), 20_000, 'the hub link up, as sync tells checkout');
      db = new pg.Client({ connectionString: PG_URL });
      await db.connect();
    });

    after(async () => {
      await authz?.close();
      await sync?.stop();
      await hub?.stop();
      await kit?.close();
      await broker?.stop();
      await db?.end();
      await dropSchema(schema);
    });

    test('a token the sandbox issued is approved, with the gateway ref, recorded without the token', async () => {
      const orderId = uniqueId('o');
      const token = sandbox.issueToken();
      const out = await ask(token, orderId);
      assert.equal(out.verdict, 'approved', JSON.stringify(out));
      assert.match(out.ref ?? '', /^sandbox_/);
      const [row] = await waitFor(async () => {
        const r = await rows('order_id = $2 AND verdict IS NOT NULL', [orderId]);
        return r.length ? r : undefined;
      });
      assert.equal(row.verdict, 'approved');
      assert.equal(row.gateway_ref, out.ref);
      assert.ok(!JSON.stringify(row).includes(token), 'the token is not stored');
    });

    test('made-up tokens are declined invalid_token, a declined card with its reason; neither is a charge', async () => {
      const charges = sandbox.chargeCount;
      for (const madeUp of ['tok_visa_4242', 'tok_sandbox_deadbeef_00000000000000000000000000000000']) {
        const out = await ask(madeUp);
        assert.equal(out.verdict, 'declined');
        assert.equal(out.reason, 'invalid_token');
      }
      // a sandbox token altered by one character is made up too
      const real = sandbox.issueToken();
      const altered = real.slice(0, -1) + (real.endsWith('0') ? '1' : '0');
      assert.equal((await ask(altered)).reason, 'invalid_token');
      assert.equal(sandbox.chargeCount, charges, 'a made-up token is no charge');
      const declined = await ask(sandbox.issueToken('decline_insufficient_funds'));
      assert.equal(declined.verdict, 'declined');
      assert.equal(declined.reason, 'insufficient_funds');
    });

    test('the gateway unreachable: unavailable, at once (not at the end of the budget)', async () => {
      sandbox.setAvailable(false);
      try {
        const out = await ask(sandbox.issueToken(), uniqueId('o'), 30_000);
        assert.equal(out.verdict, 'unavailable');
        assert.equal(out.reason, 'gateway_unavailable');
      } finally {
        sandbox.setAvailable(true);
      }
    });

    test('a hub that does not answer within the budget: unavailable; its late approval is an orphan, reported once', async () => {
      const orderId = uniqueId('o');
      gateway.stallMs = 1500;
      try {
        const out = await ask(sandbox.issueToken(), orderId, 300);
        assert.equal(out.verdict, 'unavailable');
        assert.equal(out.reason, 'timeout');
        // the hub goes on and records the approval it could not deliver in time
        await waitFor(
          async () => (await rows('order_id = $2 AND verdict = $3', [orderId, 'approved'])).length,
        );
      } finally {
        gateway.stallMs = 0;
      }
      // no order ever names it: reported (once), and listed for a void
      assert.ok((await hub.authorize!.reportOrphans(0)) >= 1);
      const [row] = await rows('order_id = $2', [orderId]);
      assert.ok(row.reported_at, 'reported');
      assert.equal(await hub.authorize!.reportOrphans(0), 0, 'each orphan is reported once');
      const res = await fetch(`${hub.httpUrl}/v1/authorizations/orphans?olderThanS=0`, {
        headers: { authorization: `Bearer ${hub.adminToken}` },
      });
      const body = (await res.json()) as { orphans: { orderId: string }[] };
      assert.ok(body.orphans.some((o) => o.orderId === orderId));
      assert.equal((await fetch(`${hub.httpUrl}/v1/authorizations/orphans`)).status, 401);
    });

    test('the authorized order reaches the ledger with its authRef: settled under the same ref, ONE charge', async () => {
      // the smallest settle step: ask online, keep the ref, refuse a decline
      const settle: OrderFeature = {
        name: 'authorize-test',
        async settle(d) {
          if (d.body.payment.method !== 'token') return;
          const out = await authz.authorize(
            { orderId: d.orderId, token: d.body.payment.token, amountCents: d.totalCents, currency: 'EUR' },
            BUDGET_MS,
          );
          if (out.verdict === 'declined') throw new KitError('PAYMENT_DECLINED', out.reason ?? 'declined');
          if (out.verdict === 'approved') {
            d.extra.authRef = out.ref!;
            d.riskBudget = false;
          }
        },
      };
      const big = 1_000_000_000;
      const orders = new OrderService(kit.store, new MonotonicIds(), kit.vault, {
        kitId,
        tokenTtlMs: 3600_000,
        limits: { maxOrderCents: big, maxUnsyncedCents: big, maxUnsyncedOrders: big, maxUnsyncedAgeS: big },
        features: [settle],
      });
      const { order } = await orders.create(
        { lines: [{ sku: 'TEE', qty: 1 }], payment: { method: 'token', token: sandbox.issueToken() } },
        undefined,
      );
      assert.ok(order.authRef, 'the order carries the authorization');
      const key = `${kitId}:${order.id}`;
      const settled = await waitFor(async () => {
        const r = await db.query(
          `SELECT state, gateway_ref FROM "${schema}".orders WHERE kit_id = $1 AND order_id = $2`,
          [kitId, order.id],
        );
        return r.rows[0]?.state === 'settled' ? r.rows[0] : undefined;
      });
      assert.equal(settled.gateway_ref, order.authRef);
      const lines = journalLines().filter((l) => l.key === key);
      assert.deepEqual(
        lines.map((l) => l.charge),
        [true, false],
        'authorized once, the order exchange a repeat of the same key',
      );
      await assert.rejects(
        orders.create(
          {
            lines: [{ sku: 'TEE', qty: 1 }],
            payment: { method: 'token', token: 'tok_made_up_by_a_script' },
          },
          undefined,
        ),
        (err: KitError) => err.code === 'PAYMENT_DECLINED',
      );
    });

    describe('hostile requests at the hub: refused, counted, no row, no gateway call, no answer', () => {
      let raw: mqtt.MqttClient;
      const answers: string[] = [];
      const victim = uniqueId('kvictim');

      before(async () => {
        raw = await mqtt.connectAsync(broker.url, {
          clientId: uniqueId('hostile'),
          protocolVersion: 5,
          reconnectPeriod: 0,
        });
        raw.on('message', (t) => answers.push(t));
        await raw.subscribeAsync({ 'popkit/v1/kits/+/authorizations': { qos: 0 } });
      });
      after(async () => {
        await raw?.endAsync(true);
      });

      const valid = (over: Partial<AuthorizeRequestT> = {}): AuthorizeRequestT => ({
        v: 1,
        kitId,
        requestId: uniqueId('r'),
        orderId: uniqueId('o'),
        token: sandbox.issueToken(),
        amountCents: 2500,
        currency: 'EUR',
        deadline: Date.now() + 30_000,
        ...over,
      });
      // the request's reply as the kit's MQTT version carries it: MQTT 5 properties, or over 3.1.1 a
      // `reply` put first in the JSON payload (a payload that is no JSON object stays as it is)
      const send = (
        payload: string | Buffer,
        responseTopic = topics.authorizations(kitId),
        cd?: Buffer | null,
      ) => {
        const correlation = cd === null ? undefined : (cd ?? Buffer.from('r1'));
        if (mqttVersion === '5')
          return raw.publishAsync(topics.authorize(kitId), payload, {
            qos: 0,
            properties: { responseTopic, ...(correlation ? { correlationData: correlation } : {}) },
          });
        const reply = JSON.stringify({
          topic: responseTopic,
          ...(correlation ? { correlation: correlation.toString('utf8') } : {}),
        });
        const text = String(payload);
        return raw.publishAsync(
          topics.authorize(kitId),
          text.startsWith('{') ? `{"reply":${reply},${text.slice(1)}` : payload,
          { qos: 0 },
        );
      };

      test('each hostile request is refused for its reason and changes nothing', async () => {
        const refused = () => ({ ...hub.authorize!.stats.refused });
        const calls = sandbox.exchangeCalls;
        const rowsBefore = (await rows()).length;
        const cases: { reason: string; go: () => Promise<unknown> }[] = [
          { reason: 'kit_mismatch', go: () => send(JSON.stringify(valid({ kitId: victim }))) },
          {
            reason: 'response_topic',
            go: () => send(JSON.stringify(valid()), topics.authorizations(victim)),
          },
          { reason: 'response_topic', go: () => send(JSON.stringify(valid()), 'popkit/v1/elsewhere') },
          // over 3.1.1 a reply without its correlation is no AuthorizeReply
          {
            reason: mqttVersion === '5' ? 'correlation' : 'malformed',
            go: () => send(JSON.stringify(valid()), undefined, null),
          },
          {
            reason: 'too_large',
            go: () => send(JSON.stringify(valid({ token: 'x'.repeat(AUTHORIZE_MAX_BYTES) }))),
          },
          { reason: 'malformed', go: () => send(JSON.stringify(valid({ token: `tok_sandbox_\u0000` }))) },
          {
            reason: 'malformed',
            go: () => send(JSON.stringify(valid()).replace('{', '{"__proto__":{"kitId":"x"},')),
          },
          { reason: 'malformed', go: () => send('{"v":1,"kitId":') },
          { reason: 'malformed', go: () => send(JSON.stringify({ ...valid(), amountCents: '2500' })) },
          { reason: 'expired', go: () => send(JSON.stringify(valid({ deadline: Date.now() - 60_000 }))) },
        ];
        for (const c of cases) {
          const before = refused()[c.reason] ?? 0;
          await c.go();
          await waitFor(() => (refused()[c.reason] ?? 0) === before + 1, 10_000, `refusal ${c.reason}`);
        }
        // a sound request gets through and is answered (so the silence above is not a dead hub) …
        const sound = valid();
        await send(JSON.stringify(sound), undefined, Buffer.from(sound.requestId));
        await waitFor(
          () => answers.includes(topics.authorizations(kitId)),
          10_000,
          'the sound request answered',
        );
        assert.deepEqual(answers, [topics.authorizations(kitId)], 'only the sound request was answered');
        assert.equal(sandbox.exchangeCalls, calls + 1, 'the hostile requests reached no gateway');
        assert.equal((await rows()).length, rowsBefore + 1, 'the hostile requests left no row');
        // … and its replay is refused: no second answer, no second gateway call
        const replays = refused()['replay'] ?? 0;
        await send(
          JSON.stringify({ ...sound, deadline: Date.now() + 30_000 }),
          undefined,
          Buffer.from(sound.requestId),
        );
        await waitFor(() => (refused()['replay'] ?? 0) === replays + 1, 10_000, 'the replay refused');
        assert.equal(sandbox.exchangeCalls, calls + 1);
        assert.equal(answers.length, 1);
        // what an operator sees
        const metrics = await (await fetch(`${hub.httpUrl}/metrics`)).text();
        for (const reason of [
          'kit_mismatch',
          'response_topic',
          'too_large',
          'malformed',
          'expired',
          'replay',
        ])
          assert.match(
            metrics,
            new RegExp(`popkit_hub_authorize_refused_total\\{reason="${reason}"\\} [1-9]`),
          );
        assert.match(metrics, /popkit_hub_authorizations_total\{verdict="approved"\} [1-9]/);
      });

      // a 3.1.1 kit's form, which a hub of either version answers (a region may mix kits of both)
      test('the reply in the payload (MQTT 3.1.1 form): hostile values refused, a sound one answered with its correlation, its replay refused', async () => {
        const refused = () => ({ ...hub.authorize!.stats.refused });
        const got: { topic: string; body: AuthorizeResponseT; cd: Buffer | undefined }[] = [];
        const onMsg = (topic: string, p: Buffer, packet: mqtt.IPublishPacket) =>
          got.push({ topic, body: JSON.parse(String(p)), cd: packet.properties?.correlationData });
        raw.on('message', onMsg);
        const own = topics.authorizations(kitId);
        const calls = sandbox.exchangeCalls;
        const rowsBefore = (await rows()).length;
        // the request with `reply` first, as a string: hostile shapes a JSON value cannot make
        const withReply = (reply: string, over: Partial<AuthorizeRequestT> = {}) =>
          `{"reply":${reply},${JSON.stringify(valid(over)).slice(1)}`;
        const r = (o: unknown) => JSON.stringify(o);
        const cases: [string, string][] = [
          ['malformed', withReply(r({ topic: own, correlation: 'r\u0000' }))],
          ['malformed', withReply(r({ topic: own, correlation: 'x'.repeat(65) }))],
          ['malformed', withReply(r({ topic: own, correlation: 'x'.repeat(6000) }))],
          ['malformed', withReply(r({ topic: own, correlation: 'a/b' }))],
          ['malformed', withReply(`{"__proto__":{"topic":"${own}"},"topic":"${own}","correlation":"r1"}`)],
          [
            'malformed',
            `{"__proto__":{"kitId":"x"},${withReply(r({ topic: own, correlation: 'r1' })).slice(1)}`,
          ],
          ['malformed', withReply(r({ topic: own, correlation: 'r1', responseTopic: own }))],
          ['malformed', withReply(r({ topic: own, correlation: 42 }))],
          ['malformed', withReply(r({ topic: null, correlation: 'r1' }))],
          ['malformed', withReply(r(own))],
          ['malformed', withReply('42')],
          ['malformed', withReply(r([own, 'r1']))],
          ['malformed', withReply(r({ topic: own }))],
          ['response_topic', withReply(r({ topic: topics.authorizations(victim), correlation: 'r1' }))],
          ['response_topic', withReply(r({ topic: 'popkit/v1/kits/+/authorizations', correlation: 'r1' }))],
          ['response_topic', withReply(r({ topic: `${own}\u0000`, correlation: 'r1' }))],
          ['kit_mismatch', withReply(r({ topic: own, correlation: 'r1' }), { kitId: victim })],
          [
            'too_large',
            withReply(r({ topic: own, correlation: 'r1' }), { token: 'x'.repeat(AUTHORIZE_MAX_BYTES) }),
          ],
        ];
        for (const [reason, payload] of cases) {
          const before = refused()[reason] ?? 0;
          await raw.publishAsync(topics.authorize(kitId), payload, { qos: 0 });
          await waitFor(
            () => (refused()[reason] ?? 0) === before + 1,
            10_000,
            `refusal ${reason}: ${payload.slice(0, 120)}`,
          );
        }
        // both forms at once is no form: refused (a 3.1.1 hub never hears the properties, so at the handler)
        const both = valid();
        const bothBefore = refused()['reply_form'] ?? 0;
        await hub.authorize!.handle(
          topics.authorize(kitId),
          Buffer.from(withReply(r({ topic: own, correlation: both.requestId }), both)),
          { responseTopic: own, correlationData: Buffer.from(both.requestId) },
          () => assert.fail('answered'),
        );
        assert.equal(refused()['reply_form'], bothBefore + 1);
        assert.equal(got.length, 0, 'no hostile request was answered');
        assert.equal(sandbox.exchangeCalls, calls, 'no hostile request reached the gateway');
        assert.equal((await rows()).length, rowsBefore, 'no hostile request left a row');
        // a sound one: answered on the kit's own topic, its correlation in the payload, no property
        const sound = valid();
        await raw.publishAsync(
          topics.authorize(kitId),
          withReply(r({ topic: own, correlation: 'c-1' }), sound),
          {
            qos: 0,
          },
        );
        await waitFor(() => got.length === 1, 10_000, 'the sound request answered');
        assert.equal(got[0]!.topic, own);
        assert.equal(got[0]!.body.requestId, sound.requestId);
        assert.equal(got[0]!.body.correlation, 'c-1');
        assert.equal(got[0]!.body.verdict, 'approved');
        assert.equal(got[0]!.cd, undefined, 'no MQTT 5 correlation data on a 3.1.1-form answer');
        // its replay, under another correlation: refused, no answer, no second gateway call
        const replays = refused()['replay'] ?? 0;
        await raw.publishAsync(
          topics.authorize(kitId),
          withReply(r({ topic: own, correlation: 'c-2' }), { ...sound, deadline: Date.now() + 30_000 }),
          { qos: 0 },
        );
        await waitFor(() => (refused()['replay'] ?? 0) === replays + 1, 10_000, 'the replay refused');
        assert.equal(sandbox.exchangeCalls, calls + 1);
        assert.equal(got.length, 1);
        raw.off('message', onMsg);
      });
    });

    test("forged answers on the kit's topic are refused by sync; the hub's own answer is the verdict", async () => {
      const forger = await mqtt.connectAsync(broker.url, {
        clientId: uniqueId('forger'),
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      const asked: string[] = [];
      forger.on('message', (_t, p) => asked.push((JSON.parse(String(p)) as AuthorizeRequestT).requestId));
      await forger.subscribeAsync({ [topics.authorize(kitId)]: { qos: 0 } });
      const refusedBefore = sync.authorizeRelay.stats.answersRefused;
      gateway.stallMs = 1500;
      try {
        // a made-up token: the hub's verdict is a decline; any forgery that got through says approved
        const pending = ask('tok_made_up_forged', uniqueId('o'), 5000);
        const id = await waitFor(() => asked[0], 10_000, 'the request seen');
        const approved = { v: 1, requestId: id, verdict: 'approved', ref: 'forged' };
        const to = topics.authorizations(kitId);
        const forgeries: [string | Buffer, mqtt.IClientPublishOptions['properties']?][] = [
          // no correlation in either form
          [JSON.stringify(approved)],
          // another request's correlation, in both forms
          [JSON.stringify({ ...approved, correlation: 'other' }), { correlationData: Buffer.from('other') }],
          // the right one with a NUL in it, in both forms
          [
            JSON.stringify({ ...approved, correlation: `${id}\u0000` }),
            { correlationData: Buffer.from(`${id}\u0000`) },
          ],
          // the right correlation, but only in the form the kit's version does not read
          mqttVersion === '5'
            ? [JSON.stringify({ ...approved, correlation: id })]
            : [JSON.stringify(approved), { correlationData: Buffer.from(id) }],
          // not an answer: wrong types, __proto__, huge
          [
            JSON.stringify({ ...approved, verdict: 1, correlation: id }),
            { correlationData: Buffer.from(id) },
          ],
          [
            `{"__proto__":{"verdict":"approved"},"v":1,"requestId":"${id}","correlation":"${id}"}`,
            { correlationData: Buffer.from(id) },
          ],
          [
            JSON.stringify({ ...approved, ref: 'x'.repeat(100_000), correlation: id }),
            { correlationData: Buffer.from(id) },
          ],
        ];
        for (const [payload, properties] of forgeries)
          await forger.publishAsync(to, payload, { qos: 0, ...(properties ? { properties } : {}) });
        await waitFor(
          () => sync.authorizeRelay.stats.answersRefused === refusedBefore + forgeries.length,
          10_000,
          'every forgery refused',
        );
        const out = await pending;
        assert.equal(out.verdict, 'declined', JSON.stringify(out));
        assert.equal(out.reason, 'invalid_token');
      } finally {
        gateway.stallMs = 0;
        await forger.endAsync(true);
      }
    });

    test("sync's relay: a socket only its user can open; garbage and an endless line change nothing", async () => {
      const sock = authorizeSocketPath(kit.dataDir);
      assert.equal(fs.statSync(sock).mode & 0o077, 0, 'the socket is private');
      const forwarded = sync.authorizeRelay.stats.forwarded;
      const refused = sync.authorizeRelay.stats.refused;
      const c = net.createConnection(sock);
      await new Promise((r) => c.once('connect', r));
      const closed = new Promise((r) => c.once('close', r));
      c.on('error', () => undefined);
      // read what sync sends (its link state): a socket never read never sees its end
      c.resume();
      c.write('not json\n{"v":1,"type":"authorize"}\n');
      c.write(
        `${JSON.stringify({ v: 1, type: 'authorize', requestId: 'r1', orderId: 'o1', token: 'tok_\u0000', amountCents: 1, currency: 'EUR', deadline: Date.now() + 5000 })}\n`,
      );
      await waitFor(() => sync.authorizeRelay.stats.refused === refused + 3, 10_000, 'three refusals');
      // a line that never ends is not a peer of ours: disconnected
      c.write('x'.repeat(64 * 1024));
      await closed;
      assert.equal(sync.authorizeRelay.stats.forwarded, forwarded, 'nothing reached the hub');
      assert.equal((await ask(sandbox.issueToken())).verdict, 'approved', 'checkout goes on');
    });

    test('a kit over its check quota is answered unavailable at once (rate_limited), with no row and no gateway call', async () => {
      // the hub's handler on the same database and gateway, with a quota of 2 and almost no refill
      const h = new HubAuthorize(hub.db!, gateway, { ratePerS: 0.1, burst: 2, concurrency: 2 });
      const got: { topic: string; body: AuthorizeResponseT }[] = [];
      const answer = (topic: string, payload: string) => got.push({ topic, body: JSON.parse(payload) });
      const props = (id: string) => ({
        responseTopic: topics.authorizations(kitId),
        correlationData: Buffer.from(id),
      });
      const calls = sandbox.exchangeCalls;
      const rowsBefore = (await rows()).length;
      for (let i = 0; i < 4; i++) {
        const req: AuthorizeRequestT = {
          v: 1,
          kitId,
          requestId: uniqueId('q'),
          orderId: uniqueId('o'),
          token: sandbox.issueToken(),
          amountCents: 100,
          currency: 'EUR',
          deadline: Date.now() + 30_000,
        };
        await h.handle(
          topics.authorize(kitId),
          Buffer.from(JSON.stringify(req)),
          props(req.requestId),
          answer,
        );
      }
      assert.deepEqual(
        got.map((g) => `${g.body.verdict}${g.body.reason ? `:${g.body.reason}` : ''}`),
        ['approved', 'approved', 'unavailable:rate_limited', 'unavailable:rate_limited'],
      );
      assert.ok(got.every((g) => g.topic === topics.authorizations(kitId)));
      assert.equal(sandbox.exchangeCalls, calls + 2);
      assert.equal((await rows()).length, rowsBefore + 2);
      assert.equal(h.stats.refused['quota_rate'], 2);
    });

    // a region moving between versions has kits of both on one broker for a while
    test('a kit of the other MQTT version: a hub on 5 answers a 3.1.1 kit; a hub on 3.1.1 hears no MQTT 5 reply and answers nothing', async (t) => {
      const other = mqttVersion === '5' ? '3.1.1' : '5';
      const kit2 = await makeKit(uniqueId('kother'));
      const sync2 = startSync(kit2, broker.url, mqttEnv(other).sync);
      const authz2 = HubAuthorizer.forDataDir(kit2.dataDir).start();
      t.after(async () => {
        await authz2.close();
        await sync2.stop();
        await kit2.close();
      });
      await waitFor(() => authz2.online(), 20_000, "the other kit's link up");
      const refusedBefore = hub.authorize!.stats.refused['response_topic'] ?? 0;
      const out = await authz2.authorize(
        { orderId: uniqueId('o'), token: sandbox.issueToken(), amountCents: 2500, currency: 'EUR' },
        mqttVersion === '5' ? BUDGET_MS : 500,
      );
      if (mqttVersion === '5') {
        assert.equal(out.verdict, 'approved', JSON.stringify(out));
      } else {
        // the broker strips the properties for the 3.1.1 worker: no reply topic, refused, the kit falls back
        assert.equal(out.verdict, 'unavailable');
        assert.equal(out.reason, 'timeout');
        await waitFor(
          () => (hub.authorize!.stats.refused['response_topic'] ?? 0) === refusedBefore + 1,
          10_000,
          'refused at the hub',
        );
      }
    });

    // last: it takes the broker away
    test('the link down: online() is false and a check is unavailable at once; back up, online again', async () => {
      await broker.stop();
      try {
        await waitFor(() => !authz.online(), 20_000, 'offline as sync tells it');
        const out = await ask(sandbox.issueToken(), uniqueId('o'), 30_000);
        assert.equal(out.verdict, 'unavailable');
        assert.equal(out.reason, 'link_down');
      } finally {
        await broker.start();
      }
      await waitFor(() => authz.online(), 30_000, 'online again');
      // the hub worker reconnects on its own schedule: until it has, a check times out (the fallback)
      await waitFor(
        async () => (await ask(sandbox.issueToken())).verdict === 'approved',
        30_000,
        'approved again',
      );
    });

    test('sync away: online() is false, checks are unavailable; sync back, checkout reconnects by itself', async () => {
      await sync.stop();
      await waitFor(() => !authz.online(), 10_000, 'relay gone');
      assert.equal((await ask(sandbox.issueToken())).reason, 'link_down');
      sync = startSync(kit, broker.url, env.sync);
      await waitFor(() => authz.online(), 30_000, 'relay and link back');
      assert.equal((await ask(sandbox.issueToken())).verdict, 'approved');
    });
  });
