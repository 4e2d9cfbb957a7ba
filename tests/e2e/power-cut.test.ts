// Issue #18: a power cut at any moment. The kit's data dir is on pcfs (tests/support/pcfs.ts), which
// forgets every write not made durable. fast-check picks the moment: during first boot (LMDB created,
// keys and admin token generated), while a catalog loads, or under order load (cash and card); the
// process is SIGKILLed and the filesystem rolled back together, as a power cut does. Then the kit is
// started again, as the device would at boot, and must come back by itself with every acknowledged
// order once, stock + sold = initial, one outbox entry per order, its keys (every sealed token opens,
// card sales on) and the admin token it printed. A failing run prints its seed and moment; replay
// with POPKIT_POWERCUT_SEED=<seed>, more runs with POPKIT_POWERCUT_RUNS=<n>. Moments that once failed
// are replayed first (tests/e2e/power-cut-seeds.json, tests/support/powercut-seeds.ts): a run that
// fails here APPENDS its moment and seed to that file, commit it.
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { LANES } from '../../core/contracts/lanes.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { openKitStore, readSealedToken } from '../../core/store/index.ts';
import { TokenVault } from '../../core/token-vault.ts';
import { ADMIN, inspectStore, smallCatalog, spawnCheckout, tempDir } from '../support/checkout.ts';
import { freePort, waitUntil } from '../support/net.ts';
import { mountPcfs } from '../support/pcfs.ts';
import { keepFailure, keptMoments, powercutRuns, powercutSeed } from '../support/powercut-seeds.ts';

const INITIAL = { A: 100_000, B: 100_000, HERO: 50 };
const TOKEN = 'tok_sandbox_approve_0001';
type Phase = 'first-boot' | 'catalog' | 'orders';
interface Moment {
  phase: Phase;
  /** ms after the phase began */
  atMs: number;
}

