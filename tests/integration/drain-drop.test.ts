// The drain the issue describes (docs/security.md#drain-proofing), OFFLINE: a script on the venue
// Wi-Fi with made-up card tokens against a 50-unit scarce drop, alongside honest buyers (a device and
// an address each). Offline the script gets at most its allowance accepted per device and its other
// orders are held; then a real hub link comes up (private Mosquitto, PostgreSQL schema of its own,
// the SandboxGateway, which declines tokens containing `decline`): the declines release the held
// units at once, honest buyers get the rest, and the drop report accounts for every unit.
// The ONLINE variant (the hub authorizes before the 201) is the authorizer's own test.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { readAllStock } from '../../core/store/index.ts';
import { TokenVault } from '../../core/token-vault.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import { auth, startCheckout } from '../support/checkout.ts';
import {
  dropSchema,
  type Mosquitto,
  mosquitto,
  PG_URL,
  startHub,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_drain').replace(/-/g, '_');
const kitId = uniqueId('kit-drain');
const STOCK = 50;
const HONEST = 44;
const SCRIPT_ADDRESSES = ['127.0.0.66', '127.0.0.67'];
const ISSUE_PER_MIN = 3;
const ALLOWANCE = 1;

const CATALOG = {
  version: 1,
  eventId: uniqueId('ev-drop'),
  currency: 'EUR',
  items: [
    // two per device: one on the allowance, the next one held
    {
      sku: 'EDITION',
      name: 'Numbered edition',
      priceCents: 4000,
      stock: STOCK,
      scarce: true,
      maxPerOrder: 2,
    },
    { sku: 'TEE', name: 'Tour tee', priceCents: 2000, stock: 500 },
  ],
};

type Kit = Awaited<ReturnType<typeof startCheckout>>;
interface Answer {
  status: number;
  code?: string;
  id?: string;
  orderStatus?: string;
}

let kit: Kit;
let broker: Mosquitto | undefined;
let hub: HubService | undefined;
let sync: SyncService | undefined;

function order(ip: string, token: string, device?: string): Promise<Answer> {
  return kit.app
    .inject({
      method: 'POST',
      url: '/v1/orders',
      remoteAddress: ip,
      headers: device ? { 'x-popkit-device': device } : {},
      payload: { lines: [{ sku: 'EDITION', qty: 1 }], payment: { method: 'token', token } },
    })
    .then((res) => {
      const body = res.json();
      return {
        status: res.statusCode,
        ...(body.error ? { code: body.error.code } : { id: body.id, orderStatus: body.status }),
      };
    });
}

async function device(ip: string): Promise<string | undefined> {
  const res = await kit.app.inject({ method: 'POST', url: '/v1/devices', remoteAddress: ip, payload: {} });
  return res.statusCode === 201 ? (res.json().device as string) : undefined;
}

async function report() {
  const res = await kit.app.inject({ method: 'GET', url: '/v1/drops/report', headers: auth });
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

describe('a script drains a 50-unit drop offline with made-up tokens', () => {
  before(async () => {
    kit = await startCheckout({
      POPKIT_KIT_ID: kitId,
      POPKIT_BUYER_OFFLINE_ALLOWANCE: String(ALLOWANCE),
      POPKIT_DEVICE_ISSUE_PER_MIN: String(ISSUE_PER_MIN),
    });
    const res = await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: CATALOG });
    assert.equal(res.statusCode, 200, res.body);
  });

  after(async () => {
    await sync?.stop();
    await hub?.stop();
    await broker?.stop();
    await kit?.kit.close();
    await dropSchema(schema);
  });

  const script: { devices: string[]; answers: Answer[] } = { devices: [], answers: [] };
  const honest: Array<{ ip: string; device: string; token: string; answer?: Answer }> = [];

  test('offline: the script gets at most its allowance per device, the rest held; honest buyers are served', async (t) => {
    // the buyer page asks for its device token when it opens, before the drop
    for (let i = 0; i < HONEST; i++) {
      const ip = `127.0.1.${i + 1}`;
      const d = await device(ip);
      assert.ok(d, `honest device ${i}`);
      honest.push({ ip, device: d, token: `tok_fan_${i}_4242` });
    }
    // the script mints as many devices as it can from its addresses
    for (const ip of SCRIPT_ADDRESSES) {
      for (let i = 0; i < 10; i++) {
        const d = await device(ip);
        if (d) script.devices.push(d);
      }
    }
    assert.equal(
      script.devices.length,
      SCRIPT_ADDRESSES.length * ISSUE_PER_MIN,
      'device issuing is rate limited',
    );

    // the drop opens: the script fires everything at once, the fans arrive in the same second
    const fired: Array<Promise<Answer>> = [];
    let n = 0;
    for (let round = 0; round < 4; round++) {
      script.devices.forEach((d, i) => {
        const ip = SCRIPT_ADDRESSES[i % SCRIPT_ADDRESSES.length] as string;
        fired.push(order(ip, `tok_made_up_${n++}_decline_stolen`, d));
      });
      // and without a device token at all
      fired.push(order(SCRIPT_ADDRESSES[0] as string, `tok_made_up_${n++}_decline_stolen`));
    }
    const fans = honest.map((h) => order(h.ip, h.token, h.device).then((a) => (h.answer = a)));
    script.answers = await Promise.all(fired);
    await Promise.all(fans);

    const accepted = script.answers.filter((a) => a.orderStatus === 'accepted');
    const held = script.answers.filter((a) => a.orderStatus === 'held');
    const codes = script.answers.filter((a) => a.code).map((a) => a.code);
    assert.ok(accepted.length <= ALLOWANCE * script.devices.length, `accepted ${accepted.length}`);
    assert.equal(accepted.length + held.length, 2 * script.devices.length, 'two shares a device, no more');
    assert.ok(held.length >= script.devices.length, 'the rest are held');
    assert.ok(
      codes.every((c) => c === 'DEVICE_SHARE_TAKEN' || c === 'DEVICE_INVALID' || c === 'SOLD_OUT'),
      codes.join(),
    );
    assert.ok(codes.includes('DEVICE_INVALID'), 'no device, no scarce card order');

    const served = honest.filter((h) => h.answer?.orderStatus === 'accepted').length;
    const scriptUnits = accepted.length + held.length;
    assert.equal(
      served,
      Math.min(HONEST, STOCK - scriptUnits),
      'every unit the script does not hold goes to a fan',
    );
    t.diagnostic(
      `offline: script ${script.devices.length} devices, ${script.answers.length} orders: ${accepted.length} accepted (allowance), ${held.length} held, ${codes.length} refused; fans served ${served}/${HONEST}`,
    );
    const r = await report();
    const ed = r.skus.find((s: { sku: string }) => s.sku === 'EDITION');
    assert.equal(r.balanced, true, JSON.stringify(r));
    assert.equal(ed.startStock, STOCK);
    assert.equal(ed.held, held.length);
    assert.equal(ed.sold, served + accepted.length);
    assert.equal(ed.remaining, STOCK - served - scriptUnits);
    assert.equal(ed.devices.maxUnits, 2);
    assert.equal(ed.devices.count, served + script.devices.length);
  });

  test('the hub declines the made-up tokens: held units return at once, the fans get the rest, every unit accounted for', async (t) => {
    const heldIds = script.answers.filter((a) => a.orderStatus === 'held').map((a) => a.id as string);
    const allowanceIds = script.answers
      .filter((a) => a.orderStatus === 'accepted')
      .map((a) => a.id as string);
    broker = await mosquitto();
    hub = await startHub({
      schema,
      gateway: new SandboxGateway(),
      brokerUrl: broker.url,
      env: { POPKIT_HUB_GATEWAY_RETRY_S: '1' },
    });
    const keyFile = path.join(kit.dataDir, 'keys', 'token.key');
    const link: TestKit = {
      kitId,
      dataDir: kit.dataDir,
      store: kit.kit.store,
      vault: new TokenVault(fs.readFileSync(keyFile)),
    } as TestKit;
    sync = startSync(link, broker.url, {
      POPKIT_HUB_PUBLIC_KEY: fs.readFileSync(hub.publicKeyFile, 'utf8'),
      POPKIT_EVENT_ID: CATALOG.eventId,
    });
    const store = kit.kit.store;
    await waitFor(
      () => heldIds.every((id) => store.orders.get(id)?.status === 'released'),
      30_000,
      'the script held orders released by the declines',
    );
    for (const id of heldIds) {
      const seen = (await kit.app.inject({ method: 'GET', url: `/v1/orders/${id}` })).json();
      assert.equal(seen.status, 'released');
      assert.equal(seen.syncState, 'declined');
      assert.equal(seen.declineReason, 'stolen');
      assert.equal(seen.hold.releaseReason, 'declined: stolen');
    }
    // the allowance orders were accepted as before: declined, the host hears of it
    await waitFor(
      () => allowanceIds.every((id) => store.orders.get(id)?.syncState === 'declined'),
      30_000,
      'allowance declines',
    );
    const status = (await kit.app.inject({ method: 'GET', url: '/v1/status', headers: auth })).json();
    const noticed = new Set(status.declines.map((d: { orderId: string }) => d.orderId));
    for (const id of allowanceIds) assert.ok(noticed.has(id), 'the host is told to collect another way');
    for (const id of heldIds) assert.ok(!noticed.has(id), 'a released hold has nothing to collect');

    // the fans who met SOLD_OUT try again and get the returned units
    const waiting = honest.filter((h) => h.answer?.code === 'SOLD_OUT');
    assert.equal(waiting.length, Math.max(0, HONEST - (STOCK - 2 * script.devices.length)));
    const retry = await Promise.all(waiting.map((h) => order(h.ip, h.token, h.device)));
    const got = retry.filter((a) => a.orderStatus === 'accepted').length;
    assert.equal(got, Math.min(waiting.length, heldIds.length));

    const r = await report();
    const ed = r.skus.find((s: { sku: string }) => s.sku === 'EDITION');
    assert.equal(r.balanced, true, JSON.stringify(r));
    assert.equal(ed.released, heldIds.length);
    assert.equal(ed.held, 0);
    const fans = honest.length - waiting.length + got;
    assert.equal(ed.sold, fans + allowanceIds.length);
    assert.equal(ed.unpaid, allowanceIds.length, 'the allowance orders the hub declined');
    assert.equal(ed.startStock, ed.remaining + ed.sold + ed.held + ed.reserved);
    assert.equal(readAllStock(store)['EDITION'], ed.remaining);
    assert.equal(fans, Math.min(HONEST, STOCK - allowanceIds.length), 'honest buyers got the rest');
    t.diagnostic(`after the declines: ${JSON.stringify(ed)}`);

    // the hub's view: each released hold has its `released` event, behind its order
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      await waitFor(
        async () => {
          const res = await c.query<{ n: string }>(
            `SELECT count(*) AS n FROM "${schema}".order_events WHERE kit_id = $1 AND type = 'released'`,
            [kitId],
          );
          return Number(res.rows[0]?.n) === heldIds.length;
        },
        30_000,
        'released events in the ledger',
      );
    } finally {
      await c.end();
    }
  });
});
