// The contracts of core/contracts/ and the shared primitives beside them, with hostile values: NUL,
// huge, `__proto__`, wrong types, replays. Each seam's two ends use these very checkers, so what is
// refused here is refused at both ends.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import Fastify from 'fastify';
import { Backoff, backoffDelay, retryWithBackoff } from '../../core/backoff.ts';
import {
  CATALOG_LIMITS,
  CatalogInput,
  catalogInput,
  HubCatalogBody,
  validateCatalog,
} from '../../core/contracts/catalog.ts';
import { CATALOG_VERSION_MAX, contract, isSafeText } from '../../core/contracts/common.ts';
import { entryProblems, topics, WireCatalog, wire } from '../../core/contracts/hub-wire.ts';
import { LANE_NAMES, LANES, laneOfPriority } from '../../core/contracts/lanes.ts';
import { kitdCommand, localTopics, supervisorCommand, syncCommand } from '../../core/contracts/local-bus.ts';
import { parseMediaCommand } from '../../core/contracts/media.ts';
import { mainBattery, type PowerReading } from '../../core/contracts/power.ts';
import { readRunStatus, runStatusContract, writeRunStatus } from '../../core/contracts/run-status.ts';
import { dataLayout, hubDataLayout } from '../../core/data-dir.ts';
import { ERROR_STATUS, isErrorCode, KitError, toErrorCode } from '../../core/errors.ts';
import { errorEnvelopePlugin, mapError } from '../../core/http-errors.ts';
import { pollLoop } from '../../core/poll-loop.ts';
import {
  announceAdminToken,
  loadDependentKey,
  loadOrCreateKey,
  loadOrCreateToken,
  readToken,
} from '../../core/secrets.ts';
import { makeTempDir } from '../support/tmp.ts';

const tmp = () => makeTempDir('popkit-contracts-');

function catalog(items = 2, extra: Record<string, unknown> = {}) {
  return {
    version: 1,
    eventId: 'ev-1',
    items: Array.from({ length: items }, (_, i) => ({
      sku: `SKU-${i}`,
      name: `Item ${i}`,
      priceCents: 1000,
      stock: 5,
    })),
    ...extra,
  };
}

