// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Over real HTTP: no oversell under 500 concurrent buyers; no plaintext token anywhere on disk.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ADMIN, inspectStore, smallCatalog, startCheckout } from '../support/checkout.ts';

async function listen(kit: Awaited<ReturnType<typeof startCheckout>>): Promise<string> {
  await kit.app.listen({ port: 0, host: '127.0.0.1' });
  const addr = kit.app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return `http://127.0.0.1:${addr.port}`;
}

// as a paired terminal would (the admin token): cash needs one
const post = (base: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}`, ...headers },
    body: JSON.stringify(body),
  });

describe('durability over HTTP', () => {
  test('500 concurrent buyers for 50 units: exactly 50 succeed, the rest get SOLD_OUT, stock 0', async () => {
    const kit = await startCheckout();
    const base = await listen(kit);
    await fetch(`${base}/v1/catalog`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify(smallCatalog({ HERO: 50, OTHER: 1000 })),
    });
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        post(base, {
          lines: [{ sku: 'HERO', qty: 1 }],
          payment: i % 2 ? { method: 'cash' } : { method: 'token', token: `tok_sandbox_approve_${i}` },
        }).then(async (r) => ({
          status: r.status,
          body: (await r.json()) as { id?: string; error?: { code: string } },
        })),
      ),
    );
    const ok = results.filter((r) => r.status === 201);
    const sold = results.filter((r) => r.status === 409);
    assert.equal(ok.length, 50);
    assert.equal(sold.length, 450);
    assert.ok(sold.every((r) => r.body.error?.code === 'SOLD_OUT'));
    assert.equal(new Set(ok.map((r) => r.body.id)).size, 50);
    await kit.kit.close();
    const after = await inspectStore(kit.dataDir);
    assert.equal(after.stock['HERO'], 0);
    assert.equal(after.orders.length, 50);
    assert.deepEqual(new Set(after.orders.map((o) => o.id)), new Set(ok.map((r) => r.body.id)));
    assert.equal(after.outbox.length, 50);
    assert.equal(after.tokens, 25);
  });

  test('no plaintext payment token is ever written to disk', async () => {
    const kit = await startCheckout({ POPKIT_LOG_LEVEL: 'trace' });
    const base = await listen(kit);
    await fetch(`${base}/v1/catalog`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify(smallCatalog({ A: 100 })),
    });
    const secrets = Array.from({ length: 20 }, (_, i) => `tok_live_SECRET${String(i).padStart(4, '0')}xyzzy`);
    for (const token of secrets) {
      const r = await post(base, { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'token', token } });
      assert.equal(r.status, 201);
    }
    // a rejected order carrying a token must not leak it either
    const bad = await post(base, {
      lines: [{ sku: 'NOPE', qty: 1 }],
      payment: { method: 'token', token: 'tok_live_SECRETrejectedxyzzy' },
    });
    assert.equal(bad.status, 400);
    await kit.kit.close();
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(kit.dataDir);
    assert.ok(files.some((f) => f.endsWith('kit.lmdb')));
    for (const f of files) {
      const bytes = fs.readFileSync(f);
      assert.equal(bytes.indexOf('SECRET'), -1, `plaintext token material found in ${f}`);
      assert.equal(bytes.indexOf('xyzzy'), -1, `plaintext token material found in ${f}`);
    }
    const state = await inspectStore(kit.dataDir);
    assert.equal(state.tokens, 20);
  });
});
