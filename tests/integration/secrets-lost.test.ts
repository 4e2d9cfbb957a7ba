// Every kit secret besides the token key (tests/integration/token-key-lost.test.ts) as a power cut may
// leave it: missing, empty or torn, detected and named at start (docs/power-cuts.md).
// - keys/device.key: buyer device tokens on phones carry a MAC under it. While devices are recorded it
//   is never replaced: checkout starts, refuses to issue or accept device tokens (DEVICE_KEY_LOST, 503,
//   nothing changes), staff keep selling, /v1/status `secrets` and `popkit status` say so; restoring
//   the key brings the issued tokens back.
// - keys/admin.token: nothing is sealed with it, so a damaged one is replaced, and the status says so.
// - the operator's way out without a backup: POPKIT_DEVICE_KEY_LOST=replace, POPKIT_TOKEN_KEY_LOST=replace.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { renderStatus } from '../../cli/commands/status.ts';
import { kitStatusView } from '../../core/contracts/kit-status.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { deviceCount } from '../../core/store/devices.ts';
import { tokenCount } from '../../core/store/index.ts';
import { openTokenVault } from '../../core/token-key.ts';
import { createCheckout } from '../../services/checkout/main.ts';
import { OutboxPump } from '../../services/sync/pump.ts';
import { auth, inspectStore, kitEnv, smallCatalog, tempDir } from '../support/checkout.ts';

type Kit = Awaited<ReturnType<typeof createCheckout>>;
const open = new Set<Kit>();
after(async () => {
  for (const k of open) await k.close().catch(() => {});
});

async function start(dataDir: string, env: Record<string, string | undefined> = {}): Promise<Kit> {
  const full = kitEnv(dataDir);
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete full[k];
    else full[k] = v;
  }
  const kit = await createCheckout(full);
  open.add(kit);
  return kit;
}

async function stop(kit: Kit): Promise<void> {
  open.delete(kit);
  await kit.close();
}

const status = async (kit: Kit) =>
  (await kit.app.inject({ method: 'GET', url: '/v1/status', headers: auth })).json();

const secretOf = (s: { secrets?: Array<{ file: string }> }, file: string) =>
  s.secrets?.find((k) => k.file === file) as
    | { file: string; state: string; replaced?: string; refused?: string; message?: string }
    | undefined;

const buyerCard = (kit: Kit, device: string) =>
  kit.app.inject({
    method: 'POST',
    url: '/v1/orders',
    remoteAddress: '127.0.0.31',
    headers: { 'x-popkit-device': device },
    payload: {
      lines: [{ sku: 'A', qty: 1 }],
      payment: { method: 'token', token: 'tok_sandbox_approve_0001' },
    },
  });

/** A kit with a catalog and one buyer device issued (the device depends on the key), closed. */
async function kitWithDevice(): Promise<{ dataDir: string; key: Buffer; device: string }> {
  const dataDir = tempDir('popkit-secrets-lost-');
  const kit = await start(dataDir);
  const put = await kit.app.inject({
    method: 'PUT',
    url: '/v1/catalog',
    headers: auth,
    payload: smallCatalog({ A: 100 }),
  });
  assert.equal(put.statusCode, 200, put.body);
  const issued = await kit.app.inject({
    method: 'POST',
    url: '/v1/devices',
    remoteAddress: '127.0.0.30',
    payload: {},
  });
  assert.equal(issued.statusCode, 201, issued.body);
  const device = issued.json().device as string;
  assert.equal((await buyerCard(kit, device)).statusCode, 201, 'the token works before the cut');
  await stop(kit);
  return { dataDir, key: fs.readFileSync(dataLayout(dataDir).deviceKey), device };
}

const damages: Array<[string, (file: string) => void]> = [
  ['missing', (f) => fs.rmSync(f)],
  ['empty', (f) => fs.writeFileSync(f, Buffer.alloc(32))],
  ['torn', (f) => fs.writeFileSync(f, Buffer.alloc(9, 7))],
];

