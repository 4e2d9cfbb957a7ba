import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import {
  foldSummaryLine,
  orderByDuration,
  readDurations,
  SUMMARY_COUNTS,
  splitLanes,
  summaryLines,
} from '../support/suite-runner.ts';

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

test('the real-time lane takes the files its pattern matches, both lanes keep the given order', () => {
  const files = [
    'tests/browser/b.test.ts',
    'tests/e2e/x.test.ts',
    'tests/integration/media-hls.test.ts',
    'tests/unit/u.test.ts',
  ];
  const re = /^tests\/browser\/|^tests\/integration\/media-hls\.test\.ts$/;
  assert.deepEqual(splitLanes(files, re), {
    main: ['tests/e2e/x.test.ts', 'tests/unit/u.test.ts'],
    realtime: ['tests/browser/b.test.ts', 'tests/integration/media-hls.test.ts'],
  });
  assert.deepEqual(splitLanes(files, undefined), { main: files, realtime: [] });
});

test("the lanes' closing summaries add up to one; anything else is not taken for a summary line", () => {
  const totals = new Map<string, number>();
  for (const m of ['tests 10', 'pass 9', 'fail 1', 'skipped 0', 'duration_ms 1200.5'])
    assert.equal(foldSummaryLine(totals, m), true, m);
  for (const m of ['tests 5', 'pass 5', 'duration_ms 900']) assert.equal(foldSummaryLine(totals, m), true, m);
  // a test's own diagnostic, or a hostile one, is left alone
  for (const m of [
    'pass 3 of 4',
    'tests -1',
    '__proto__ 3',
    'constructor 1',
    'pass\u00003',
    'tests 1e400',
    `tests ${'9'.repeat(10_000)}x`,
    '',
  ])
    assert.equal(foldSummaryLine(totals, m), false, JSON.stringify(m.slice(0, 40)));
  assert.equal(Object.getPrototypeOf({}).polluted, undefined);
  assert.deepEqual(summaryLines(totals, 1234), [
    'tests 15',
    'suites 0',
    'pass 14',
    'fail 1',
    'cancelled 0',
    'skipped 0',
    'todo 0',
    'duration_ms 1234',
  ]);
  assert.deepEqual(
    summaryLines(new Map(), 1).slice(0, SUMMARY_COUNTS.length),
    SUMMARY_COUNTS.map((k) => `${k} 0`),
  );
});
