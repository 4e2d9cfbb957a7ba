import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { orderByDuration, readDurations } from '../support/suite-runner.ts';

test('the suite starts its longest files first, unknown ones as 30 s, ties by name', () => {
  const files = [
    'tests/unit/a.test.ts',
    'tests/e2e/slow.test.ts',
    'tests/unit/b.test.ts',
    'tests/new.test.ts',
  ];
  const order = orderByDuration(files, {
    'tests/e2e/slow.test.ts': 120,
    'tests/unit/a.test.ts': 2,
    'tests/unit/b.test.ts': 2,
  });
  assert.deepEqual(order, [
    'tests/e2e/slow.test.ts',
    'tests/new.test.ts',
    'tests/unit/a.test.ts',
    'tests/unit/b.test.ts',
  ]);
  // the input is not reordered in place
  assert.equal(files[0], 'tests/unit/a.test.ts');
});

test('hostile durations files order by name and never throw', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'durations-'));
  const write = (text: string) => {
    const f = path.join(dir, 'd.json');
    fs.writeFileSync(f, text);
    return readDurations(f);
  };
  assert.deepEqual({ ...readDurations(path.join(dir, 'missing.json')) }, {});
  assert.deepEqual({ ...write('not json\0') }, {});
  assert.deepEqual({ ...write('[1,2]') }, {});
  assert.deepEqual({ ...write('null') }, {});
  const d = write('{"__proto__": 500, "constructor": "9", "tests/x.test.ts": 7}');
  assert.equal(Object.getPrototypeOf({}).polluted, undefined);
  assert.deepEqual(Object.keys(d).sort(), ['__proto__', 'tests/x.test.ts']);
  // a file named like a prototype property gets the default, not Object.prototype's members
  const order = orderByDuration(['constructor', 'tests/x.test.ts', 'toString'], {
    'tests/x.test.ts': 7,
    toString: Number.NaN,
  });
  assert.deepEqual(order, ['constructor', 'toString', 'tests/x.test.ts']);
  fs.rmSync(dir, { recursive: true });
});
