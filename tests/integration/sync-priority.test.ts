// Checkout first against a real hub (private Mosquitto, real PostgreSQL in a schema of its own): under an
// injected "checkout busy" signal sync drains a backlog in small batches and several ack transactions
// per message while orders keep arriving; idle, it goes back to full batches. Every order lands in the
// ledger exactly once and comes back settled (card orders too: the risk budget returns to zero), and
// the outbox ends empty. No wall-clock assertion: the waits are generous failure bounds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BaseConfig, composeConfig, loadConfig } from '../../core/config.ts';
import { LANES, readRiskCounters } from '../../core/store/index.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import { SyncConfig } from '../../services/sync/config.ts';
import { LaneKeeper } from '../../services/sync/lanes.ts';
import type { LoadSignal } from '../../services/sync/load.ts';
import { laneLimitsFrom, syncOptionsFrom } from '../../services/sync/main.ts';
import { SyncService } from '../../services/sync/sync-service.ts';
import { hubLinkRig, ledgerOrderIds, syncEnv, waitFor } from '../support/hub-link.ts';

const rig = hubLinkRig('syncprio', () => new SandboxGateway());
const load: LoadSignal & { busyNow: boolean } = { busyNow: true, busy: () => load.busyNow };

const outboxOrders = () =>
  rig.kit.store.outbox.getKeysCount({ start: [LANES.orders, ''], end: [LANES.orders + 1, ''] });

test('busy: small batches, several ack transactions per message, orders arriving meanwhile; idle: full batches; each order once', {
  timeout: 120_000,
}, async () => {
  const { broker, kit, schema } = rig;
  const placed: string[] = [];
  // a backlog from the outage, one card order in five
  for (let i = 0; i < 300; i++) {
    placed.push(
      await kit.place(i % 5 === 0 ? { method: 'token', token: `tok_visa_prio_${i}` } : { method: 'cash' }),
    );
  }
  const cfg = loadConfig(
    composeConfig(BaseConfig, SyncConfig),
    syncEnv(kit, broker.url, { POPKIT_SYNC_BATCH_MAX: '50', POPKIT_SYNC_WINDOW: '4' }),
  );
  const opts = {
    ...syncOptionsFrom(cfg, kit.kitId, kit.dataDir),
    busy: { holdMs: 500, batchMax: 6, window: 2, ackTxnMax: 2, yieldMs: 0 },
  };
  const sync = new SyncService(
    kit.store,
    kit.vault,
    new LaneKeeper(kit.store, laneLimitsFrom(cfg)),
    opts,
    load,
  );
  rig.sync = sync;
  sync.start();
  // buyers keep buying while the backlog drains
  for (let i = 0; i < 60; i++) placed.push(await kit.place());
  await waitFor(() => outboxOrders() === 0, 90_000, 'the backlog to drain while busy');
  assert.equal(sync.batchesBy.idle, 0, 'no full-size batch while checkout was busy');
  assert.ok(sync.batchesBy.busy >= Math.ceil(360 / 6), `batches of at most 6: ${sync.batchesBy.busy}`);
  assert.ok(sync.ackTxns >= Math.ceil(sync.drained / 2), `ack transactions of at most 2: ${sync.ackTxns}`);

  assert.equal(sync.largestBatch.busy, 6);

  // checkout goes quiet: a burst committed at once goes out in full batches again
  load.busyNow = false;
  placed.push(...(await Promise.all(Array.from({ length: 200 }, () => kit.place()))));
  await waitFor(() => outboxOrders() === 0, 60_000, 'the rest to drain while idle');
  assert.ok(sync.largestBatch.idle > 6, `idle batches up to ${sync.largestBatch.idle} entries`);

  const ledger = await ledgerOrderIds(schema, kit.kitId);
  assert.equal(ledger.rows, placed.length, 'each order once in the ledger');
  assert.deepEqual(ledger.ids, [...placed].sort());
  for (const id of placed) assert.equal(kit.store.orders.get(id)?.syncState, 'settled', id);
  assert.deepEqual(readRiskCounters(kit.store), { unsyncedTokenOrders: 0, unsyncedTokenCents: 0 });
});
