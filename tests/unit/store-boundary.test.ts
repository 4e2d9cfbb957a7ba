// The kit store is reachable only through core/store/: no product file outside it opens a sub-database,
// opens a transaction or reads/writes a sub-database directly (a write outside the domain modules could
// break an invariant they own: stock + sold = start, one outbox entry per unsynced order, the risk
// budget moving with the outbox).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PRODUCT_DIRS = ['bin', 'cli', 'core', 'firmware', 'hardware', 'services'];
const STORE_DIR = path.join(ROOT, 'core', 'store');

const FORBIDDEN: RegExp[] = [
  /\.root\.transaction\(/,
  /\.openDB\(/,
  /\.(outbox|tokens|riskq|idempotency)\.\w+\(/,
  /\bstore\.(series|markers)\.\w+\(/,
  /\.(orders|stock|catalog|meta)\.(put|remove|putSync|removeSync|getRange|getKeys|getCount|getKeysCount|getValues|ifNoExists|doesExist)\(/,
  /\bstore\.(orders|stock|catalog|meta)\.get\(/,
];

export function violations(text: string): string[] {
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (FORBIDDEN.some((re) => re.test(line))) out.push(`${i + 1}: ${line.trim()}`);
  });
  return out;
}

function* sourceFiles(dir: string): Generator<string> {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === 'node_modules' || p === STORE_DIR) continue;
      yield* sourceFiles(p);
    } else if (/\.(ts|js|mjs)$/.test(e.name)) yield p;
  }
}

describe('store boundary', () => {
  test('the scan detects a direct store access (self-check)', () => {
    const planted = [
      'await store.root.transaction(() => {});',
      "store.outbox.put([0, 'x'], entry);",
      "this.store.orders.put('x', order);",
      "store.stock.put('TEE', 3);",
      "store.meta.put('k', 1);",
      "kit.store.tokens.get('x');",
      "store.riskq.remove('x');",
      'store.series.put(1, {});',
      'kit.store.markers.getRange({});',
      "const o = kit.store.orders.get('x');",
      "root.openDB({ name: 'x' });",
    ];
    for (const line of planted) assert.equal(violations(line).length, 1, `not detected: ${line}`);
    assert.deepEqual(
      violations('const order = orders.get(req.params.id);\nconst c = cat.catalog.eventId;'),
      [],
    );
  });

  test('no product file outside core/store/ touches the LMDB store directly', () => {
    const found: string[] = [];
    for (const dir of PRODUCT_DIRS) {
      for (const file of sourceFiles(path.join(ROOT, dir))) {
        for (const v of violations(fs.readFileSync(file, 'utf8')))
          found.push(`${path.relative(ROOT, file)}:${v}`);
      }
    }
    assert.deepEqual(
      found,
      [],
      'go through core/store/ (catalog, orders, outbox, tokens, risk, event, declines)',
    );
  });
});
