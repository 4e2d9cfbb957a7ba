// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// The strict sandbox (POPKIT_HUB_SANDBOX_CARDS=strict) tells the tokens it issued from made-up ones,
// as a real provider does, and the hub's sandbox card endpoint issues them; `any` keeps the permissive
// behaviour every older drill relies on (docs/security.md#online-authorization).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import { dropSchema, startHub, tmpDir, uniqueId } from '../support/hub-link.ts';

const req = (token: string, key = uniqueId('k')) => ({
  idempotencyKey: key,
  token,
  amountCents: 2500,
  currency: 'EUR',
});

describe('strict sandbox', () => {
  test('approves its own tokens only; a made-up or altered token is declined invalid_token and no charge', async () => {
    const gw = new SandboxGateway(undefined, { cards: 'strict' });
    const token = gw.issueToken();
    assert.match(token, /^tok_sandbox_[0-9a-f]{16}_[0-9a-f]{32}$/);
    assert.equal((await gw.exchange(req(token))).outcome, 'approved');
    const other = new SandboxGateway(undefined, { cards: 'strict' });
    const charges = gw.chargeCount;
    for (const madeUp of [
      'tok_visa_4242',
      other.issueToken(), // another sandbox's key
      token.replace(/.$/, (c) => (c === '0' ? '1' : '0')),
      `${token}x`,
      `tok_sandbox_${'a'.repeat(16)}_decline_x_${'0'.repeat(32)}`,
      '',
      '\u0000',
    ]) {
      assert.deepEqual(
        await gw.exchange(req(madeUp)),
        { outcome: 'declined', reason: 'invalid_token' },
        madeUp,
      );
    }
    assert.equal(gw.chargeCount, charges, 'a made-up token is no charge');
    // what the issued body says decides: a declining card, an unreachable provider
    assert.deepEqual(await gw.exchange(req(gw.issueToken('decline_insufficient_funds'))), {
      outcome: 'declined',
      reason: 'insufficient_funds',
    });
    await assert.rejects(gw.exchange(req(gw.issueToken('unavailable'))), /unreachable/);
    // the connectivity probe still works
    assert.equal((await gw.exchange(req(gw.testToken))).outcome, 'approved');
    // a key shared by two workers: each approves the other's tokens
    const key = Buffer.alloc(32, 7);
    const w1 = new SandboxGateway(undefined, { cards: 'strict', cardKey: key });
    const w2 = new SandboxGateway(undefined, { cards: 'strict', cardKey: key });
    assert.equal((await w2.exchange(req(w1.issueToken()))).outcome, 'approved');
    assert.throws(() => gw.issueToken('__proto__'), /unknown sandbox card kind/);
  });

  test('`any` (the default) keeps approving any token without decline/unavailable in it', async () => {
    const gw = new SandboxGateway();
    assert.equal(gw.cards, 'any');
    assert.equal((await gw.exchange(req('tok_visa_4242'))).outcome, 'approved');
    assert.equal((await gw.exchange(req('tok_decline_do_not_honor'))).outcome, 'declined');
  });
});

describe("the hub's sandbox card endpoint", () => {
  const schema = uniqueId('t_cards').replace(/-/g, '_');
  const dataDir = tmpDir('hub-cards');
  after(() => dropSchema(schema));

  test('issues tokens the strict hub approves, also after a restart; hostile bodies are 400', async () => {
    const env = { POPKIT_HUB_SANDBOX_CARDS: 'strict' };
    let hub = await startHub({ schema, dataDir, env });
    let token = '';
    try {
      const form = await fetch(`${hub.httpUrl}/v1/sandbox/card-form`);
      assert.equal(form.status, 200);
      assert.match(await form.text(), /SANDBOX/);
      const res = await fetch(`${hub.httpUrl}/v1/sandbox/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { sandbox: boolean; token: string };
      assert.equal(body.sandbox, true);
      token = body.token;
      assert.equal((await hub.gateway!.exchange(req(token))).outcome, 'approved');
      assert.deepEqual(await hub.gateway!.exchange(req('tok_made_up')), {
        outcome: 'declined',
        reason: 'invalid_token',
      });
      const hostile: [unknown, string][] = [
        [{ kind: 'ok\u0000' }, 'VALIDATION'],
        [{ kind: 'x'.repeat(5000) }, 'VALIDATION'],
        [{ kind: 7 }, 'VALIDATION'],
        [{ kind: 'ok', extra: 1 }, 'VALIDATION'],
        // fastify's JSON parser refuses the key outright
        [JSON.parse('{"__proto__":{"kind":"ok"}}'), 'BAD_REQUEST'],
      ];
      for (const [bad, code] of hostile) {
        const r = await fetch(`${hub.httpUrl}/v1/sandbox/tokens`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(bad),
        });
        assert.equal(r.status, 400, JSON.stringify(bad));
        assert.equal(((await r.json()) as { error: { code: string } }).error.code, code);
      }
    } finally {
      await hub.stop();
    }
    // the card key lives in the hub's data dir: a restarted hub still knows its buyers' cards
    hub = await startHub({ schema, dataDir, env });
    try {
      assert.equal((await hub.gateway!.exchange(req(token))).outcome, 'approved');
    } finally {
      await hub.stop();
    }
  });
});