describe('catalog: one schema for kit and hub', () => {
  test('the hub-link catalog is the kit catalog, and the hub PUT body has the same limits', () => {
    assert.equal(WireCatalog, CatalogInput);
    assert.equal(HubCatalogBody.additionalProperties, false);
    assert.equal(HubCatalogBody.properties.items, CatalogInput.properties.items);
    const hubBody = contract(HubCatalogBody);
    // what the kit refuses, the hub refuses too (it used to take 10,000 items and unknown fields)
    const tooMany = catalog(CATALOG_LIMITS.items + 1);
    assert.equal(catalogInput.check(tooMany), false);
    assert.equal(hubBody.check(tooMany), false);
    const signedPayload = (c: unknown) => ({
      v: 1,
      eventId: 'ev-1',
      version: 1,
      issuedAt: 'now',
      catalog: c,
    });
    assert.equal(wire.catalogPayload.check(signedPayload(tooMany)), false);
    assert.equal(wire.catalogPayload.check(signedPayload(catalog(3))), true);
    const badSku = catalog(1);
    badSku.items[0]!.sku = 'has space';
    assert.equal(hubBody.check(badSku), false);
    assert.equal(catalogInput.check(catalog(CATALOG_LIMITS.items)), true);
  });

  test('hostile catalogs get VALIDATION and name the problem', () => {
    const cases: Array<[string, unknown]> = [
      [
        '__proto__ key',
        JSON.parse(
          '{"version":1,"eventId":"e","items":[{"sku":"A","name":"a","priceCents":1,"stock":1}],"__proto__":{"x":1}}',
        ),
      ],
      [
        '__proto__ in an item',
        JSON.parse(
          '{"version":1,"eventId":"e","items":[{"sku":"A","name":"a","priceCents":1,"stock":1,"__proto__":{"hero":true}}]}',
        ),
      ],
      ['string price', { ...catalog(1), items: [{ sku: 'A', name: 'a', priceCents: '1', stock: 1 }] }],
      ['negative stock', { ...catalog(1), items: [{ sku: 'A', name: 'a', priceCents: 1, stock: -1 }] }],
      ['float version', { ...catalog(1), version: 1.5 }],
      ['event id with a topic wildcard', { ...catalog(1), eventId: 'a/+/#' }],
      ['event id with NUL', { ...catalog(1), eventId: 'ev\u0000' }],
      ['SKU with NUL', { ...catalog(1), items: [{ sku: 'A\u0000', name: 'a', priceCents: 1, stock: 1 }] }],
      [
        'huge name',
        { ...catalog(1), items: [{ sku: 'A', name: 'x'.repeat(10_000), priceCents: 1, stock: 1 }] },
      ],
      ['name with NUL', { ...catalog(1), items: [{ sku: 'A', name: 'a\u0000b', priceCents: 1, stock: 1 }] }],
      [
        'name with a C0 control',
        { ...catalog(1), items: [{ sku: 'A', name: 'a\u001bb', priceCents: 1, stock: 1 }] },
      ],
      [
        'name with a line feed',
        { ...catalog(1), items: [{ sku: 'A', name: 'a\nb', priceCents: 1, stock: 1 }] },
      ],
      ['name with DEL', { ...catalog(1), items: [{ sku: 'A', name: 'a\u007f', priceCents: 1, stock: 1 }] }],
      [
        'name with a lone high surrogate',
        { ...catalog(1), items: [{ sku: 'A', name: 'a\ud800', priceCents: 1, stock: 1 }] },
      ],
      [
        'name with a lone low surrogate',
        { ...catalog(1), items: [{ sku: 'A', name: '\udc00a', priceCents: 1, stock: 1 }] },
      ],
      [
        'name with swapped surrogates',
        { ...catalog(1), items: [{ sku: 'A', name: '\ude00\ud83d', priceCents: 1, stock: 1 }] },
      ],
      [
        'description with NUL',
        { ...catalog(1), items: [{ sku: 'A', name: 'a', description: 'x\u0000', priceCents: 1, stock: 1 }] },
      ],
      [
        'image URL with a control',
        {
          ...catalog(1),
          items: [{ sku: 'A', name: 'a', imageUrl: 'http://x/\u0007', priceCents: 1, stock: 1 }],
        },
      ],
      [
        'bundle name with NUL',
        { ...catalog(1), bundles: [{ id: 'B', name: 'b\u0000', skus: ['S0'], priceCents: 1 }] },
      ],
      ['version above PostgreSQL integer', { ...catalog(1), version: CATALOG_VERSION_MAX + 1 }],
      ['version 1e300', { ...catalog(1), version: 1e300 }],
      ['no items', { ...catalog(1), items: [] }],
      ['array', []],
      ['null', null],
    ];
    for (const [name, value] of cases) {
      assert.throws(
        () => validateCatalog(value),
        (e: unknown) => e instanceof KitError && e.code === 'VALIDATION' && e.message.length > 0,
        name,
      );
    }
  });

  test('text may be any language, emoji and (descriptions only) line breaks', () => {
    const ok = {
      ...catalog(1),
      version: CATALOG_VERSION_MAX,
      items: [
        {
          sku: 'S0',
          name: 'Tシャツ 😀 Ünïcødé',
          description: 'line one\nline two\ttabbed\r\n',
          imageUrl: 'https://cdn.example/é.png',
          priceCents: 1,
          stock: 1,
        },
      ],
    };
    assert.equal(validateCatalog(ok), ok);
    assert.equal(isSafeText('😀'), true);
    assert.equal(isSafeText('\ud83d'), false);
    assert.equal(isSafeText('a\u0000'), false);
  });

  test('rules beyond the schema: duplicate SKUs and bundles of unknown SKUs', () => {
    const dup = catalog(2);
    dup.items[1]!.sku = 'SKU-0';
    assert.throws(() => validateCatalog(dup), /duplicate sku SKU-0/);
    const bundle = catalog(2, { bundles: [{ id: 'B', name: 'b', skus: ['SKU-0', 'NOPE'], priceCents: 1 }] });
    assert.throws(() => validateCatalog(bundle), /unknown sku NOPE/);
    assert.equal(validateCatalog(catalog(2)).items.length, 2);
  });

  test('SKUs named like Object.prototype members are ordinary SKUs', () => {
    const c = catalog(0);
    c.items = ['constructor', 'toString', 'valueOf', 'hasOwnProperty'].map((sku) => ({
      sku,
      name: sku,
      priceCents: 1,
      stock: 1,
    }));
    assert.equal(validateCatalog(c).items.length, 4);
  });
});

