// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Consent through a real checkout (real LMDB, app.inject): POST/GET/DELETE /v1/consent with the buyer
// page's device token; with consent, an order that device places links the viewer id of that request
// (keyed hash of address + user agent under the event's key) in the order's own transaction; without
// it nothing is linked; withdrawal deletes the links at once. Hostile bodies and tokens are refused
// with a coded error and change nothing; answers carry no ids.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dataLayout } from '../../core/data-dir.ts';
import { openKitStore, readAudienceKey, readConsent, readViewer } from '../../core/store/index.ts';
import { CONSENT_TEXT_VERSION } from '../../services/checkout/audience/consent.ts';
import { auth, DEMO_CATALOG, startCheckout } from '../support/checkout.ts';

type Kit = Awaited<ReturnType<typeof startCheckout>>;
let kit: Kit;
const RATE = 8;
const UA = 'Mozilla/5.0 (consent-test-phone)';

before(async () => {
  kit = await startCheckout({
    POPKIT_CONSENT_RATE_PER_MIN: String(RATE),
    POPKIT_DEVICE_ISSUE_PER_MIN: '100',
  });
  const cat = await kit.app.inject({
    method: 'PUT',
    url: '/v1/catalog',
    headers: auth,
    payload: DEMO_CATALOG,
  });
  assert.equal(cat.statusCode, 200, cat.body);
  const ev = await kit.app.inject({ method: 'POST', url: '/v1/event/start', headers: auth, payload: {} });
  assert.equal(ev.statusCode, 200, ev.body);
  // the tracker's tick makes the event's key (once a second)
  for (let i = 0; i < 100 && !readAudienceKey(kit.kit.store); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.ok(readAudienceKey(kit.kit.store), 'the event key was made');
});
after(() => kit.kit.close().catch(() => undefined));

let ipSeq = 10;
const nextIp = () => `10.50.0.${ipSeq++}`;

async function device(ip: string): Promise<{ token: string; id: string }> {
  const res = await kit.app.inject({ method: 'POST', url: '/v1/devices', remoteAddress: ip, payload: {} });
  assert.equal(res.statusCode, 201, res.body);
  return { token: res.json().device, id: res.json().id };
}

const consent = (
  method: 'GET' | 'POST' | 'DELETE',
  ip: string,
  token: string | undefined,
  payload?: unknown,
) =>
  kit.app.inject({
    method,
    url: '/v1/consent',
    remoteAddress: ip,
    headers: {
      ...(token === undefined ? {} : { 'x-popkit-device': token }),
      ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(payload === undefined
      ? {}
      : { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) }),
  });

async function order(ip: string, token: string) {
  const res = await kit.app.inject({
    method: 'POST',
    url: '/v1/orders',
    remoteAddress: ip,
    headers: { 'x-popkit-device': token, 'user-agent': UA },
    payload: {
      lines: [{ sku: 'TEE-BLK-S', qty: 1 }],
      payment: { method: 'token', token: 'tok_sandbox_approve_0001' },
    },
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().id as string;
}

const viewerId = (ip: string, ua: string) => {
  const k = readAudienceKey(kit.kit.store);
  assert.ok(k);
  return createHmac('sha256', Buffer.from(k.key, 'base64url'))
    .update(`${ip}\n${ua}`)
    .digest()
    .subarray(0, 16)
    .toString('base64url');
};

describe('consent', () => {
  test('granted: the order links the viewer id of that request; the answer carries no ids', async () => {
    const ip = nextIp();
    const dev = await device(ip);
    const before = await consent('GET', ip, dev.token);
    assert.equal(before.statusCode, 200, before.body);
    assert.deepEqual(before.json(), {
      granted: null,
      textVersion: null,
      at: null,
      linkedOrders: 0,
      currentTextVersion: CONSENT_TEXT_VERSION,
    });
    const res = await consent('POST', ip, dev.token, { granted: true, textVersion: CONSENT_TEXT_VERSION });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.deepEqual(Object.keys(body).sort(), [
      'at',
      'currentTextVersion',
      'granted',
      'linkedOrders',
      'textVersion',
    ]);
    assert.equal(body.granted, true);
    assert.equal(body.textVersion, CONSENT_TEXT_VERSION);
    assert.ok(!Number.isNaN(Date.parse(body.at)));
    assert.ok(!res.body.includes(dev.id), 'no device id in the answer');
    const orderId = await order(ip, dev.token);
    const rec = readConsent(kit.kit.store, dev.id);
    assert.deepEqual(rec?.links, [{ viewerId: viewerId(ip, UA), orderId, eventId: DEMO_CATALOG.eventId }]);
    assert.deepEqual(rec?.events, [DEMO_CATALOG.eventId]);
    const after = await consent('GET', ip, dev.token);
    assert.equal(after.json().linkedOrders, 1);
    assert.ok(!after.body.includes(orderId) && !after.body.includes(viewerId(ip, UA)));
    // withdrawal deletes the links at once
    const del = await consent('DELETE', ip, dev.token);
    assert.equal(del.statusCode, 200, del.body);
    assert.equal(del.json().granted, false);
    assert.equal(del.json().linkedOrders, 0);
    const gone = readConsent(kit.kit.store, dev.id);
    assert.deepEqual(gone?.links, []);
    assert.deepEqual(gone?.events, []);
    assert.equal(gone?.granted, false);
    // and later orders are not linked
    await order(ip, dev.token);
    assert.deepEqual(readConsent(kit.kit.store, dev.id)?.links, []);
  });

  test('declined or never asked: nothing is linked', async () => {
    const ip = nextIp();
    const declined = await device(ip);
    const res = await consent('POST', ip, declined.token, {
      granted: false,
      textVersion: CONSENT_TEXT_VERSION,
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().granted, false);
    await order(ip, declined.token);
    assert.deepEqual(readConsent(kit.kit.store, declined.id)?.links, []);
    const silent = await device(ip);
    await order(ip, silent.token);
    assert.equal(readConsent(kit.kit.store, silent.id), undefined);
  });

  test('hostile bodies and tokens: a coded 4xx, and nothing changes', async () => {
    const ip = nextIp();
    const dev = await device(ip);
    const ok = await consent('POST', ip, dev.token, { granted: true, textVersion: 'v1' });
    assert.equal(ok.statusCode, 200, ok.body);
    const state = () => JSON.stringify(readConsent(kit.kit.store, dev.id));
    const was = state();
    const bodies: unknown[] = [
      { granted: true, textVersion: 'v1\u0000' },
      { granted: true, textVersion: 'x'.repeat(33) },
      { granted: 'yes', textVersion: 'v1' },
      { granted: 1, textVersion: 'v1' },
      { granted: false, textVersion: ['v1'] },
      { granted: false },
      { textVersion: 'v1' },
      { granted: false, textVersion: 'v1', extra: 1 },
      '{"granted":false,"textVersion":"v1","__proto__":{"granted":true}}',
      { granted: false, textVersion: '<script>' },
      null,
      [],
      'not json',
    ];
    for (const b of bodies) {
      const res = await consent('POST', nextIp(), dev.token, b ?? 'null');
      assert.equal(res.statusCode, 400, `${JSON.stringify(b)}: ${res.body}`);
      assert.match(res.json().error.code, /^[A-Z_]+$/);
    }
    const huge = await consent('POST', nextIp(), dev.token, {
      granted: false,
      textVersion: 'v1',
      pad: 'x'.repeat(70_000),
    });
    assert.equal(huge.statusCode, 413, huge.body);
    const [, id, mac] = dev.token.split('.');
    const badTokens = [
      undefined,
      '',
      'pkd1.short.mac',
      `pkd1.${id}.${'A'.repeat(43)}`, // forged MAC
      `pkd1.${'B'.repeat(22)}.${mac}`, // another id under this one's MAC
      `${dev.token}\u0000`,
      `${dev.token}, ${dev.token}`,
    ];
    for (const t of badTokens) {
      const res = await consent('POST', nextIp(), t, { granted: false, textVersion: 'v1' });
      assert.equal(res.statusCode, 400, `${JSON.stringify(t)}: ${res.body}`);
      assert.ok(['DEVICE_INVALID', 'VALIDATION', 'BAD_REQUEST'].includes(res.json().error.code), res.body);
      const del = await consent('DELETE', nextIp(), t);
      assert.equal(del.statusCode, 400, del.body);
    }
    assert.equal(state(), was, 'nothing changed');
    // a replayed grant is the same answer again (no duplicate, no second record)
    const again = await consent('POST', nextIp(), dev.token, { granted: true, textVersion: 'v1' });
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().granted, true);
    assert.equal(readConsent(kit.kit.store, dev.id)?.links.length, 0);
  });

  test('rate limited per address like other buyer routes', async () => {
    const ip = nextIp();
    const dev = await device(ip);
    const codes: number[] = [];
    for (let i = 0; i < RATE + 2; i++)
      codes.push((await consent('POST', ip, dev.token, { granted: true, textVersion: 'v1' })).statusCode);
    assert.deepEqual(codes.slice(0, RATE), Array(RATE).fill(200));
    const last = await consent('POST', ip, dev.token, { granted: true, textVersion: 'v1' });
    assert.equal(last.statusCode, 429);
    assert.equal(last.json().error.code, 'TOO_MANY_REQUESTS');
    // another address is not held back
    assert.equal(
      (await consent('POST', nextIp(), dev.token, { granted: true, textVersion: 'v1' })).statusCode,
      200,
    );
  });
});

describe('end to end through checkout (main.ts wiring)', () => {
  test('a /live viewer who consents and buys: the link names the viewer record /live made', async () => {
    const hls = dataLayout(kit.dataDir).hls;
    fs.mkdirSync(hls, { recursive: true });
    fs.writeFileSync(
      path.join(hls, 'index.m3u8'),
      '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg1.ts\n',
    );
    fs.writeFileSync(path.join(hls, 'seg1.ts'), Buffer.from([0x47, 0, 0, 0]));
    const ip = nextIp();
    for (const file of ['index.m3u8', 'seg1.ts']) {
      const res = await kit.app.inject({
        method: 'GET',
        url: `/live/${file}`,
        remoteAddress: ip,
        headers: { 'user-agent': UA },
      });
      assert.equal(res.statusCode, 200, res.body);
    }
    const dev = await device(ip);
    assert.equal(
      (await consent('POST', ip, dev.token, { granted: true, textVersion: CONSENT_TEXT_VERSION })).statusCode,
      200,
    );
    const orderId = await order(ip, dev.token);
    const link = readConsent(kit.kit.store, dev.id)?.links[0];
    assert.equal(link?.orderId, orderId);
    // closing checkout writes what the tracker holds; the record is there under the linked id
    const dataDir = kit.dataDir;
    await kit.kit.close();
    const store = openKitStore(dataDir);
    try {
      const rec = readViewer(store, link?.viewerId ?? '');
      assert.ok(rec, 'the viewer /live counted is the one the order links');
      assert.equal(rec.eventId, DEMO_CATALOG.eventId);
      assert.equal(rec.inVenue, true);
      const bytes = fs.readFileSync(store.file);
      assert.equal(bytes.indexOf(Buffer.from('consent-test-phone')), -1, 'no user agent in the store');
    } finally {
      await store.close();
    }
  });
});
