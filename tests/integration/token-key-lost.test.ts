// The device token key at start (core/token-key.ts): sealed payment tokens in LMDB depend on it, so
// when it is missing, empty or torn it is never silently replaced. Checkout keeps selling for cash,
// refuses card sales (CARD_UNAVAILABLE, nothing changes), and /v1/status says why; restoring the key
// brings card sales back. With nothing depending on it, a lost key is simply made anew. A key file
// others may read is refused. Under balena a generated admin token is not printed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { renderStatus } from '../../cli/commands/status.ts';
import { kitStatusView } from '../../core/contracts/kit-status.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { KitError } from '../../core/errors.ts';
import { openKitStore, tokenCount } from '../../core/store/index.ts';
import { openTokenVault } from '../../core/token-key.ts';
import { createCheckout } from '../../services/checkout/main.ts';
import { OutboxPump } from '../../services/sync/pump.ts';
import { auth, inspectStore, kitEnv, spawnCheckout, startCheckoutWithCatalog } from '../support/checkout.ts';
import { freePort } from '../support/net.ts';

const cash = { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } };
const card = {
  lines: [{ sku: 'A', qty: 1 }],
  payment: { method: 'token', token: 'tok_sandbox_approve_0001' },
};

type Kit = Awaited<ReturnType<typeof createCheckout>>;
const open: Kit[] = [];
after(async () => {
  for (const k of open) await k.close().catch(() => {});
});

async function restart(dataDir: string): Promise<Kit> {
  const kit = await createCheckout(kitEnv(dataDir));
  open.push(kit);
  return kit;
}

async function close(kit: Kit): Promise<void> {
  open.splice(open.indexOf(kit), 1);
  await kit.close();
}

const post = (kit: Kit, payload: object) =>
  kit.app.inject({ method: 'POST', url: '/v1/orders', headers: auth, payload });

/** A kit with one unsynced card order (a sealed token in LMDB), closed. */
async function kitWithSealedToken(): Promise<{ dataDir: string; key: Buffer }> {
  const { kit, dataDir } = await startCheckoutWithCatalog({ A: 10 });
  const res = await post(kit, card);
  assert.equal(res.statusCode, 201, res.body);
  await kit.close();
  return { dataDir, key: fs.readFileSync(dataLayout(dataDir).tokenKey) };
}

const damages: Array<[string, (file: string) => void]> = [
  ['missing', (f) => fs.rmSync(f)],
  ['empty', (f) => fs.writeFileSync(f, '')],
  ['torn', (f) => fs.writeFileSync(f, Buffer.alloc(11, 5))],
];

for (const [state, damage] of damages) {
  test(`token key ${state} while sealed tokens depend on it: cash sells, card is refused, status says so; restoring it heals`, async () => {
    const { dataDir, key } = await kitWithSealedToken();
    const file = dataLayout(dataDir).tokenKey;
    damage(file);
    const before = fs.existsSync(file) ? fs.readFileSync(file) : undefined;

    const kit = await restart(dataDir);
    assert.deepEqual(
      fs.existsSync(file) ? fs.readFileSync(file) : undefined,
      before,
      'the key file is untouched',
    );
    const status = (await kit.app.inject({ method: 'GET', url: '/v1/status', headers: auth })).json();
    assert.equal(status.tokenKey.state, state);
    assert.equal(status.tokenKey.cardSales, false);
    assert.ok(status.tokenKey.message.includes(file), status.tokenKey.message);
    assert.ok(kitStatusView.check(status), kitStatusView.errors(status).join('; '));
    assert.ok(renderStatus(status).includes(`CARD SALES REFUSED: ${file}`), renderStatus(status));

    const stored = await inspectStore(dataDir);
    const refused = await post(kit, card);
    assert.equal(refused.statusCode, 503, refused.body);
    assert.equal(refused.json().error.code, 'CARD_UNAVAILABLE');
    const unchanged = await inspectStore(dataDir);
    assert.deepEqual(unchanged, stored, 'a refused card sale changes nothing');

    const sold = await post(kit, cash);
    assert.equal(sold.statusCode, 201, sold.body);
    await close(kit);
    const s = await inspectStore(dataDir);
    assert.equal(s.orders.length, 2);
    assert.equal(s.tokens, 1, 'the sealed token is kept for the restored key');

    // recovery: put the key back (docs/security.md), restart
    fs.writeFileSync(file, key, { mode: 0o600 });
    const healed = await restart(dataDir);
    const ok = (await healed.app.inject({ method: 'GET', url: '/v1/status', headers: auth })).json();
    assert.deepEqual(ok.tokenKey, { state: 'ok', cardSales: true });
    assert.doesNotMatch(renderStatus(ok), /CARD SALES REFUSED/);
    assert.equal((await post(healed, card)).statusCode, 201);
    await close(healed);
  });
}

