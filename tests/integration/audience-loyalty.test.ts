// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// The loyalty_<tier> segment's source, through a real checkout: a consenting device that pays with
// loyalty passes keeps the highest tier it used (and its event, for new vs returning); a device
// without consent keeps nothing, though its pass works the same.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, test } from 'node:test';
import { encodePass, type PassPayloadT } from '../../core/contracts/loyalty.ts';
import { readAudienceKey, readConsent } from '../../core/store/index.ts';
import { CONSENT_TEXT_VERSION } from '../../services/checkout/audience/consent.ts';
import { auth, startCheckout } from '../support/checkout.ts';

const hub = generateKeyPairSync('ed25519');
const EVENT = 'ev-aud-loyal';
const CATALOG = {
  version: 1,
  eventId: EVENT,
  currency: 'EUR',
  creatorId: 'creator-a',
  items: [{ sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 1000 }],
};
const nowS = () => Math.floor(Date.now() / 1000);
let serial = 0;
const pass = (tier: string) => {
  const p: PassPayloadT = {
    v: 1,
    id: `apass-${String(++serial).padStart(6, '0')}`,
    holder: 'M-77',
    tier,
    rule: { kind: 'percent', percent: 10, capCents: 1000 },
    scope: { creatorId: 'creator-a', eventIds: [EVENT] },
    uses: 1,
    issuedAt: nowS() - 60,
    expiresAt: nowS() + 3600,
  };
  return encodePass(hub.privateKey, p);
};

type Kit = Awaited<ReturnType<typeof startCheckout>>;
let kit: Kit;
before(async () => {
  kit = await startCheckout({
    POPKIT_HUB_PUBLIC_KEY: hub.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  });
  assert.equal(
    (await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: CATALOG })).statusCode,
    200,
  );
  assert.equal(
    (await kit.app.inject({ method: 'POST', url: '/v1/event/start', headers: auth, payload: {} })).statusCode,
    200,
  );
  for (let i = 0; i < 100 && !readAudienceKey(kit.kit.store); i++)
    await new Promise((r) => setTimeout(r, 50));
});
after(() => kit.kit.close());

async function device(ip: string) {
  const res = await kit.app.inject({ method: 'POST', url: '/v1/devices', remoteAddress: ip, payload: {} });
  assert.equal(res.statusCode, 201, res.body);
  return { token: res.json().device as string, id: res.json().id as string };
}
async function buyWith(ip: string, token: string, loyaltyPass: string) {
  const res = await kit.app.inject({
    method: 'POST',
    url: '/v1/orders',
    remoteAddress: ip,
    headers: { 'x-popkit-device': token, 'user-agent': 'Phone L' },
    payload: {
      lines: [{ sku: 'TEE', qty: 1 }],
      payment: { method: 'token', token: 'tok_sandbox_approve_0001' },
      loyaltyPass,
    },
  });
  assert.equal(res.statusCode, 201, res.body);
  assert.ok(res.json().discount, 'the pass applied');
}

test('a consenting device keeps the highest tier it used; one without consent keeps nothing', async () => {
  const yes = await device('10.60.0.1');
  const post = await kit.app.inject({
    method: 'POST',
    url: '/v1/consent',
    remoteAddress: '10.60.0.1',
    headers: { 'x-popkit-device': yes.token },
    payload: { granted: true, textVersion: CONSENT_TEXT_VERSION },
  });
  assert.equal(post.statusCode, 200, post.body);
  await buyWith('10.60.0.1', yes.token, pass('silver'));
  assert.equal(readConsent(kit.kit.store, yes.id)?.loyaltyTier, 'silver');
  await buyWith('10.60.0.1', yes.token, pass('gold'));
  await buyWith('10.60.0.1', yes.token, pass('bronze'));
  const rec = readConsent(kit.kit.store, yes.id);
  assert.equal(rec?.loyaltyTier, 'gold');
  assert.deepEqual(rec?.events, [EVENT]);
  assert.equal(rec?.links.length, 3);

  const no = await device('10.60.0.2');
  await buyWith('10.60.0.2', no.token, pass('platinum'));
  assert.equal(readConsent(kit.kit.store, no.id), undefined);
});
