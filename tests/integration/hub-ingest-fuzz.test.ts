// Hostile and random batches published to a `popkit hub` worker (its own process, a private Mosquitto, a
// schema of its own): not one ledger row changes, the worker does not crash, and a real order still
// lands afterwards. Valid-shaped batches with hostile text (NUL, lone surrogates, `__proto__` keys) are
// recorded whole or refused whole; what the hub does with them today is asserted, not assumed.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import mqtt from 'mqtt';
import pg from 'pg';
import { topics } from '../../core/contracts/hub-wire.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  dropSchema,
  freePort,
  hubProcessEnv,
  type Mosquitto,
  makeKit,
  mosquitto,
  PG_URL,
  REPO,
  startSync,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const schema = uniqueId('t_ingestfuzz').replace(/-/g, '_');
let broker: Mosquitto;
let kit: TestKit;
let hub: ChildProcess;
let hubOut = '';
let hubPort = 0;
let db: pg.Client;
let sync: SyncService | undefined;
let spy: mqtt.MqttClient;
const captured: Buffer[] = [];

async function ledgerRows(): Promise<string[]> {
  const r = await db.query(`SELECT * FROM "${schema}".orders ORDER BY kit_id, order_id`);
  return r.rows.map((row) => JSON.stringify(row));
}