describe('hub wire', () => {
  const order = {
    id: '01J0000000000000000000000A',
    kitId: 'kit-1',
    eventId: 'ev',
    catalogVersion: 1,
    totalCents: 100,
    currency: 'EUR',
    lines: [{ sku: 'A', name: 'a', qty: 1, unitPriceCents: 100, lineCents: 100 }],
    payment: { method: 'cash' },
    createdAt: '2026-11-30T12:00:00.000Z',
  };
  const batch = (entries: unknown[], kitId = 'kit-1') => ({ v: 1, kitId, sentAt: 1, entries });

  test('a batch from a kit is checked entry by entry', () => {
    assert.ok(wire.batch.check(batch([{ lane: 'orders', id: order.id, order }])));
    assert.deepEqual(entryProblems({ lane: 'orders', id: order.id, order }, 'kit-1'), []);
    // the envelope as a whole, then each entry on its own (the hub dead-letters a bad entry alone)
    const sound = (value: unknown) => {
      const b = value as { kitId: string; entries: unknown[] };
      return wire.batch.check(value) && b.entries.every((e) => entryProblems(e, b.kitId).length === 0);
    };
    const bad: Array<[string, unknown]> = [
      ['kit id with a wildcard', batch([{ lane: 'orders', id: order.id, order }], 'kit/+')],
      ['no entries', batch([])],
      ['unknown lane', batch([{ lane: 'priority', id: 'x', at: 1, body: {} }])],
      [
        'negative quantity',
        batch([
          { lane: 'orders', id: order.id, order: { ...order, lines: [{ ...order.lines[0], qty: -1 }] } },
        ]),
      ],
      ['string amount', batch([{ lane: 'orders', id: order.id, order: { ...order, totalCents: '100' } }])],
      ['wrong version', { ...batch([{ lane: 'orders', id: order.id, order }]), v: 2 }],
      ['oversized token', batch([{ lane: 'orders', id: order.id, order, token: 'x'.repeat(5000) }])],
      [
        'NUL in a name',
        batch([
          {
            lane: 'orders',
            id: order.id,
            order: { ...order, lines: [{ ...order.lines[0], name: 'a\u0000' }] },
          },
        ]),
      ],
      [
        '__proto__ sku',
        batch([
          {
            lane: 'orders',
            id: order.id,
            order: { ...order, lines: [{ ...order.lines[0], sku: '__proto__' }] },
          },
        ]),
      ],
      [
        'line not qty × price',
        batch([
          {
            lane: 'orders',
            id: order.id,
            order: { ...order, lines: [{ ...order.lines[0], lineCents: 99 }], totalCents: 99 },
          },
        ]),
      ],
      ['total not the sum', batch([{ lane: 'orders', id: order.id, order: { ...order, totalCents: 101 } }])],
      ['another kit inside', batch([{ lane: 'orders', id: order.id, order: { ...order, kitId: 'kit-2' } }])],
      ['not a time', batch([{ lane: 'orders', id: order.id, order: { ...order, createdAt: 'now' } }])],
      [
        'lower-case currency',
        batch([{ lane: 'orders', id: order.id, order: { ...order, currency: 'eur' } }]),
      ],
    ];
    for (const [name, value] of bad) assert.equal(sound(value), false, name);
    // one bad entry does not make the envelope bad
    assert.ok(
      wire.batch.check(batch([{ lane: 'orders', id: order.id, order: { ...order, totalCents: 101 } }])),
    );
    assert.equal(wire.batch.parse('{"v":1,'), undefined, 'torn JSON');
    const huge = batch(
      Array.from({ length: 5001 }, (_, i) => ({ lane: 'stock', id: `s${i}`, at: 1, stock: {} })),
    );
    assert.equal(wire.batch.check(huge), false, 'more than 5000 entries');
  });

  test('acks name a lane, an id and a known state', () => {
    assert.ok(wire.ack.check({ v: 1, kitId: 'k', acks: [{ lane: 'orders', id: 'a', state: 'settled' }] }));
    assert.equal(
      wire.ack.check({ v: 1, kitId: 'k', acks: [{ lane: 'orders', id: 'a', state: 'paid' }] }),
      false,
    );
    assert.equal(
      wire.ack.check({ v: 1, kitId: 'k', acks: [{ lane: '__proto__', id: 'a', state: 'settled' }] }),
      false,
    );
  });

  test('topics put the kit id at one level', () => {
    assert.equal(topics.orders('kit-1'), 'popkit/v1/kits/kit-1/orders');
    assert.equal(topics.catalog('ev-1'), 'popkit/v1/events/ev-1/catalog');
  });
});

