// The disk-full guarantee without root: below POPKIT_STORE_RESERVE_MB, or when an LMDB commit fails for
// space, orders get 507 STORE_FULL, /healthz answers 503, nothing partial is written, and orders resume
// when space returns. The free space StoreGuard reads (fs.statfsSync) is injected; the failed commit is
// a real one: a child checkout whose file-size limit (RLIMIT_FSIZE) stops LMDB growing its file, as a
// full volume does, and which this test lifts again with prlimit. (The tmpfs test in
// tests/integration/checkout-store-full.test.ts fills a real volume; it needs root, as CI has.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, mock, test } from 'node:test';
import Fastify from 'fastify';
import { isKitError, KitError } from '../../core/errors.ts';
import { errorEnvelopePlugin } from '../../core/http-errors.ts';
import { isCommitFailure, StoreGuard } from '../../services/checkout/store-guard.ts';
import { auth, inspectStore, ROOT, startCheckoutWithCatalog, tempDir } from '../support/checkout.ts';

const MB = 1024 * 1024;

/** the free space StoreGuard will read, in bytes (fs.statfsSync replaced for the test) */
function injectFreeSpace(initial: number) {
  let free = initial;
  let looks = 0;
  mock.method(fs, 'statfsSync', () => {
    looks++;
    return { bavail: Math.floor(free / 4096), bsize: 4096 } as fs.StatsFs;
  });
  return {
    set: (bytes: number) => {
      free = bytes;
    },
    looks: () => looks,
  };
}

afterEach(() => mock.restoreAll());

function storeFull(fn: () => unknown): KitError {
  try {
    fn();
  } catch (err) {
    assert.ok(isKitError(err), String(err));
    assert.equal(err.code, 'STORE_FULL');
    assert.equal(err.status, 507);
    return err;
  }
  assert.fail('expected STORE_FULL');
}

test('below the reserve: STORE_FULL (507) and status full; writable again at the first look that finds space', () => {
  const disk = injectFreeSpace(512 * 1024);
  const guard = new StoreGuard(null, '/data', 1 * MB, 1000);
  const err = storeFull(() => guard.assertWritable(10_000));
  assert.deepEqual(err.details, { freeBytes: 512 * 1024, reserveBytes: MB });
  assert.equal(guard.status(10_000).full, true);
  // space returns: the guard looks again once its interval is over, not on every order
  disk.set(100 * MB);
  const looks = disk.looks();
  storeFull(() => guard.assertWritable(10_500));
  assert.equal(disk.looks(), looks);
  guard.assertWritable(11_000);
  assert.equal(guard.status(11_000).full, false);
  assert.equal(guard.status(11_000).freeBytes, 100 * MB);
  // exactly at the reserve is still writable; one page under it is not
  disk.set(MB);
  guard.assertWritable(12_000);
  disk.set(MB - 4096);
  storeFull(() => guard.assertWritable(13_000));
});

test('a commit that failed for space: STORE_FULL for an interval even with room on the volume, then writable', () => {
  injectFreeSpace(100 * MB);
  let observed = 0;
  const committed = {
    // biome-ignore lint/suspicious/noThenProperty: stands in for lmdb-js's committed thenable
    then: (_ok: unknown, onFail: unknown) => {
      if (onFail) observed++;
    },
  };
  const guard = new StoreGuard({ committed } as never, '/data', 1 * MB, 1000);
  guard.assertWritable(10_000);
  const mapped = guard.translate(new Error('Commit failed (see commitError for details)'), 20_000);
  assert.ok(isKitError(mapped) && mapped.code === 'STORE_FULL' && mapped.status === 507);
  assert.equal(observed, 1, 'the failed batch’s own commit promise is observed (no unhandled rejection)');
  assert.equal(guard.status(20_000).full, true);
  storeFull(() => guard.assertWritable(20_500));
  guard.assertWritable(21_000);
  assert.equal(guard.status(21_000).full, false);
});

