// Who comes first (core/priorities.ts, docs/scaling.md#checkout-first): the compose file's cpu_shares
// and `popkit up`'s nice values are the one table's, checkout ahead of sync and media; as the data volume
// fills, telemetry, media and sync's own lanes give way in the declared order, orders last at exactly
// checkout's reserve, and what frees space (acks) never stops. Free space is injected here; the same on a
// real full tmpfs: tests/integration/disk-give-way.test.ts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, mock, test } from 'node:test';
import { normalize } from '@balena/compose/dist/parse/index.js';
import { parse as parseYaml } from 'yaml';
import { CheckoutConfig } from '../../core/config.ts';
import { LANES } from '../../core/contracts/lanes.ts';
import {
  CPU_PRIORITY,
  DISK_GIVE_WAY,
  DiskWatch,
  type DiskWriter,
  giveWayBelow,
} from '../../core/priorities.ts';
import { nicedCommand } from '../../core/process-supervisor.ts';
import { StoreGuard } from '../../services/checkout/store-guard.ts';
import { MediaConfig } from '../../services/media/config.ts';
import { applyAcksPaced } from '../../services/sync/acks.ts';
import { SyncConfig } from '../../services/sync/config.ts';
import { LaneKeeper } from '../../services/sync/lanes.ts';
import { makeKit, uniqueId } from '../support/hub-link.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MB = 1024 * 1024;

describe('CPU: checkout first', () => {
  test("docker-compose.yml's cpu_shares (as balena normalizes them) are CPU_PRIORITY's", () => {
    const doc = parseYaml(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true });
    const services = normalize(doc).services as Record<string, { cpu_shares?: number }>;
    for (const [name, svc] of Object.entries(services)) {
      const want = CPU_PRIORITY[name as keyof typeof CPU_PRIORITY];
      assert.ok(want, `${name} has a row in CPU_PRIORITY`);
      assert.equal(svc.cpu_shares, want.cpuShares, `${name} cpu_shares`);
    }
  });

  test('checkout outweighs every other process; sync and media yield to it', () => {
    for (const [name, p] of Object.entries(CPU_PRIORITY)) {
      if (name === 'checkout') continue;
      assert.ok(p.cpuShares < CPU_PRIORITY.checkout.cpuShares, `${name} below checkout`);
      assert.ok(p.nice >= CPU_PRIORITY.checkout.nice, `${name} not nicer than checkout`);
    }
    for (const name of ['sync', 'media'] as const) assert.ok(CPU_PRIORITY[name].nice > 0, name);
    // the nice values keep the shares' order
    const byShares = Object.entries(CPU_PRIORITY).sort((a, b) => b[1].cpuShares - a[1].cpuShares);
    for (let i = 1; i < byShares.length; i++) {
      assert.ok(byShares[i]![1].nice >= byShares[i - 1]![1].nice, `${byShares[i]![0]} nice order`);
    }
  });

  test('a niced child starts under nice(1), so its every thread inherits the value', () => {
    const plain = nicedCommand({ command: process.execPath, args: ['bin/popkit.js', 'checkout'], nice: 0 });
    assert.deepEqual(plain, {
      command: process.execPath,
      args: ['bin/popkit.js', 'checkout'],
      setAfter: false,
    });
    const sync = nicedCommand({ command: process.execPath, args: ['bin/popkit.js', 'sync'], nice: 10 });
    assert.match(sync.command, /\/nice$/);
    assert.deepEqual(sync.args, ['-n', '10', process.execPath, 'bin/popkit.js', 'sync']);
  });
});