for (const [state, damage] of damages) {
  test(`device key ${state} while devices depend on it: device tokens refused, staff sell, status names it; restoring heals`, async () => {
    const { dataDir, key, device } = await kitWithDevice();
    const file = dataLayout(dataDir).deviceKey;
    damage(file);
    const before = fs.existsSync(file) ? fs.readFileSync(file) : undefined;

    const kit = await start(dataDir);
    assert.deepEqual(
      fs.existsSync(file) ? fs.readFileSync(file) : undefined,
      before,
      'the key file is untouched',
    );
    const s = await status(kit);
    assert.ok(kitStatusView.check(s), kitStatusView.errors(s).join('; '));
    const dev = secretOf(s, 'keys/device.key');
    assert.equal(dev?.state, state);
    assert.equal(dev?.refused, 'buyer device tokens');
    assert.ok(dev?.message?.includes(file), dev?.message);
    assert.match(renderStatus(s), /BUYER DEVICE TOKENS REFUSED: .*device\.key/);
    assert.deepEqual(s.tokenKey, { state: 'ok', cardSales: true }, 'the token key is not concerned');

    const stored = await inspectStore(dataDir);
    const devicesBefore = deviceCount(kit.store);
    const issue = await kit.app.inject({
      method: 'POST',
      url: '/v1/devices',
      remoteAddress: '127.0.0.32',
      payload: {},
    });
    assert.equal(issue.statusCode, 503, issue.body);
    assert.equal(issue.json().error.code, 'DEVICE_KEY_LOST');
    assert.equal(deviceCount(kit.store), devicesBefore, 'no device recorded');
    const buy = await buyerCard(kit, device);
    assert.equal(buy.statusCode, 503, buy.body);
    assert.equal(buy.json().error.code, 'DEVICE_KEY_LOST');
    assert.deepEqual(await inspectStore(dataDir), stored, 'the refusals changed nothing');

    const cash = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: auth,
      payload: { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } },
    });
    assert.equal(cash.statusCode, 201, cash.body);
    await stop(kit);

    // recovery: the key back from a backup (docs/power-cuts.md), restart: the phone's token works again
    fs.writeFileSync(file, key, { mode: 0o600 });
    const healed = await start(dataDir);
    const ok = await status(healed);
    assert.deepEqual(secretOf(ok, 'keys/device.key'), { file: 'keys/device.key', state: 'ok' });
    assert.doesNotMatch(renderStatus(ok), /REFUSED/);
    assert.equal((await buyerCard(healed, device)).statusCode, 201);
    await stop(healed);
  });
}

test('a torn or empty admin token is replaced, and the status and `popkit status` say so', async () => {
  const dataDir = tempDir('popkit-secrets-admin-');
  const noEnv = { POPKIT_ADMIN_TOKEN: undefined };
  const first = await start(dataDir, noEnv);
  assert.equal(first.adminTokenCreated, true);
  const old = first.adminToken;
  const clean = await first.app.inject({
    method: 'GET',
    url: '/v1/status',
    headers: { authorization: `Bearer ${old}` },
  });
  assert.deepEqual(secretOf(clean.json(), 'keys/admin.token'), { file: 'keys/admin.token', state: 'ok' });
  await stop(first);

  const file = dataLayout(dataDir).adminToken;
  fs.writeFileSync(file, old.slice(0, 5), { mode: 0o600 });
  const kit = await start(dataDir, noEnv);
  assert.equal(kit.adminTokenCreated, true, 'announced as new');
  assert.notEqual(kit.adminToken, old);
  assert.equal(fs.readFileSync(file, 'utf8').trim(), kit.adminToken);
  assert.ok(fs.readdirSync(path.dirname(file)).some((f) => f.startsWith('admin.token.damaged-')));
  const s = (
    await kit.app.inject({
      method: 'GET',
      url: '/v1/status',
      headers: { authorization: `Bearer ${kit.adminToken}` },
    })
  ).json();
  assert.ok(kitStatusView.check(s), kitStatusView.errors(s).join('; '));
  const admin = secretOf(s, 'keys/admin.token');
  assert.equal(admin?.state, 'ok');
  assert.equal(admin?.replaced, 'torn');
  assert.match(renderStatus(s), /key replaced: keys\/admin\.token was torn/);
  await stop(kit);
});