describe('lanes', () => {
  test('priorities are distinct, dense and map back', () => {
    assert.deepEqual(
      LANE_NAMES.map((l) => LANES[l]),
      [0, 1, 2, 3],
    );
    for (const l of LANE_NAMES) assert.equal(laneOfPriority(LANES[l]), l);
    assert.equal(laneOfPriority(4), undefined);
    assert.equal(laneOfPriority(-1), undefined);
  });
});

describe('local bus', () => {
  test('every topic follows the configured prefix', () => {
    const t = localTopics('venue/kit-7/');
    assert.equal(t.prefix, 'venue/kit-7');
    for (const topic of [
      t.kitdStatus,
      t.kitdEvents,
      t.kitdCmd,
      t.mediaStats,
      t.mediaCmd,
      t.syncCmd,
      t.supervisorCmd,
    ]) {
      assert.ok(topic.startsWith('venue/kit-7/'), topic);
    }
    assert.deepEqual(t.parse('venue/kit-7/media/stats'), { service: 'media', leaf: 'stats' });
    assert.equal(t.parse('popkit/v1/local/media/stats'), undefined);
    assert.equal(t.parse('venue/kit-7/media/stats/extra'), undefined);
    assert.equal(t.parse('venue/kit-7//stats'), undefined);
    assert.equal(localTopics().syncCmd, 'popkit/v1/local/sync/cmd');
  });

  test('commands: wrong JSON, wrong version, wrong types and hostile names are refused', () => {
    assert.deepEqual(syncCommand.parse('{"v":1,"cmd":"flush"}'), { v: 1, cmd: 'flush' });
    for (const raw of [
      '',
      'flush',
      '{"cmd":"flush"}',
      '{"v":2,"cmd":"flush"}',
      '{"v":1,"cmd":"FLUSH"}',
      'null',
      '[]',
    ]) {
      assert.equal(syncCommand.parse(raw), undefined, raw);
    }
    assert.ok(supervisorCommand.parse('{"v":1,"cmd":"restart","service":"media"}'));
    for (const service of ['../etc', 'a\u0000b', '__proto__', 'x'.repeat(40), 'Media', '']) {
      assert.equal(
        supervisorCommand.parse(JSON.stringify({ v: 1, cmd: 'restart', service })),
        undefined,
        service,
      );
    }
    assert.ok(kitdCommand.parse('{"cmd":"action","action":"mark-moment"}'));
    assert.equal(kitdCommand.parse('{"cmd":"action","action":"rm -rf"}'), undefined);
    assert.equal(kitdCommand.parse('{"cmd":"press","button":"c"}'), undefined);
    assert.equal(kitdCommand.parse('{"cmd":"press","button":"a","ms":1e9}'), undefined);
  });

  test('media commands: coded errors', () => {
    assert.deepEqual(parseMediaCommand('{"v":1,"cmd":"set-step","step":2}'), {
      v: 1,
      cmd: 'set-step',
      step: 2,
    });
    assert.throws(
      () => parseMediaCommand('nope'),
      (e: unknown) => e instanceof KitError && e.code === 'BAD_REQUEST',
    );
    for (const raw of [
      '{"v":1,"cmd":"set-step","step":-1}',
      '{"v":1,"cmd":"set-step","step":"2"}',
      '{"cmd":"pause"}',
    ]) {
      assert.throws(
        () => parseMediaCommand(raw),
        (e: unknown) => e instanceof KitError && e.code === 'VALIDATION',
        raw,
      );
    }
  });
});