describe('disk: the order of giving way', () => {
  afterEach(() => mock.restoreAll());

  test('one declared order: telemetry, media, sync, orders last at exactly the reserve', () => {
    assert.deepEqual(
      DISK_GIVE_WAY.map((r) => r.who),
      ['telemetry', 'media', 'sync', 'orders'],
    );
    const reserve = 16 * MB;
    for (let i = 1; i < DISK_GIVE_WAY.length; i++) {
      assert.ok(
        giveWayBelow(DISK_GIVE_WAY[i - 1]!.who, reserve) > giveWayBelow(DISK_GIVE_WAY[i]!.who, reserve),
        'each stops strictly before the next',
      );
    }
    assert.equal(giveWayBelow('orders', reserve), reserve);
    // sync and media read the very variable checkout reads, with its default and bounds
    for (const schema of [SyncConfig, MediaConfig]) {
      const { description: _d, ...rest } = schema.properties.POPKIT_STORE_RESERVE_MB;
      const { description: _c, ...want } = CheckoutConfig.properties.POPKIT_STORE_RESERVE_MB;
      assert.deepEqual(rest, want);
    }
  });

  test("orders give way exactly where checkout's StoreGuard refuses them", () => {
    const reserve = 4 * MB;
    let free = 0;
    mock.method(fs, 'statfsSync', () => ({ bavail: free / 4096, bsize: 4096 }) as fs.StatsFs);
    const guard = new StoreGuard(null, '/nowhere', reserve, 0);
    const watch = new DiskWatch('/nowhere', reserve, { intervalMs: 0 });
    for (free of [reserve - 4096, reserve, reserve + 4096, 2 * reserve - 4096]) {
      let refused = false;
      try {
        guard.assertWritable(Date.now());
      } catch {
        refused = true;
      }
      assert.equal(watch.givesWay('orders'), refused, `free ${free}`);
    }
  });

  test('as the volume fills, the writers that give way grow in the declared order', () => {
    const reserve = 1 * MB;
    let free = 100 * MB;
    let reads = 0;
    let now = 0;
    const watch = new DiskWatch('/data', reserve, {
      intervalMs: 1000,
      now: () => now,
      free: () => {
        reads++;
        return free;
      },
    });
    const giving = () => DISK_GIVE_WAY.map((r) => r.who).filter((w: DiskWriter) => watch.givesWay(w));
    assert.deepEqual(giving(), []);
    const seen: DiskWriter[][] = [];
    for (const mb of [4.5, 3.5, 2.5, 1.5, 0.5]) {
      free = mb * MB;
      now += 1000;
      seen.push(giving());
    }
    assert.deepEqual(seen, [
      [],
      ['telemetry'],
      ['telemetry', 'media'],
      ['telemetry', 'media', 'sync'],
      ['telemetry', 'media', 'sync', 'orders'],
    ]);
    assert.equal(reads, 6, 'one statfs per interval, however many ask');
    free = 100 * MB;
    now += 1000;
    assert.deepEqual(giving(), [], 'all resume when space returns');
  });

  test("sync's lanes: telemetry stops first, then health and stock; acks still free space below the reserve", async () => {
    const kit = await makeKit(uniqueId('giveway'));
    let free = 100 * MB;
    const reserve = 1 * MB;
    const disk = new DiskWatch(kit.dataDir, reserve, { intervalMs: 0, free: () => free });
    const big = { ttlMs: 1e12, quotaBytes: 1e12 };
    const keeper = new LaneKeeper(kit.store, { stock: big, health: big, telemetry: big }, Date.now, disk);
    const count = (lane: number) => kit.store.outbox.getKeysCount({ start: [lane, ''], end: [lane + 1, ''] });
    try {
      const order = await kit.place();
      assert.ok(await keeper.enqueue('telemetry', 'telemetry', { n: 1 }));
      assert.ok(await keeper.enqueue('health', 'health', { n: 1 }));

      free = 3.5 * MB; // telemetry gives way, health still queues
      assert.equal(await keeper.enqueue('telemetry', 'telemetry', { n: 2 }), undefined);
      assert.ok(await keeper.enqueue('health', 'health', { n: 2 }));

      free = 1.5 * MB; // sync's own lanes give way; orders still commit
      assert.equal(await keeper.enqueue('health', 'health', { n: 3 }), undefined);
      await kit.place();
      assert.equal(await keeper.snapshotStock(), false, 'no stock snapshot while the volume is low');
      assert.deepEqual(keeper.heldBack, { stock: 1, health: 1, telemetry: 1 });
      assert.equal(count(LANES.telemetry), 1);
      assert.equal(count(LANES.health), 2);
      assert.equal(count(LANES.stock), 0);
      assert.equal(count(LANES.orders), 2);

      free = 0.5 * MB; // below the reserve: acks (deletes) are still applied
      await applyAcksPaced(kit.store, [{ lane: 'orders', id: order, state: 'settled' }]);
      assert.equal(count(LANES.orders), 1);

      free = 100 * MB; // space returns: everyone writes again
      assert.ok(await keeper.enqueue('telemetry', 'telemetry', { n: 3 }));
      assert.equal(await keeper.snapshotStock(), true);
    } finally {
      await kit.close();
    }
  });
});