test('POPKIT_DEVICE_KEY_LOST=replace: the operator takes a new device key; old tokens fail, phones take new ones', async () => {
  const { dataDir, device } = await kitWithDevice();
  const file = dataLayout(dataDir).deviceKey;
  fs.rmSync(file);
  const kit = await start(dataDir, { POPKIT_DEVICE_KEY_LOST: 'replace' });
  assert.equal(fs.readFileSync(file).length, 32, 'a new key');
  const s = await status(kit);
  assert.ok(kitStatusView.check(s), kitStatusView.errors(s).join('; '));
  const dev = secretOf(s, 'keys/device.key');
  assert.equal(dev?.state, 'ok');
  assert.match(dev?.message ?? '', /replaced by a new key although 1 buyer devices depended on it/);
  assert.match(renderStatus(s), /key replaced: .*device\.key/);
  const old = await buyerCard(kit, device);
  assert.equal(old.statusCode, 400, old.body);
  assert.equal(old.json().error.code, 'DEVICE_INVALID', 'the buyer page takes a new token on this code');
  const fresh = await kit.app.inject({
    method: 'POST',
    url: '/v1/devices',
    remoteAddress: '127.0.0.33',
    payload: {},
  });
  assert.equal(fresh.statusCode, 201, fresh.body);
  assert.equal((await buyerCard(kit, fresh.json().device)).statusCode, 201);
  await stop(kit);
});

test('POPKIT_TOKEN_KEY_LOST=replace: card sales resume; the orders sealed under the lost key go to the hub as invalid', async () => {
  const dataDir = tempDir('popkit-secrets-tokenkey-');
  const first = await start(dataDir);
  assert.equal(
    (
      await first.app.inject({
        method: 'PUT',
        url: '/v1/catalog',
        headers: auth,
        payload: smallCatalog({ A: 100 }),
      })
    ).statusCode,
    200,
  );
  const card = {
    lines: [{ sku: 'A', qty: 1 }],
    payment: { method: 'token', token: 'tok_sandbox_approve_0001' },
  };
  const sealedOrder = await first.app.inject({
    method: 'POST',
    url: '/v1/orders',
    headers: auth,
    payload: card,
  });
  assert.equal(sealedOrder.statusCode, 201, sealedOrder.body);
  await stop(first);
  const file = dataLayout(dataDir).tokenKey;
  fs.writeFileSync(file, Buffer.alloc(3, 1), { mode: 0o600 });

  // the default refuses; the operator's choice replaces
  const refusing = await start(dataDir);
  assert.equal((await status(refusing)).tokenKey.cardSales, false);
  await stop(refusing);
  const kit = await start(dataDir, { POPKIT_TOKEN_KEY_LOST: 'replace' });
  assert.equal(fs.readFileSync(file).length, 32, 'a new key');
  const s = await status(kit);
  assert.ok(kitStatusView.check(s), kitStatusView.errors(s).join('; '));
  assert.equal(s.tokenKey?.cardSales, true);
  const tk = secretOf(s, 'keys/token.key');
  assert.equal(tk?.replaced, 'torn');
  assert.match(tk?.message ?? '', /although sealed card tokens depended on it/);
  assert.match(renderStatus(s), /key replaced: .*token\.key/);
  const sold = await kit.app.inject({ method: 'POST', url: '/v1/orders', headers: auth, payload: card });
  assert.equal(sold.statusCode, 201, sold.body);

  // sync (a fresh start reads the new key): the old order's token cannot open, so it goes as invalid
  // (the hub records it declined: collect another way); the new order's token opens
  const { vault } = openTokenVault(file, undefined, () => tokenCount(kit.store) > 0);
  const sent: string[] = [];
  new OutboxPump(
    kit.store,
    vault,
    { ready: () => true, send: (_topic, payload) => sent.push(payload) },
    { kitId: 'kit-x', batchMax: 50, batchBytes: 256 * 1024, window: 4, ackTimeoutMs: 30_000 },
  ).pump();
  const entries = sent.flatMap(
    (p) => JSON.parse(p).entries as Array<{ lane: string; id: string; token?: string; tokenError?: string }>,
  );
  const byId = new Map(entries.filter((e) => e.lane === 'orders').map((e) => [e.id, e]));
  assert.equal(byId.get(sealedOrder.json().id)?.tokenError, 'invalid');
  assert.equal(byId.get(sold.json().id)?.token, 'tok_sandbox_approve_0001');
  await stop(kit);
});