describe('power', () => {
  test('the main battery is the first reading with a SOC', () => {
    const at = new Date(0).toISOString();
    const readings: PowerReading[] = [
      { device: 'mppt', driver: 'vedirect', batteryV: 13.2, chargeState: 'bulk', stale: false, at },
      { device: 'shunt', driver: 'ina226', batteryV: 13.1, socPct: 71.2, stale: false, at },
    ];
    assert.deepEqual(mainBattery(readings), { device: 'shunt', socPct: 71.2, batteryV: 13.1, stale: false });
    assert.deepEqual(mainBattery(readings.slice(0, 1)), {
      device: 'mppt',
      batteryV: 13.2,
      chargeState: 'bulk',
      stale: false,
    });
    assert.equal(mainBattery([]), undefined);
  });
});

describe('run-status files', () => {
  const checkout = { state: 'up' as const, port: 8080 };

  test('round trip, stamped with time and pid', () => {
    const dir = tmp();
    writeRunStatus(dir, 'checkout', checkout);
    const back = readRunStatus(dir, 'checkout');
    assert.equal(back?.port, 8080);
    assert.equal(back?.pid, process.pid);
    assert.ok(runStatusContract('checkout').check(back));
    assert.ok(fs.existsSync(dataLayout(dir).runStatus('checkout')));
  });

  test('a writer of the wrong shape fails in tests and writes nothing', () => {
    const dir = tmp();
    assert.throws(
      () => writeRunStatus(dir, 'checkout', { state: 'up', port: 'eighty' } as never),
      (e: unknown) => e instanceof KitError && /run\/checkout\.json does not match/.test(e.message),
    );
    assert.equal(fs.existsSync(dataLayout(dir).runStatus('checkout')), false);
  });

  test('a reader treats a torn, foreign or hostile file as absent', () => {
    const dir = tmp();
    const file = dataLayout(dir).runStatus('checkout');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    for (const text of [
      '{"state":"up","port":80',
      '{"state":"up","port":80}', // no stamp
      '{"state":"down","port":80,"updatedAt":"x","pid":1}',
      '{"__proto__":{"polluted":true},"state":"up","port":"80","updatedAt":"x","pid":1}',
      '\u0000',
      '',
    ]) {
      fs.writeFileSync(file, text);
      assert.equal(readRunStatus(dir, 'checkout'), undefined, text);
    }
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal(readRunStatus(tmp(), 'sync'), undefined);
  });
});