// a run that failed half-way may leave its mount: detached when the file ends, so nothing hangs
const mountPoints: string[] = [];
after(() => {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  for (const m of mountPoints) if (mounts.includes(` ${m} fuse`)) spawnSync('fusermount', ['-uz', m]);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const headers = (token: string) => ({ 'content-type': 'application/json', authorization: `Bearer ${token}` });

async function listening(
  base: string,
  proc: { exitCode: number | null },
  output: () => string,
): Promise<void> {
  await waitUntil(
    async () => {
      if (proc.exitCode !== null) throw new Error(`checkout exited (${proc.exitCode}): ${output()}`);
      return (await fetch(`${base}/healthz`).catch(() => null)) !== null;
    },
    30_000,
    'checkout to listen',
  );
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGKILL');
  await gone;
}

/** One power cut at `m`, then a restart; throws with what went wrong. */
async function oneCut(m: Moment): Promise<void> {
  const root = tempDir('popkit-powercut-');
  const backing = path.join(root, 'backing');
  const mnt = path.join(root, 'mnt');
  mountPoints.push(mnt);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // first boot generates the admin token into the data dir; later phases get it from the environment
  // the offline risk budget would pause card orders under this load: not what is tested here
  const risk = { POPKIT_RISK_MAX_UNSYNCED_CENTS: '100000000000', POPKIT_RISK_MAX_UNSYNCED_ORDERS: '1000000' };
  const env = m.phase === 'first-boot' ? { ...risk, POPKIT_ADMIN_TOKEN: undefined } : risk;
  const acked = new Map<string, { sku: string; qty: number; card: boolean }>();
  let catalogAcked = false;
  /** device tokens the kit handed to buyers' phones before the cut */
  const devices: string[] = [];

  let fsys = await mountPcfs(backing, mnt);
  const dataDir = path.join(mnt, 'data');
  let kit = spawnCheckout(dataDir, port, 'silent', env);
  try {
    if (m.phase === 'first-boot') {
      await sleep(m.atMs);
    } else {
      await listening(base, kit.proc, kit.output);
      const put = fetch(`${base}/v1/catalog`, {
        method: 'PUT',
        headers: headers(ADMIN),
        body: JSON.stringify(smallCatalog(INITIAL)),
      }).then(
        (r) => {
          catalogAcked = r.status === 200;
        },
        () => {},
      );
      if (m.phase === 'catalog') await sleep(m.atMs);
      else {
        await put;
        assert.ok(catalogAcked, 'the catalog was refused before the cut');
        let cut = false;
        const worker = async (w: number) => {
          for (let i = 0; !cut; i++) {
            const sku = i % 5 === 0 ? 'HERO' : w % 2 ? 'A' : 'B';
            const qty = 1 + (i % 3);
            const card = w % 3 === 0;
            try {
              const r = await fetch(`${base}/v1/orders`, {
                method: 'POST',
                headers: headers(ADMIN),
                body: JSON.stringify({
                  lines: [{ sku, qty }],
                  payment: card ? { method: 'token', token: TOKEN } : { method: 'cash' },
                }),
              });
              const body = (await r.json()) as { id?: string };
              if (r.status === 201 && body.id && !cut) acked.set(body.id, { sku, qty, card });
            } catch {
              // the process died: that request was never acknowledged
            }
          }
        };
        // buyers' phones take device tokens meanwhile (a few: issuing is rate limited per address)
        const deviceWorker = async () => {
          for (let i = 0; i < 3 && !cut; i++) {
            try {
              const r = await fetch(`${base}/v1/devices`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: '{}',
              });
              const body = (await r.json()) as { device?: string };
              if (r.status === 201 && body.device && !cut) devices.push(body.device);
            } catch {
              // the process died: that token was never handed out
            }
            await sleep(m.atMs / 4);
          }
        };
        const load = Promise.all([...Array.from({ length: 6 }, (_, w) => worker(w)), deviceWorker()]);
        await sleep(m.atMs);
        cut = true;
        await kill(kit.proc);
        await load;
      }
    }
  } finally {
    await kill(kit.proc);
  }
  const printed = /admin token \(shown once, kept in [^)]*\): (\S+)/.exec(kit.output())?.[1];
  const report = await fsys.cut();
  process.stdout.write(
    `# power cut at ${JSON.stringify(m)}: catalog ${catalogAcked ? 'acknowledged' : 'not acknowledged'}, ${acked.size} orders and ${devices.length} device tokens acknowledged, ${report.bytes_rolled_back} bytes rolled back\n`,
  );

  // the device boots again: nothing but the same command
  fsys = await mountPcfs(backing, mnt);
  kit = spawnCheckout(dataDir, port, 'silent', env);
  try {
    await listening(base, kit.proc, kit.output);
    const layout = dataLayout(dataDir);
    const admin = m.phase === 'first-boot' ? fs.readFileSync(layout.adminToken, 'utf8').trim() : ADMIN;
    if (printed) assert.equal(admin, printed, 'the admin token printed before the cut is the one kept');
    const status = await (await fetch(`${base}/v1/status`, { headers: headers(admin) })).json();
    assert.deepEqual(
      status.tokenKey,
      { state: 'ok', cardSales: true },
      `keys after the cut: ${JSON.stringify(status.tokenKey)}`,
    );
    if (catalogAcked) assert.equal(status.catalog?.version, 1, 'an acknowledged catalog is kept');
    // every secret whole: none lost, none found torn and replaced (docs/power-cuts.md)
    for (const k of status.secrets ?? [])
      assert.deepEqual(
        { state: k.state, replaced: k.replaced },
        { state: 'ok', replaced: undefined },
        `${k.file} after the cut: ${k.message}`,
      );
    assert.equal(status.secrets?.length, 3, 'token key, device key and admin token reported');
    // a phone's device token handed out before the cut still buys: its key and its record are kept
    for (const device of devices) {
      const r = await fetch(`${base}/v1/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-popkit-device': device },
        body: JSON.stringify({ lines: [{ sku: 'A', qty: 1 }], payment: { method: 'token', token: TOKEN } }),
      });
      assert.equal(r.status, 201, `a device token issued before the cut: ${await r.text()}`);
    }
  } finally {
    await kill(kit.proc);
    await fsys.unmount();
  }

  // the store as the next boot sees it
  const real = path.join(backing, 'data');
  const state = await inspectStore(real);
  const ids = state.orders.map((o) => o.id);
  assert.equal(new Set(ids).size, ids.length, 'no order stored twice');
  for (const id of acked.keys())
    assert.ok(
      ids.includes(id),
      `acknowledged order ${id} lost (${report.bytes_rolled_back} bytes rolled back)`,
    );
  if (Object.keys(state.stock).length > 0) {
    for (const [sku, initial] of Object.entries(INITIAL)) {
      const sold = state.orders.reduce(
        (n, o) => n + o.lines.filter((l) => l.sku === sku).reduce((a, l) => a + l.qty, 0),
        0,
      );
      assert.equal(
        (state.stock[sku] ?? 0) + sold,
        initial,
        `${sku}: stock ${state.stock[sku]} + sold ${sold}`,
      );
    }
  } else {
    assert.equal(catalogAcked, false, 'an acknowledged catalog is lost');
    assert.equal(state.orders.length, 0);
  }
  // no sync runs here: every stored order waits in the outbox, once, and nothing else is there for orders
  const queued = state.outbox.filter((e) => e.key[0] === LANES.orders).map((e) => String(e.key[1]));
  assert.deepEqual([...queued].sort(), [...ids].sort(), 'one outbox entry per stored order');
  const cards = state.orders.filter((o) => o.payment.method === 'token');
  assert.equal(state.tokens, cards.length, 'one sealed token per card order');
  if (cards.length > 0) {
    const vault = new TokenVault(fs.readFileSync(dataLayout(real).tokenKey));
    const store = openKitStore(real);
    try {
      for (const o of cards) {
        const sealed = readSealedToken(store, o.id);
        assert.ok(sealed, `card order ${o.id} has no sealed token`);
        assert.equal(
          vault.open(sealed, sealed.expiresAt - 1),
          TOKEN,
          'the sealed token opens with the kept key',
        );
      }
    } finally {
      await store.close();
    }
  }
}

test('a power cut at a moment fast-check picks: the kit comes back by itself with everything it acknowledged', {
  timeout: 600_000,
}, async () => {
  const seed = powercutSeed();
  const kept = keptMoments<Moment>('power-cut');
  process.stdout.write(
    `# power-cut seed ${seed} (replay: POPKIT_POWERCUT_SEED=${seed}); ${kept.length} kept moments first\n`,
  );
  const moment = fc.oneof(
    fc.record({ phase: fc.constant<Phase>('first-boot'), atMs: fc.integer({ min: 0, max: 3000 }) }),
    fc.record({ phase: fc.constant<Phase>('catalog'), atMs: fc.integer({ min: 0, max: 60 }) }),
    fc.record({ phase: fc.constant<Phase>('orders'), atMs: fc.integer({ min: 20, max: 1500 }) }),
  );
  await fc.assert(
    fc.asyncProperty(moment, async (m) => {
      try {
        await oneCut(m);
      } catch (err) {
        process.stdout.write(
          `# power cut at ${JSON.stringify(m)} failed (seed ${seed}): ${(err as Error).message}\n`,
        );
        keepFailure('power-cut', seed, m, err);
        throw err;
      }
    }),
    {
      seed,
      numRuns: powercutRuns(10) + kept.length,
      examples: kept.map((m) => [m] as [Moment]),
      endOnFailure: true,
    },
  );
});
