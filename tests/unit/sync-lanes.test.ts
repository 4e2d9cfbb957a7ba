// The sync-owned outbox lanes: TTL and quota trim oldest first and never touch orders; stock snapshots
// coalesce; reconnect backoff grows with jitter inside its bounds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LANES } from '../../core/contracts/lanes.ts';
import { LaneKeeper } from '../../services/sync/lanes.ts';
import { makeKit, uniqueId } from '../support/hub-link.ts';

const lane = (n: number) => ({ start: [n, ''] as [number, string], end: [n + 1, ''] as [number, string] });

test('telemetry over quota drops oldest first; expired health goes; orders are never touched', async () => {
  const kit = await makeKit(uniqueId('lanes'));
  let now = 1_000_000;
  const keeper = new LaneKeeper(
    kit.store,
    {
      stock: { ttlMs: 1e9, quotaBytes: 1e9 },
      health: { ttlMs: 10_000, quotaBytes: 1e9 },
      telemetry: { ttlMs: 1e9, quotaBytes: 2000 },
    },
    () => now,
  );
  try {
    const orders: string[] = [];
    for (let i = 0; i < 5; i++) orders.push(await kit.place());
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      now += 10;
      const id = await keeper.enqueue('telemetry', 'telemetry', { i, pad: 'x'.repeat(50) });
      assert.ok(id, 'queued (no disk watch: nothing is held back)');
      ids.push(id);
    }
    const kept = [...kit.store.outbox.getKeys(lane(LANES.telemetry))].map((k) => k[1]);
    assert.ok(kept.length < 40 && kept.length > 5, `kept ${kept.length}`);
    assert.deepEqual(kept, ids.slice(ids.length - kept.length), 'the newest survive, in order');
    assert.equal(keeper.dropped.telemetry, 40 - kept.length);

    await keeper.enqueue('health', 'health', { a: 1 });
    now += 20_000;
    await keeper.enqueue('health', 'health', { a: 2 });
    assert.equal(kit.store.outbox.getKeysCount(lane(LANES.health)), 1);
    assert.equal(kit.store.outbox.getKeysCount(lane(LANES.orders)), 5);
    const stats = keeper.stats();
    assert.equal(stats.backlog.orders, 5);
    assert.equal(stats.backlog.health, 1);
  } finally {
    await kit.close();
  }
});

test('stock snapshots are queued only on change and supersede older waiting ones', async () => {
  const kit = await makeKit(uniqueId('stock'));
  const keeper = new LaneKeeper(kit.store, {
    stock: { ttlMs: 1e9, quotaBytes: 1e9 },
    health: { ttlMs: 1e9, quotaBytes: 1e9 },
    telemetry: { ttlMs: 1e9, quotaBytes: 1e9 },
  });
  try {
    assert.equal(await keeper.snapshotStock(), true);
    assert.equal(await keeper.snapshotStock(), false, 'unchanged stock queues nothing');
    await kit.place();
    assert.equal(await keeper.snapshotStock(), true);
    const entries = [...kit.store.outbox.getRange(lane(LANES.stock))];
    assert.equal(entries.length, 1, 'the older snapshot was coalesced away');
    const stock = entries[0]!.value.body?.['stock'] as Record<string, number>;
    assert.equal(stock['TEE'], kit.store.stock.get('TEE'));
  } finally {
    await kit.close();
  }
});