describe('errors', () => {
  test('the table is closed: only its own keys are codes', () => {
    for (const code of Object.keys(ERROR_STATUS)) assert.ok(isErrorCode(code));
    for (const bogus of ['toString', '__proto__', 'constructor', 'NOPE', '', 42, null]) {
      assert.equal(isErrorCode(bogus), false, String(bogus));
    }
    assert.equal(toErrorCode('SOLD_OUT', 'INTERNAL'), 'SOLD_OUT');
    assert.equal(toErrorCode('hasOwnProperty', 'BAD_REQUEST'), 'BAD_REQUEST');
    // codes that once fell through to 500 have their own status
    assert.equal(new KitError('TOKEN_INVALID', 'x').status, 422);
    assert.equal(new KitError('CATALOG_UNVERIFIABLE', 'x').status, 400);
  });

  test('one plugin maps every error of an app to the envelope', async () => {
    const app = Fastify({ logger: false });
    const seen: string[] = [];
    await app.register(errorEnvelopePlugin, { onError: (_req, m) => seen.push(m.code) });
    app.get('/kit', async () => {
      throw new KitError('SOLD_OUT', 'gone', { sku: 'A' });
    });
    app.get('/boom', async () => {
      throw new Error('secret database text');
    });
    app.post('/v', { schema: { body: { type: 'object', required: ['a'] } } }, async () => 'ok');
    const kit = await app.inject({ method: 'GET', url: '/kit' });
    assert.equal(kit.statusCode, 409);
    assert.deepEqual(kit.json(), { error: { code: 'SOLD_OUT', message: 'gone', details: { sku: 'A' } } });
    const boom = await app.inject({ method: 'GET', url: '/boom' });
    assert.equal(boom.statusCode, 500);
    assert.deepEqual(boom.json(), { error: { code: 'INTERNAL', message: 'internal error' } });
    const v = await app.inject({ method: 'POST', url: '/v', payload: {} });
    assert.equal(v.statusCode, 400);
    assert.equal(v.json().error.code, 'VALIDATION');
    const bad = await app.inject({
      method: 'POST',
      url: '/v',
      payload: '{"a":',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(bad.json().error.code, 'BAD_REQUEST');
    const missing = await app.inject({ method: 'GET', url: '/nope?x=1' });
    assert.equal(missing.statusCode, 404);
    assert.deepEqual(missing.json(), { error: { code: 'NOT_FOUND', message: 'no route GET /nope' } });
    assert.deepEqual(seen, ['SOLD_OUT', 'INTERNAL', 'VALIDATION', 'BAD_REQUEST']);
    await app.close();
  });

  test('mapError never passes a foreign code through', () => {
    const m = mapError(Object.assign(new Error('x'), { statusCode: 418, code: 'FST_SOMETHING' }));
    assert.equal(m.code, 'BAD_REQUEST');
    assert.equal(mapError('a string').code, 'INTERNAL');
  });
});

describe('backoff', () => {
  test('grows by the factor from the initial delay up to the cap', () => {
    const p = { initialMs: 100, maxMs: 1000 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, p)),
      [100, 200, 400, 800, 1000, 1000],
    );
    assert.equal(backoffDelay(10_000, p), 1000, 'a huge attempt count stays finite');
    assert.equal(backoffDelay(2, { ...p, factor: 3 }), 900);
  });

  test('equal jitter stays within [ceiling/2, ceiling] and the state resets', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 10_000, jitter: 'equal' }, () => 0);
    assert.deepEqual([b.next(), b.next(), b.next()], [50, 100, 200]);
    const hi = new Backoff({ initialMs: 100, maxMs: 10_000, jitter: 'equal' }, () => 0.999999);
    assert.deepEqual([hi.next(), hi.next()], [100, 200]);
    b.reset();
    assert.equal(b.attempts, 0);
    assert.equal(b.next(), 50);
  });

  test('retryWithBackoff retries what is retryable, with growing waits, and throws the rest at once', async () => {
    const waits: number[] = [];
    let calls = 0;
    const v = await retryWithBackoff(
      async () => {
        if (++calls < 4) throw new Error('transient');
        return 'done';
      },
      {
        policy: { initialMs: 10, maxMs: 1000 },
        retryable: () => true,
        sleep: async (ms) => void waits.push(ms),
      },
    );
    assert.equal(v, 'done');
    assert.deepEqual(waits, [10, 20, 40]);
    await assert.rejects(
      retryWithBackoff(async () => Promise.reject(new Error('fatal')), {
        policy: { initialMs: 10, maxMs: 1000 },
        retryable: () => false,
        sleep: async () => assert.fail('must not wait'),
      }),
      /fatal/,
    );
  });
});

