// The hub's keys at start (issue #18). The held-token key seals the card tokens the hub holds while the
// gateway is unreachable: while such tokens wait in the ledger, a missing, empty or torn key is never
// replaced. The hub starts, names the loss (HELD_TOKEN_KEY_LOST in the log, /healthz, /metrics and the
// fleet view /v1/kits) and refuses only the card work that needs the key: new card orders are not taken
// (the kit keeps them and resends), held ones wait (never declined as invalid); cash orders go on.
// Restoring the key brings everything back. With nothing depending on it, a lost key is made anew. The
// signing key: an empty or torn one, or a missing one whose public half kits already trust, refuses the
// start with CONFIG_INVALID naming the file.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { LANES } from '../../core/contracts/lanes.ts';
import { hubDataLayout } from '../../core/data-dir.ts';
import { KitError } from '../../core/errors.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { loadOrCreateSigningKey } from '../../services/hub/keys.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  type Mosquitto,
  makeKit,
  mosquitto,
  startHub,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

let broker: Mosquitto;
const schemas: string[] = [];
before(async () => {
  broker = await mosquitto();
});
after(async () => {
  await broker?.close();
  for (const s of schemas) await dropSchema(s);
});

const CARD = { method: 'token' as const, token: 'tok_sandbox_ok_0001' };

async function hubOn(dataDir: string, schema: string, gateway: SandboxGateway): Promise<HubService> {
  return startHub({
    dataDir,
    schema,
    brokerUrl: broker.url,
    gateway,
    env: { POPKIT_HUB_GATEWAY_RETRY_S: '1', POPKIT_HUB_VERDICT_RESEND_S: '1' },
  });
}

async function orderState(hub: HubService, kitId: string, id: string): Promise<string | undefined> {
  const r = await hub.db!.query<{ state: string }>(
    'SELECT state FROM orders WHERE kit_id = $1 AND order_id = $2',
    [kitId, id],
  );
  return r.rows[0]?.state;
}

const inOutbox = (kit: TestKit, id: string) => kit.store.outbox.get([LANES.orders, id]) !== undefined;
const admin = (hub: HubService) => ({ authorization: `Bearer ${hub.adminToken}` });

const damages: Array<[string, (file: string) => void]> = [
  ['missing', (f) => fs.rmSync(f)],
  ['empty', (f) => fs.writeFileSync(f, '')],
  ['torn', (f) => fs.writeFileSync(f, Buffer.alloc(13, 7))],
];

for (const [state, damage] of damages) {
  test(`held-token key ${state} while a held token depends on it: never replaced, card work waits, cash goes on, restoring it brings it back`, async () => {
    const dataDir = tmpDir('hub-keys');
    const schema = uniqueId('hubkeys').replace(/-/g, '_');
    schemas.push(schema);
    const keyFile = hubDataLayout(dataDir).heldTokenKey;
    const kit = await makeKit(uniqueId('kit'));
    let sync: SyncService | undefined;
    const down = new SandboxGateway();
    down.setAvailable(false);
    let hub = await hubOn(dataDir, schema, down);
    try {
      sync = startSync(kit, broker.url);
      // a card order the hub holds (gateway unreachable): its token sealed with the held-token key
      const held = await kit.place(CARD);
      await waitFor(async () => (await orderState(hub, kit.kitId, held)) === 'forwarded', 20_000, 'held');
      await hub.stop();
      const goodKey = fs.readFileSync(keyFile);
      damage(keyFile);
      const damaged = fs.existsSync(keyFile) ? fs.readFileSync(keyFile) : undefined;

      // the hub starts, with the gateway back, and names the loss
      hub = await hubOn(dataDir, schema, new SandboxGateway());
      assert.deepEqual(
        { ...hub.ledger!.heldTokenKey, message: undefined },
        { code: 'HELD_TOKEN_KEY_LOST', state, file: keyFile, heldTokens: 1, message: undefined },
      );
      assert.match((hub.ledger!.heldTokenKey as { message: string }).message, /not replaced/);
      // the key file is left exactly as it was found
      assert.deepEqual(fs.existsSync(keyFile) ? fs.readFileSync(keyFile) : undefined, damaged);
      const health = await (await fetch(`${hub.httpUrl}/healthz`, { headers: admin(hub) })).json();
      assert.equal(health.status, 'degraded');
      assert.equal(health.ok, true, 'the hub stays in service');
      assert.deepEqual(health.heldTokenKey, {
        code: 'HELD_TOKEN_KEY_LOST',
        state,
        file: keyFile,
        heldTokens: 1,
      });
      const fleet = await (await fetch(`${hub.httpUrl}/v1/kits`, { headers: admin(hub) })).json();
      assert.equal(fleet.hubProblems?.[0]?.code, 'HELD_TOKEN_KEY_LOST');
      const metrics = await (await fetch(`${hub.httpUrl}/metrics`)).text();
      assert.match(metrics, /^popkit_hub_held_token_key_ok 0$/m);

      // cash goes on; a new card order is not taken (its kit keeps it); the held one waits
      const cash = await kit.place();
      const card = await kit.place(CARD);
      await waitFor(() => !inOutbox(kit, cash), 20_000, 'the cash order acked');
      assert.equal(await orderState(hub, kit.kitId, cash), 'settled');
      await waitFor(() => hub.ledger!.counters.cardOrdersWaitingForKey > 0, 20_000, 'the card order seen');
      // several retry periods (1 s) and kit resends pass: nothing is declined for want of the key
      await new Promise((r) => setTimeout(r, 3500));
      assert.equal(await orderState(hub, kit.kitId, card), undefined, 'not written without the key');
      assert.ok(inOutbox(kit, card), 'the kit still has the new card order');
      assert.equal(await orderState(hub, kit.kitId, held), 'forwarded', 'the held order still waits');
      assert.notEqual(kit.store.orders.get(held)?.syncState, 'declined');
      await hub.stop();

      // the key restored: the held order is charged, the waiting card order taken
      fs.writeFileSync(keyFile, goodKey, { mode: 0o600 });
      hub = await hubOn(dataDir, schema, new SandboxGateway());
      assert.deepEqual(hub.ledger!.heldTokenKey, { state: 'ok' });
      await waitFor(
        async () => (await orderState(hub, kit.kitId, held)) === 'settled',
        20_000,
        'held settles',
      );
      await waitFor(
        async () => (await orderState(hub, kit.kitId, card)) === 'settled',
        20_000,
        'card settles',
      );
      await waitFor(() => !inOutbox(kit, card) && !inOutbox(kit, held), 20_000, 'the kit drained');
    } finally {
      await sync?.stop();
      await hub.stop();
      await kit.close();
    }
  });
}