async function refusals(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${hubPort}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^popkit_hub_refused_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

before(async () => {
  broker = await mosquitto();
  hubPort = await freePort();
  hub = spawn(process.execPath, [path.join(REPO, 'bin/popkit.js'), 'hub'], {
    env: {
      ...process.env,
      POPKIT_LOG_LEVEL: 'warn',
      ...hubProcessEnv({ dataDir: tmpDir('fuzz-hub'), brokerUrl: broker.url, schema, port: hubPort }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  hub.stdout?.on('data', (d) => {
    hubOut = (hubOut + d).slice(-20_000);
  });
  hub.stderr?.on('data', (d) => {
    hubOut = (hubOut + d).slice(-20_000);
  });
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${hubPort}/healthz`).catch(() => null))?.ok,
    30_000,
    'the hub',
  );
  kit = await makeKit(uniqueId('kit'));
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  spy = await mqtt.connectAsync(broker.url, { clientId: uniqueId('spy') });
  await spy.subscribeAsync(topics.orders(kit.kitId), { qos: 1 });
  spy.on('message', (_t, p) => captured.push(Buffer.from(p)));
});

after(async () => {
  await sync?.stop();
  await spy?.endAsync();
  if (hub && hub.exitCode === null && hub.signalCode === null) {
    const gone = new Promise((r) => hub.once('exit', r));
    hub.kill('SIGTERM');
    await gone;
  }
  await db?.end();
  await broker?.stop();
  await kit?.close();
  await dropSchema(schema);
});

const HOSTILE = ['__proto__', 'constructor', '\u0000', 'A\u0000B', '\ud800', 'A\udc00', '', 'x'.repeat(5000)];

test('random and hostile batches change no ledger row and do not crash the hub worker', {
  timeout: 120_000,
}, async () => {
  // a ledger with real rows first, from a real kit through sync (cash and card)
  sync = startSync(kit, broker.url);
  const placed: string[] = [];
  for (let i = 0; i < 6; i++)
    placed.push(await kit.place(i % 2 ? { method: 'token', token: `tok_fuzz_${i}` } : undefined));
  await waitFor(async () => (await ledgerRows()).length === 6, 20_000, 'the first orders in the ledger');
  await sync.stop();
  sync = undefined;
  const base = JSON.parse(captured[0]!.toString()) as {
    v: 1;
    kitId: string;
    sentAt: number;
    entries: Array<{
      id: string;
      order: Record<string, unknown> & { lines: Array<Record<string, unknown>> };
    }>;
  };
  const rowsBefore = await ledgerRows();
  const refusedBefore = await refusals();

  const pub = await mqtt.connectAsync(broker.url, { clientId: uniqueId('hostile') });
  const entry0 = base.entries[0]!;
  const s = (v: unknown) => JSON.stringify(v);
  // batches the contract refuses, or replays of orders the ledger has (first write wins)
  const refusedOrReplayed = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    fc.anything().map((v) => Buffer.from(s(v) ?? 'null')),
    fc.constantFrom(
      '',
      '{',
      'null',
      '[]',
      s({ ...base, v: 2 }),
      s({ ...base, entries: [] }),
      s({ ...base, kitId: 'kit-other' }),
      s({ ...base, sentAt: -1 }),
      `{"__proto__":{"v":1},"kitId":${s(base.kitId)},"sentAt":1,"entries":${s(base.entries)}}`,
      `{"v":1,"constructor":{"prototype":{"x":1}},"kitId":${s(base.kitId)},"sentAt":1,"entries":${s(base.entries)}}`,
    ),
    // one field of a real order entry set to a random or hostile value (same id: a replay at most)
    fc
      .record({
        field: fc.constantFrom('id', 'kitId', 'totalCents', 'currency', 'lines', 'payment', 'catalogVersion'),
        value: fc.oneof(fc.anything(), fc.constantFrom(...HOSTILE), fc.integer({ min: -5, max: 5 })),
      })
      .map(({ field, value }) =>
        s({
          ...base,
          entries: [
            field === 'id'
              ? { ...entry0, id: value }
              : { ...entry0, order: { ...entry0.order, [field]: value } },
          ],
        }),
      ),
    // a replay of a real order with a different total and SKU: the ledger row stays as first written
    fc.record({ total: fc.nat(1_000_000), sku: fc.constantFrom(...HOSTILE, 'CAP') }).map(({ total, sku }) =>
      s({
        ...base,
        entries: [
          {
            ...entry0,
            order: {
              ...entry0.order,
              totalCents: total,
              lines: entry0.order.lines.map((l) => ({ ...l, sku })),
            },
          },
        ],
      }),
    ),
  );
  const payloads = fc.sample(refusedOrReplayed, { numRuns: 300, seed: 16 });
  for (const p of payloads) await pub.publishAsync(topics.orders(kit.kitId), p, { qos: 1 });
  // other leaves and odd topics of the same kit
  for (const p of payloads.slice(0, 40)) {
    await pub.publishAsync(topics.telemetry(kit.kitId), p, { qos: 1 });
    await pub.publishAsync(topics.status(kit.kitId), p, { qos: 1 });
  }
  await pub.publishAsync(`popkit/v1/kits/${kit.kitId}/orders/extra`, payloads[0]!, { qos: 1 });

  // a real order after all of it: once it is in, everything before it was handled
  sync = startSync(kit, broker.url);
  const sentinel = await kit.place();
  await waitFor(async () => (await ledgerRows()).length === 7, 30_000, 'the order after the fuzz');
  await pub.endAsync();

  assert.equal(hub.exitCode, null, `the hub worker died: ${hubOut}`);
  assert.equal(hub.signalCode, null);
  const rowsAfter = await ledgerRows();
  // the rows that were there are byte for byte what they were; the only new row is the sentinel
  assert.deepEqual(
    rowsAfter.filter((r) => !r.includes(sentinel)),
    rowsBefore,
  );
  assert.equal(rowsAfter.length, rowsBefore.length + 1);
  assert.ok((await refusals()) - refusedBefore > 100, 'the hub counted its refusals (the fuzz reached it)');
});

test('valid-shaped new orders with hostile text: recorded as sent or refused, never a crash', async () => {
  const base = JSON.parse(captured[0]!.toString()) as {
    entries: Array<{
      id: string;
      order: Record<string, unknown> & { lines: Array<Record<string, unknown>> };
    }>;
  } & Record<string, unknown>;
  const entry0 = base.entries[0]!;
  const pub = await mqtt.connectAsync(broker.url, { clientId: uniqueId('hostile2') });
  const outcomes: string[] = [];
  for (const [i, text] of HOSTILE.entries()) {
    const id = `fuzz-${i}-${uniqueId('o')}`;
    const order = {
      ...entry0.order,
      id,
      payment: { method: 'cash' },
      lines: entry0.order.lines.map((l) => ({ ...l, sku: text || 'x', name: text })),
    };
    const { token: _t, tokenError: _e, ...rest } = entry0 as Record<string, unknown>;
    await pub.publishAsync(
      topics.orders(kit.kitId),
      JSON.stringify({ ...base, sentAt: Date.now(), entries: [{ ...rest, id, order }] }),
      { qos: 1 },
    );
    // the next real order marks the end of this one's handling
    const mark = await kit.place();
    await waitFor(
      async () => (await db.query(`SELECT 1 FROM "${schema}".orders WHERE order_id = $1`, [mark])).rowCount,
      20_000,
      `the order after hostile text #${i}`,
    );
    const r = await db.query<{ body: { lines: Array<{ sku: string; name: string }> } }>(
      `SELECT body FROM "${schema}".orders WHERE order_id = $1`,
      [id],
    );
    const row = r.rows[0];
    if (row) {
      // recorded: exactly as sent, not mangled
      assert.equal(row.body.lines[0]?.name, text, `hostile text #${i} was changed on its way in`);
      outcomes.push(`#${i} ${JSON.stringify(text.slice(0, 12))}: recorded`);
    } else outcomes.push(`#${i} ${JSON.stringify(text.slice(0, 12))}: refused`);
  }
  await pub.endAsync();
  assert.equal(hub.exitCode, null, `the hub worker died: ${hubOut}`);
  if (process.env['POPKIT_FUZZ_REPORT']) console.log(outcomes.join('\n'));
});