describe('poll loop', () => {
  test('never overlaps a slow run, reports errors and keeps going, stops', async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const errors: unknown[] = [];
    const loop = pollLoop(
      5,
      async () => {
        runs++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 30));
        running--;
        if (runs === 1) throw new Error('first run fails');
      },
      { onError: (e) => errors.push(e), immediate: true },
    );
    await new Promise((r) => setTimeout(r, 150));
    loop.stop();
    const after = runs;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(maxRunning, 1);
    assert.ok(runs >= 2, `ran ${runs} times`);
    assert.equal(errors.length, 1);
    assert.ok(runs <= after + 1, 'no new run starts after stop');
  });

  test('an aligned tick never runs before its wall-clock boundary, though its timer fires early', () => {
    // Node's timers count from the event loop's cached time, which lags the wall clock by the work
    // done since the loop woke: a timer armed after a 7 ms task fires 7 ms before the boundary
    let wall = 10_000;
    let lag = 0;
    const due: Array<{ at: number; cb: () => void }> = [];
    const timers = {
      now: () => wall,
      setTimeout: (cb: () => void, ms: number) => {
        const h = { at: wall + ms - lag, cb };
        lag = 0;
        due.push(h);
        return h;
      },
      clearTimeout: (h: unknown) => {
        const i = due.indexOf(h as (typeof due)[number]);
        if (i >= 0) due.splice(i, 1);
      },
    };
    const seconds: number[] = [];
    const task = () => {
      seconds.push(Math.floor(wall / 1000) - 1);
      lag = 7;
    };
    const loop = pollLoop(1000, task, { aligned: true, timers });
    for (let i = 0; i < 40 && due.length > 0; i++) {
      const next = due.shift() as (typeof due)[number];
      wall = Math.max(wall, next.at);
      next.cb();
    }
    loop.stop();
    assert.ok(seconds.length >= 5, `${seconds.length} ticks`);
    // one tick per second, every second: the second just ended, each once
    assert.deepEqual(
      seconds,
      seconds.map((_, i) => (seconds[0] as number) + i),
    );
    // a wall clock stepped back (NTP) is not waited out: the loop runs and aligns to it anew
    let ran = 0;
    const back = pollLoop(1000, () => ran++, { aligned: true, timers });
    const first = due.shift() as (typeof due)[number];
    wall -= 3_600_000;
    first.cb();
    assert.equal(ran, 1);
    back.stop();
  });
});