test('/healthz: full after a failed commit while the volume stays full, ready once space returns without an order', () => {
  const disk = injectFreeSpace(64 * 1024);
  const guard = new StoreGuard(null, '/data', 0, 1000);
  guard.translate(new Error('Commit failed'), 20_000);
  assert.equal(guard.status(20_500).full, true);
  // an interval later, nothing freed: still full (reserve 0, so only the failed commit tells)
  assert.equal(guard.status(21_500).full, true);
  // space returns; nothing has asked assertWritable since
  disk.set(100 * MB);
  assert.equal(guard.status(23_000).full, false);
});

test('translate maps only commit failures for space; other errors pass through untouched', () => {
  const guard = new StoreGuard(null, '/data', 0, 1000);
  const other = new Error('boom');
  assert.equal(guard.translate(other), other);
  const notReady = new KitError('NOT_READY', 'no catalog');
  assert.equal(guard.translate(notReady), notReady);
  assert.equal(isCommitFailure('Commit failed'), false);
  assert.equal(isCommitFailure(Object.assign(new Error('write'), { code: 'ENOSPC' })), true);
  assert.equal(isCommitFailure(Object.assign(new Error('x'), { code: 'MDB_MAP_FULL' })), true);
  assert.equal(isCommitFailure(new Error('MDB_MAP_FULL: Environment mapsize limit reached')), true);
  // lmdb-js's own commitError promise is observed by the check
  const commitError = Promise.reject(new Error('File too large'));
  assert.equal(isCommitFailure(Object.assign(new Error('batch'), { commitError })), true);
});

test('the error envelope maps the translated failure to 507 STORE_FULL, and nothing else to it', async () => {
  injectFreeSpace(100 * MB);
  const guard = new StoreGuard(null, '/data', 0, 1000);
  const app = Fastify();
  await app.register(errorEnvelopePlugin, {
    translate: (err) => guard.translate(err),
    quiet5xx: ['STORE_FULL'],
  });
  app.get('/commit', async () => {
    throw new Error('Commit failed');
  });
  app.get('/other', async () => {
    throw new Error('boom');
  });
  const full = await app.inject({ method: 'GET', url: '/commit' });
  assert.equal(full.statusCode, 507);
  assert.equal(full.json().error.code, 'STORE_FULL');
  const other = await app.inject({ method: 'GET', url: '/other' });
  assert.equal(other.statusCode, 500);
  assert.equal(other.json().error.code, 'INTERNAL');
  await app.close();
});

test('a checkout below its reserve: orders 507 STORE_FULL, /healthz 503, nothing written; orders resume when space returns', async () => {
  const kit = await startCheckoutWithCatalog({ A: 10 }, { POPKIT_STORE_RESERVE_MB: '1' });
  const disk = injectFreeSpace(100 * MB);
  const order = { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } };
  try {
    assert.equal(
      (await kit.app.inject({ method: 'POST', url: '/v1/orders', headers: auth, payload: order })).statusCode,
      201,
    );
    disk.set(256 * 1024);
    await new Promise((r) => setTimeout(r, 1100)); // the guard's next look at the volume
    for (let i = 0; i < 3; i++) {
      const res = await kit.app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: { ...auth, 'idempotency-key': `full-${i}` },
        payload: order,
      });
      assert.equal(res.statusCode, 507, res.body);
      assert.equal(res.json().error.code, 'STORE_FULL');
    }
    const health = await kit.app.inject({ method: 'GET', url: '/healthz', headers: auth });
    assert.equal(health.statusCode, 503);
    assert.deepEqual(health.json().problems, ['data volume full']);
    // space returns
    disk.set(100 * MB);
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await kit.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    const again = await kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: { ...auth, 'idempotency-key': 'full-0' },
      payload: order,
    });
    assert.equal(again.statusCode, 201, 'the refused key was not recorded: a new order, not a replay');
  } finally {
    await kit.kit.close();
  }
  const state = await inspectStore(kit.dataDir);
  assert.equal(state.orders.length, 2);
  assert.equal(state.stock['A'], 8);
  assert.equal(state.outbox.length, 2);
});

