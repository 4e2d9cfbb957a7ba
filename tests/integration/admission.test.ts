// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Fair admission (services/checkout/admission.ts): the line itself (FIFO whatever order places free
// up in, the queue and wait bounds), then POST /v1/orders on a real app and LMDB: concurrent buyers
// admitted in arrival order (order ids follow the arrival numbers), ADMISSION_FULL with Retry-After and
// the position and nothing written, SOLD_OUT answered from the stock read without a place, replays
// and staff skipping the line, and the flat path (admission off). No timing is asserted.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { allOrders, readAllStock } from '../../core/store/index.ts';
import { ADMISSION_HEADERS, Admission, type Ticket } from '../../services/checkout/admission.ts';
import type { OrderFeature } from '../../services/checkout/order-features.ts';
import { auth } from '../support/checkout.ts';
import { clockedCheckout, FakeClock } from '../support/drops-clock.ts';

const card = { method: 'token', token: 'tok_sandbox_visa_4242' } as const;
const order = (sku = 'ED-1', qty = 1) => ({ lines: [{ sku, qty }], payment: card });

const catalog = (stock: number) => ({
  version: 1,
  eventId: 'ev-adm',
  currency: 'USD',
  items: [
    { sku: 'ED-1', name: 'Edition', priceCents: 5000, stock },
    { sku: 'TEE', name: 'Tee', priceCents: 2500, stock: 8 },
  ],
});

/** A feature that holds every order in `admit` until the test opens the gate (the in-flight ones). */
function gateFeature() {
  let open: () => void = () => {};
  let opened = new Promise<void>((r) => (open = r));
  let entered = 0;
  const feature: OrderFeature = {
    name: 'test-gate',
    async admit() {
      entered++;
      await opened;
    },
  };
  return {
    feature,
    entered: () => entered,
    open: () => open(),
    close: () => {
      opened = new Promise<void>((r) => (open = r));
    },
  };
}

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
};

type Kit = Awaited<ReturnType<typeof clockedCheckout>>;
const kits: Kit[] = [];
after(async () => {
  for (const k of kits) await k.close();
});

async function kitWith(
  stock: number,
  admission: { concurrency: number; queueMax: number; maxWaitMs: number },
  features: OrderFeature[] = [],
) {
  const kit = await clockedCheckout(new FakeClock(), { admission, features });
  kits.push(kit);
  const res = await kit.app.inject({
    method: 'PUT',
    url: '/v1/catalog',
    headers: auth,
    payload: catalog(stock),
  });
  assert.equal(res.statusCode, 200, res.body);
  return kit;
}

/** A buyer at its own address. */
const buyer = (kit: Kit, n: number, body: unknown = order(), headers: Record<string, string> = {}) =>
  kit.app.inject({
    method: 'POST',
    url: '/v1/orders',
    payload: body as object,
    headers,
    remoteAddress: `127.0.${Math.floor(n / 250)}.${(n % 250) + 2}`,
  });

describe('the admission line', () => {
  test('FIFO: waiters are admitted in arrival order whichever in-flight request finishes first', async () => {
    const line = new Admission({ concurrency: 3, queueMax: 100, maxWaitMs: 60_000 });
    const admitted: number[] = [];
    const tickets = new Map<number, Ticket>();
    const all = Array.from({ length: 20 }, () =>
      line.enter().then((t) => {
        admitted.push(t.arrival);
        tickets.set(t.arrival, t);
        return t;
      }),
    );
    await until(() => admitted.length === 3, 'the first three');
    assert.equal(line.waiting, 17);
    // free places in a scrambled order: the line still lets them in by arrival
    const freeOrder = [2, 1, 3, 6, 4, 5, 9, 8, 7, 12, 10, 11, 15, 13, 14, 18, 16, 17, 20, 19];
    for (const n of freeOrder) {
      await until(() => tickets.has(n), `ticket ${n}`);
      tickets.get(n)?.release();
      tickets.get(n)?.release(); // twice is once
    }
    const done = await Promise.all(all);
    assert.deepEqual(
      admitted,
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      done.map((t) => t.admitted),
      done.map((t) => t.arrival),
    );
    assert.deepEqual(
      done.map((t) => t.position),
      [0, 0, 0, ...Array.from({ length: 17 }, (_, i) => i + 1)],
    );
    assert.equal(line.status().admission.inFlight, 0);
  });

  test('bounds: one over the queue length and one over the wait get ADMISSION_FULL; places stay consistent', async () => {
    const line = new Admission({ concurrency: 1, queueMax: 2, maxWaitMs: 30 });
    const first = await line.enter();
    const second = line.enter();
    const third = line.enter();
    await assert.rejects(line.enter(), (e: { code?: string; details?: Record<string, unknown> }) => {
      assert.equal(e.code, 'ADMISSION_FULL');
      assert.equal(e.details?.['position'], 3);
      assert.equal(e.details?.['queueMax'], 2);
      assert.ok(Number(e.details?.['retryAfterS']) >= 1);
      return true;
    });
    // nobody frees the place: both waiters run out of wait
    for (const w of [second, third])
      await assert.rejects(w, (e: { code?: string; details?: Record<string, unknown> }) => {
        assert.equal(e.code, 'ADMISSION_FULL');
        assert.equal(typeof e.details?.['waitedMs'], 'number');
        return true;
      });
    assert.equal(line.waiting, 0);
    first.release();
    const next = await line.enter();
    assert.equal(next.position, 0, 'timed-out waiters left no ghost places');
    next.release();
    assert.deepEqual(
      { ...line.status().admission, concurrency: 0 },
      {
        enabled: true,
        inFlight: 0,
        waiting: 0,
        concurrency: 0,
        queueMax: 2,
        maxWaitMs: 30,
        admitted: 2,
        refused: 3,
        shortCircuited: 0,
      },
    );
  });
});