test('held-token key lost with nothing depending on it: made anew (a damaged one kept aside)', async () => {
  for (const [state, damage] of damages) {
    const dataDir = tmpDir('hub-keys-free');
    const schema = uniqueId('hubkeys').replace(/-/g, '_');
    schemas.push(schema);
    const keyFile = hubDataLayout(dataDir).heldTokenKey;
    let hub = await hubOn(dataDir, schema, new SandboxGateway());
    await hub.stop();
    const old = fs.readFileSync(keyFile);
    damage(keyFile);
    hub = await hubOn(dataDir, schema, new SandboxGateway());
    try {
      assert.deepEqual(hub.ledger!.heldTokenKey, { state: 'ok' }, state);
      const now = fs.readFileSync(keyFile);
      assert.equal(now.length, 32);
      assert.notDeepEqual(now, old);
      const aside = fs.readdirSync(hubDataLayout(dataDir).keys).filter((f) => f.includes('.damaged-'));
      assert.equal(aside.length, state === 'missing' ? 0 : 1, `${state}: ${aside}`);
    } finally {
      await hub.stop();
    }
  }
});

test('signing key: empty, torn, or missing while kits trust its public half: CONFIG_INVALID naming the file, nothing replaced', () => {
  const cases: Array<[string, (f: string) => void]> = [
    ['empty', (f) => fs.writeFileSync(f, '', { mode: 0o600 })],
    ['torn', (f) => fs.writeFileSync(f, '-----BEGIN PRIVATE KEY-----\nMC4CAQAw', { mode: 0o600 })],
    ['missing', (f) => fs.rmSync(f)],
  ];
  for (const [state, damage] of cases) {
    const dataDir = tmpDir('hub-signing');
    const layout = hubDataLayout(dataDir);
    const first = loadOrCreateSigningKey(dataDir);
    damage(layout.signingKey);
    const before = fs.existsSync(layout.signingKey) ? fs.readFileSync(layout.signingKey) : undefined;
    assert.throws(
      () => loadOrCreateSigningKey(dataDir),
      (err: unknown) =>
        err instanceof KitError &&
        err.code === 'CONFIG_INVALID' &&
        err.message.includes(layout.signingKey) &&
        (err.details as { state?: string }).state === state,
      state,
    );
    assert.deepEqual(
      fs.existsSync(layout.signingKey) ? fs.readFileSync(layout.signingKey) : undefined,
      before,
    );
    assert.equal(
      fs.readFileSync(layout.signingPub, 'utf8'),
      first.publicPem,
      'the trusted public half stays',
    );
  }
});