// The child: a real checkout (in-process app, real LMDB) that sells until a commit fails, reports, waits
// for the parent to lift its file-size limit, then sells again.
const CHILD = `
import { createInterface } from 'node:readline';
import { auth, smallCatalog, startCheckout } from ${JSON.stringify(path.join(ROOT, 'tests/support/checkout.ts'))};
const say = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const kit = await startCheckout(
  { POPKIT_STORE_RESERVE_MB: '0', POPKIT_RISK_MAX_UNSYNCED_CENTS: '100000000', POPKIT_RISK_MAX_UNSYNCED_ORDERS: '1000000' },
  process.argv[2],
);
const put = await kit.app.inject({ method: 'PUT', url: '/v1/catalog', headers: auth, payload: smallCatalog({ A: 1000000 }) });
if (put.statusCode !== 200) throw new Error(put.body);
const order = (i) => kit.app.inject({
  method: 'POST',
  url: '/v1/orders',
  headers: auth,
  payload: { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'token', token: 'tok_sandbox_approve_' + 'x'.repeat(480) + i } },
});
let accepted = 0;
let refused = null;
for (let i = 0; i < 5000 && !refused; i++) {
  const res = await order(i);
  if (res.statusCode === 201) accepted++;
  else refused = { status: res.statusCode, body: res.json() };
}
const health = await kit.app.inject({ method: 'GET', url: '/healthz' });
say({ accepted, refused, health: health.statusCode });
await lines.next(); // the parent lifted the limit: space returned
await new Promise((r) => setTimeout(r, 1100)); // the guard's interval after a failed commit
const after = await order('again');
if (after.statusCode === 201) accepted++;
const healthAfter = await kit.app.inject({ method: 'GET', url: '/healthz' });
await kit.kit.close();
say({ after: after.statusCode, body: after.body, healthAfter: healthAfter.statusCode, accepted });
process.exit(0);
`;

test('an LMDB commit that fails for space: 507 STORE_FULL, /healthz 503, nothing partial, orders resume in the same process', {
  timeout: 120_000,
}, async () => {
  const dir = tempDir('popkit-efbig-');
  const dataDir = path.join(dir, 'data');
  const script = path.join(dir, 'child.mts');
  fs.writeFileSync(script, CHILD);
  // the file-size limit stands for the full volume; SIGXFSZ ignored so the write fails with EFBIG
  const child = spawn(
    'bash',
    [
      '-c',
      `trap '' XFSZ; exec prlimit --fsize=${512 * 1024}:unlimited -- "$@"`,
      'bash',
      process.execPath,
      '--import',
      'tsx',
      script,
      dataDir,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: 'test', POPKIT_LOG_LEVEL: 'silent' },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const out = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  try {
    const first = await out.next();
    assert.ok(!first.done, `the child reported nothing:\n${stderr}`);
    const full = JSON.parse(first.value) as {
      accepted: number;
      refused: { status: number; body: { error: { code: string } } } | null;
      health: number;
    };
    assert.ok(full.refused, 'the store never filled');
    assert.equal(full.refused.status, 507, JSON.stringify(full.refused));
    assert.equal(full.refused.body.error.code, 'STORE_FULL');
    assert.equal(full.health, 503);
    assert.ok(full.accepted > 0);
    // space returns: lift the child's limit
    const node = child.pid as number; // bash exec'd prlimit, which exec'd node: same pid
    await new Promise<void>((resolve, reject) =>
      spawn('prlimit', [`--pid=${node}`, '--fsize=unlimited'], { stdio: 'inherit' }).once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`prlimit exited ${code}`)),
      ),
    );
    child.stdin.write('go\n');
    const second = await out.next();
    assert.ok(!second.done, `the child reported nothing more:\n${stderr}`);
    const resumed = JSON.parse(second.value) as {
      after: number;
      body: string;
      healthAfter: number;
      accepted: number;
    };
    assert.equal(resumed.after, 201, resumed.body);
    assert.equal(resumed.healthAfter, 200);
    assert.equal(await exited, 0, stderr);
    // nothing partial: every accepted order is there with its stock and outbox entry, the refused one not
    const state = await inspectStore(dataDir);
    assert.equal(state.orders.length, resumed.accepted);
    assert.equal(state.stock['A'], 1_000_000 - resumed.accepted);
    assert.equal(state.outbox.length, resumed.accepted);
    assert.equal(state.tokens, resumed.accepted);
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