describe('POST /v1/orders through the line', () => {
  test('concurrent buyers are admitted in arrival order: order ids follow the arrival numbers', async () => {
    const gate = gateFeature();
    const kit = await kitWith(100, { concurrency: 2, queueMax: 100, maxWaitMs: 60_000 }, [gate.feature]);
    const pending = Array.from({ length: 24 }, (_, i) => buyer(kit, i));
    await until(() => gate.entered() === 2 && kit.line.waiting === 22, 'two in flight, 22 waiting');
    gate.open();
    const res = await Promise.all(pending);
    const rows = res.map((r) => {
      assert.equal(r.statusCode, 201, r.body);
      return {
        arrival: Number(r.headers[ADMISSION_HEADERS.arrival]),
        admitted: Number(r.headers[ADMISSION_HEADERS.admitted]),
        position: Number(r.headers[ADMISSION_HEADERS.position]),
        id: r.json().id as string,
      };
    });
    rows.sort((a, b) => a.arrival - b.arrival);
    assert.deepEqual(
      rows.map((r) => r.admitted),
      rows.map((r) => r.arrival),
    );
    assert.equal(rows.filter((r) => r.position === 0).length, 2);
    assert.equal(Math.max(...rows.map((r) => r.position)), 22);
    const ids = rows.map((r) => r.id);
    assert.deepEqual(ids, [...ids].sort(), 'order ids are drawn in admission order');
    assert.equal(readAllStock(kit.store)['ED-1'], 76);
    const metrics = await kit.app.inject({ method: 'GET', url: '/metrics', headers: auth });
    assert.match(metrics.body, /popkit_admission_wait_seconds_count 24/);
    assert.match(metrics.body, /popkit_admission_waiting 0/);
  });

  test('over the queue bound: 503 ADMISSION_FULL with Retry-After and the position, nothing written', async () => {
    const gate = gateFeature();
    const kit = await kitWith(100, { concurrency: 1, queueMax: 2, maxWaitMs: 60_000 }, [gate.feature]);
    const inFlight = buyer(kit, 1);
    await until(() => gate.entered() === 1, 'one in flight');
    const waiting = [buyer(kit, 2), buyer(kit, 3)];
    await until(() => kit.line.waiting === 2, 'two waiting');
    const full = await buyer(kit, 4, order(), { 'idempotency-key': 'full-1' });
    assert.equal(full.statusCode, 503);
    assert.equal(full.json().error.code, 'ADMISSION_FULL');
    assert.equal(full.json().error.details.position, 3);
    assert.ok(Number(full.headers['retry-after']) >= 1);
    assert.equal(full.headers[ADMISSION_HEADERS.position], '3');
    // staff terminals skip the line: the staff order reaches the pipeline while buyers still wait
    const staff = kit.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: auth,
      payload: { lines: [{ sku: 'TEE', qty: 1 }], payment: { method: 'cash' } },
    });
    await until(() => gate.entered() === 2, 'the staff order in the pipeline');
    assert.equal(kit.line.waiting, 2);
    gate.open();
    const [a, b, c, d] = await Promise.all([inFlight, ...waiting, staff]);
    for (const r of [a, b, c, d]) assert.equal(r?.statusCode, 201, r?.body);
    const orders = [...allOrders(kit.store)];
    assert.equal(orders.length, 4, 'the refused one wrote nothing');
    assert.ok(!orders.some((o) => o.idempotencyKey === 'full-1'));
    // the same key later, with room: a first order, not a replay of the refusal
    const again = await buyer(kit, 4, order(), { 'idempotency-key': 'full-1' });
    assert.equal(again.statusCode, 201);
  });

  test('SOLD_OUT comes from the stock read: no place, no write; a replay still answers its order', async () => {
    const kit = await kitWith(1, { concurrency: 2, queueMax: 10, maxWaitMs: 60_000 });
    const first = await buyer(kit, 1, order(), { 'idempotency-key': 'k-first' });
    assert.equal(first.statusCode, 201);
    const admittedBefore = kit.line.status().admission.admitted;
    const res = await Promise.all(Array.from({ length: 30 }, (_, i) => buyer(kit, 10 + i)));
    for (const r of res) {
      assert.equal(r.statusCode, 409);
      assert.deepEqual(r.json().error.details, { sku: 'ED-1', available: 0 });
      assert.equal(r.headers[ADMISSION_HEADERS.arrival], undefined, 'no place taken');
    }
    const st = kit.line.status().admission;
    assert.equal(st.admitted, admittedBefore);
    assert.equal(st.shortCircuited, 30);
    const replay = await buyer(kit, 1, order(), { 'idempotency-key': 'k-first' });
    assert.equal(replay.statusCode, 200);
    assert.equal(replay.json().id, first.json().id);
    assert.equal([...allOrders(kit.store)].length, 1);
    // the same short answer for what the window refuses, and for unknown SKUs and quantities over stock
    const unknown = await buyer(kit, 50, order('NOPE'));
    assert.equal(unknown.json().error.code, 'UNKNOWN_SKU');
    const tooMany = await buyer(kit, 51, order('TEE', 8));
    assert.equal(tooMany.statusCode, 201, 'exactly the stock is not sold out');
    const over = await buyer(kit, 52, order('TEE', 1));
    assert.equal(over.json().error.code, 'SOLD_OUT');
  });

  test('once the units are gone the waiters get SOLD_OUT at once, not at their turn', async () => {
    const gate = gateFeature();
    const kit = await kitWith(2, { concurrency: 1, queueMax: 100, maxWaitMs: 60_000 }, [gate.feature]);
    const first = buyer(kit, 1);
    await until(() => gate.entered() === 1, 'one in flight');
    const waiters = Array.from({ length: 6 }, (_, i) => buyer(kit, 10 + i));
    await until(() => kit.line.waiting === 6, 'six waiting');
    gate.open();
    const [a, ...rest] = await Promise.all([first, ...waiters]);
    assert.equal(a?.statusCode, 201);
    assert.deepEqual(
      rest.map((r) => r.statusCode),
      [201, 409, 409, 409, 409, 409],
      'the next in line buys the last unit; the rest are answered',
    );
    const st = kit.line.status().admission;
    assert.equal(st.admitted, 2, 'only the two that could buy were let in');
    assert.equal(st.shortCircuited, 5);
    assert.equal(st.waiting, 0);
    assert.equal(readAllStock(kit.store)['ED-1'], 0);
  });

  test('admission off (concurrency 0): the flat path, every request straight into the pipeline', async () => {
    const kit = await kitWith(3, { concurrency: 0, queueMax: 0, maxWaitMs: 1 });
    const res = await Promise.all(Array.from({ length: 10 }, (_, i) => buyer(kit, i)));
    const sold = res.filter((r) => r.statusCode === 201);
    assert.equal(sold.length, 3);
    for (const r of res) assert.ok([201, 409].includes(r.statusCode), r.body);
    for (const r of res) assert.equal(r.headers[ADMISSION_HEADERS.arrival], undefined, 'no line');
    assert.equal(readAllStock(kit.store)['ED-1'], 0);
    assert.equal(kit.line.status().admission.enabled, false);
  });

  test('hostile order bodies are refused before the line and take no place', async () => {
    const kit = await kitWith(10, { concurrency: 1, queueMax: 1, maxWaitMs: 60_000 });
    const bodies = [
      '{"lines":[{"sku":"ED-1","qty":1}],"payment":{"method":"token","token":"tok_sandbox_\\u0000"}}',
      '{"lines":[{"sku":"ED-1\\u0000","qty":1}],"payment":{"method":"token","token":"tok_sandbox_x"}}',
      '{"__proto__":{"lines":[]},"lines":[{"sku":"ED-1","qty":1}],"payment":{"method":"cash"}}',
      '{"lines":[{"sku":"ED-1","qty":1e9}],"payment":{"method":"token","token":"tok_sandbox_x"}}',
      `{"lines":${JSON.stringify(Array.from({ length: 101 }, () => ({ sku: 'ED-1', qty: 1 })))},"payment":{"method":"token","token":"tok_sandbox_x"}}`,
      '{"lines":"ED-1","payment":{"method":"token","token":"tok_sandbox_x"}}',
    ];
    for (const payload of bodies) {
      const r = await kit.app.inject({
        method: 'POST',
        url: '/v1/orders',
        headers: { 'content-type': 'application/json' },
        payload,
        remoteAddress: '127.0.9.9',
      });
      assert.equal(r.statusCode, 400, `${payload.slice(0, 80)} → ${r.body}`);
    }
    assert.deepEqual(kit.line.status().admission.admitted, 0);
    assert.equal([...allOrders(kit.store)].length, 0);
  });
});