describe('secrets', () => {
  test('generated once, 0600 in a 0700 dir; the environment wins; readers never create', () => {
    const dir = tmp();
    const layout = dataLayout(dir);
    assert.equal(readToken(layout.adminToken), undefined);
    assert.equal(fs.existsSync(layout.adminToken), false);
    const a = loadOrCreateToken(layout.adminToken);
    assert.equal(a.created, true);
    assert.equal(fs.statSync(layout.adminToken).mode & 0o777, 0o600);
    assert.equal(fs.statSync(layout.keys).mode & 0o777, 0o700);
    const b = loadOrCreateToken(layout.adminToken);
    assert.equal(b.created, false);
    assert.equal(b.value, a.value);
    assert.equal(readToken(layout.adminToken), a.value);
    assert.equal(loadOrCreateToken(layout.adminToken, 'from-env-token-xyz').value, 'from-env-token-xyz');
    const k = loadOrCreateKey(layout.tokenKey);
    assert.equal(k.value.length, 32);
    assert.deepEqual(loadOrCreateKey(layout.tokenKey).value, k.value);
  });

  test('a damaged key is a coded error naming the file; a damaged admin token is replaced, loudly', () => {
    const dir = tmp();
    const layout = dataLayout(dir);
    fs.mkdirSync(layout.keys, { recursive: true, mode: 0o700 });
    fs.writeFileSync(layout.tokenKey, Buffer.alloc(7, 1), { mode: 0o600 });
    assert.throws(
      () => loadOrCreateKey(layout.tokenKey),
      (e: unknown) =>
        e instanceof KitError &&
        e.code === 'CONFIG_INVALID' &&
        e.message.includes(layout.tokenKey) &&
        /torn/.test(e.message),
    );
    assert.equal(fs.readFileSync(layout.tokenKey).length, 7, 'the damaged key is left as it was');
    fs.writeFileSync(layout.adminToken, '', { mode: 0o600 });
    const t = loadOrCreateToken(layout.adminToken);
    assert.equal(t.created, true);
    assert.equal(t.replaced, 'empty');
    assert.equal(readToken(layout.adminToken), t.value);
    assert.equal(
      fs.readdirSync(layout.keys).filter((f) => f.startsWith('admin.token.damaged-')).length,
      1,
      'the damaged file is kept beside it',
    );
  });

  test('a secret file group or others may read is refused (SECRET_INSECURE), and left as it is', () => {
    const dir = tmp();
    const layout = dataLayout(dir);
    const k = loadOrCreateKey(layout.tokenKey);
    for (const mode of [0o640, 0o604, 0o620]) {
      fs.chmodSync(layout.tokenKey, mode);
      assert.throws(
        () => loadOrCreateKey(layout.tokenKey),
        (e: unknown) =>
          e instanceof KitError && e.code === 'SECRET_INSECURE' && e.message.includes('chmod 600'),
      );
      assert.throws(
        () => loadDependentKey(layout.tokenKey, undefined, () => false),
        (e: unknown) => e instanceof KitError && e.code === 'SECRET_INSECURE',
      );
    }
    assert.deepEqual(fs.readFileSync(layout.tokenKey), k.value);
    loadOrCreateToken(layout.adminToken);
    fs.chmodSync(layout.adminToken, 0o644);
    assert.throws(
      () => loadOrCreateToken(layout.adminToken),
      (e: unknown) => e instanceof KitError && e.code === 'SECRET_INSECURE',
    );
  });

  test('a key sealed tokens depend on is never replaced: missing, empty or torn is reported', () => {
    const dir = tmp();
    const layout = dataLayout(dir);
    const first = loadDependentKey(layout.tokenKey, undefined, () => false);
    assert.equal(first.state, 'ok');
    const cases: Array<[string, () => void]> = [
      ['missing', () => {}],
      ['empty', () => fs.writeFileSync(layout.tokenKey, '', { mode: 0o600 })],
      ['empty', () => fs.writeFileSync(layout.tokenKey, Buffer.alloc(32), { mode: 0o600 })],
      ['torn', () => fs.writeFileSync(layout.tokenKey, Buffer.alloc(16, 7), { mode: 0o600 })],
      ['torn', () => fs.writeFileSync(layout.tokenKey, Buffer.alloc(33, 7), { mode: 0o600 })],
    ];
    for (const [state, damage] of cases) {
      fs.rmSync(layout.tokenKey, { force: true });
      damage();
      const before = fs.existsSync(layout.tokenKey) ? fs.readFileSync(layout.tokenKey) : undefined;
      const got = loadDependentKey(layout.tokenKey, undefined, () => true);
      assert.equal(got.state, state);
      assert.ok(got.state !== 'ok' && got.message.includes(layout.tokenKey));
      const after = fs.existsSync(layout.tokenKey) ? fs.readFileSync(layout.tokenKey) : undefined;
      assert.deepEqual(after, before, `${state}: the file is untouched`);
      // with nothing depending on it, the key is made anew (and says so)
      const fresh = loadDependentKey(layout.tokenKey, undefined, () => false);
      assert.ok(fresh.state === 'ok' && fresh.value.length === 32);
      if (state !== 'missing') assert.equal(fresh.state === 'ok' && fresh.replaced, state);
    }
  });

  test('a generated admin token is announced by path only under balena', () => {
    const line = announceAdminToken('tok-0123456789abcdef', '/data/keys/admin.token', {});
    assert.ok(line.includes('tok-0123456789abcdef'));
    for (const env of [{ BALENA: '1' }, { BALENA_DEVICE_UUID: 'abc' }]) {
      const b = announceAdminToken('tok-0123456789abcdef', '/data/keys/admin.token', env);
      assert.ok(!b.includes('tok-0123456789abcdef') && b.includes('/data/keys/admin.token'), b);
    }
  });
});

describe('data dir', () => {
  test('every sub-path lives under its root', () => {
    const l = dataLayout('/data');
    assert.equal(l.store, '/data/kit.lmdb');
    assert.equal(l.adminToken, '/data/keys/admin.token');
    assert.equal(l.runStatus('kitd'), '/data/run/kitd.json');
    assert.equal(l.log('media'), '/data/logs/media.log');
    const h = hubDataLayout('/data/hub');
    assert.equal(h.signingPub, '/data/hub/keys/hub-signing.pub');
    assert.equal(h.pglite, '/data/hub/hub-db');
  });
});