test('with no sealed token depending on it, a lost or torn key is made anew and card sales go on', async () => {
  const { kit, dataDir } = await startCheckoutWithCatalog({ A: 10 });
  assert.equal((await post(kit, cash)).statusCode, 201);
  await kit.close();
  const file = dataLayout(dataDir).tokenKey;
  fs.writeFileSync(file, Buffer.alloc(5, 1));
  const again = await restart(dataDir);
  assert.equal(fs.readFileSync(file).length, 32);
  const status = (await again.app.inject({ method: 'GET', url: '/v1/status', headers: auth })).json();
  assert.equal(status.tokenKey.cardSales, true);
  assert.match(status.tokenKey.message, /torn/);
  assert.equal((await post(again, card)).statusCode, 201);
  await close(again);
});

test('a token key or admin token others may read is refused at start (SECRET_INSECURE)', async () => {
  const { kit, dataDir } = await startCheckoutWithCatalog({ A: 1 });
  await kit.close();
  const layout = dataLayout(dataDir);
  fs.chmodSync(layout.tokenKey, 0o644);
  await assert.rejects(
    createCheckout(kitEnv(dataDir)),
    (e: unknown) =>
      e instanceof KitError && e.code === 'SECRET_INSECURE' && e.message.includes(layout.tokenKey),
  );
  fs.chmodSync(layout.tokenKey, 0o600);
  const env = kitEnv(dataDir);
  delete env['POPKIT_ADMIN_TOKEN'];
  const k = await createCheckout(env);
  await k.close();
  fs.chmodSync(layout.adminToken, 0o640);
  await assert.rejects(
    createCheckout(env),
    (e: unknown) =>
      e instanceof KitError && e.code === 'SECRET_INSECURE' && e.message.includes(layout.adminToken),
  );
});

test('under balena a generated admin token is not printed: its file is named instead', async () => {
  const { kit, dataDir } = await startCheckoutWithCatalog({ A: 1 });
  await kit.close();
  const file = dataLayout(dataDir).adminToken;
  for (const balena of [false, true]) {
    fs.rmSync(file, { force: true });
    const port = await freePort();
    const { proc, output } = spawnCheckout(dataDir, port, 'silent', {
      POPKIT_ADMIN_TOKEN: undefined,
      ...(balena ? { BALENA: '1', BALENA_DEVICE_UUID: 'f00dfeed' } : {}),
    });
    try {
      const deadline = Date.now() + 30_000;
      while (!output().includes('listening') && Date.now() < deadline && proc.exitCode === null) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(output().includes('listening'), output());
      const token = fs.readFileSync(file, 'utf8').trim();
      assert.equal(output().includes(token), !balena, output());
      if (balena) assert.ok(output().includes(file), output());
    } finally {
      proc.kill('SIGKILL');
      await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
    }
  }
});

test('sync with a lost token key keeps card orders in the outbox instead of sending them as invalid', async () => {
  const { dataDir } = await kitWithSealedToken();
  const kit = await restart(dataDir);
  assert.equal((await post(kit, cash)).statusCode, 201);
  await close(kit);
  fs.rmSync(dataLayout(dataDir).tokenKey);
  const store = openKitStore(dataDir);
  try {
    const { vault, status } = openTokenVault(
      dataLayout(dataDir).tokenKey,
      undefined,
      () => tokenCount(store) > 0,
    );
    assert.equal(status.cardSales, false);
    const sent: string[] = [];
    const pump = new OutboxPump(
      store,
      vault,
      { ready: () => true, send: (_topic, payload) => sent.push(payload) },
      { kitId: 'kit-x', batchMax: 50, batchBytes: 256 * 1024, window: 4, ackTimeoutMs: 30_000 },
    );
    pump.pump();
    const entries = sent.flatMap(
      (p) =>
        JSON.parse(p).entries as Array<{
          lane: string;
          order?: { payment: { method: string } };
          tokenError?: string;
        }>,
    );
    const orders = entries.filter((e) => e.lane === 'orders');
    assert.deepEqual(
      orders.map((e) => e.order?.payment.method),
      ['cash'],
      'only the cash order leaves; the card order waits for its key',
    );
    assert.ok(entries.every((e) => e.tokenError === undefined));
    assert.equal(tokenCount(store), 1);
  } finally {
    await store.close();
  }
});
