// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Order ids never go backwards across a restart: checkout reloads the persisted id high-water mark at
// start, so a kit whose clock was ahead (a Pi without RTC, then NTP corrects it back) still issues
// ids after the last one it committed.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { dataLayout } from '../../core/data-dir.ts';
import { decodeIdTime, MonotonicIds } from '../../core/ids.ts';
import { loadOrCreateKey } from '../../core/secrets.ts';
import { openKitStore, readIdHighWater, replaceCatalog } from '../../core/store/index.ts';
import { TokenVault } from '../../core/token-vault.ts';
import { createCheckout } from '../../services/checkout/main.ts';
import { OrderService } from '../../services/checkout/orders.ts';
import { asStaff, kitEnv, smallCatalog, tempDir } from '../support/checkout.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const DAY_MS = 24 * 3600 * 1000;

test('after a restart with the clock set back, the next id still sorts after the last one', async () => {
  const dataDir = tempDir('popkit-highwater-');
  const layout = dataLayout(dataDir);

  // first boot: the clock runs a day ahead; one order is committed with its high-water mark
  const store = openKitStore(dataDir);
  await replaceCatalog(store, smallCatalog({ A: 100 }), { source: 'local' });
  const vault = new TokenVault(loadOrCreateKey(layout.tokenKey).value);
  const big = 1_000_000_000;
  const ahead = new OrderService(store, new MonotonicIds(0, () => Date.now() + DAY_MS), vault, {
    kitId: 'kit-highwater',
    tokenTtlMs: DAY_MS,
    limits: { maxOrderCents: big, maxUnsyncedCents: big, maxUnsyncedOrders: big, maxUnsyncedAgeS: big },
  });
  const first = (
    await ahead.create({ lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } }, undefined)
  ).order.id;
  assert.equal(
    readIdHighWater(store),
    decodeIdTime(first),
    'the high-water mark is persisted with the order',
  );
  await store.close();

  // second boot: the real (earlier) clock; checkout must start from the stored mark
  const kit = await createCheckout(kitEnv(dataDir));
  cleanups.push(() => kit.close());
  const res = await asStaff(kit.app)({
    method: 'POST',
    url: '/v1/orders',
    payload: { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } },
  });
  assert.equal(res.statusCode, 201, res.body);
  const second = res.json().id as string;
  assert.ok(second > first, `id ${second} sorts before ${first}: the high-water mark was not reloaded`);
  assert.ok(decodeIdTime(second) >= decodeIdTime(first));
});
