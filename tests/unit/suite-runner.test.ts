// suite-runner: own process — it starts `node --test` itself, and its fixtures quote what keeps a file apart
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import {
  OWN_PROCESS_MARKER,
  orderByDuration,
  readDurations,
  SHARED_PROCESS_MARKER,
  sharedEntry,
  sharedFiles,
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

test('unit files share a process unless they change process-wide state; others share when they ask', () => {
  const sources: Record<string, string> = {
    'tests/unit/plain.test.ts': "import { test } from 'node:test';\ntest('x', () => {});",
    'tests/unit/env-read.test.ts': "const env = { ...process.env, A: '1' }; if (process.env['X'] === 'y') {}",
    'tests/unit/timers.test.ts': "beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));",
    'tests/unit/method.test.ts': "mock.method(fs, 'statfsSync', () => ({}));",
    'tests/unit/exit.test.ts': 'process.exit(0);',
    'tests/unit/env-write.test.ts': "process.env['POPKIT_X'] = '1';",
    'tests/unit/env-dot.test.ts': 'process.env.POPKIT_X = "1";',
    'tests/unit/env-delete.test.ts': 'delete process.env.POPKIT_X;',
    'tests/unit/listener.test.ts': "process.on('exit', () => {});",
    'tests/unit/marked.test.ts': `${OWN_PROCESS_MARKER}: it times real ticks\n`,
    'tests/integration/plain.test.ts': "test('x', () => {});",
    'tests/integration/asks.test.ts': `${SHARED_PROCESS_MARKER}\ntest('x', () => {});`,
    'tests/integration/asks-too.test.ts': `// a header\n${SHARED_PROCESS_MARKER}: short\ntest('y', () => {});`,
    'tests/integration/asks-but-umask.test.ts': `${SHARED_PROCESS_MARKER}\nprocess.umask(0);`,
    'tests/integration/quoted.test.ts': `const s = '${SHARED_PROCESS_MARKER}';`,
    'tests/e2e/alone.test.ts': `${SHARED_PROCESS_MARKER}\ntest('x', () => {});`,
    'elsewhere.test.ts': `${SHARED_PROCESS_MARKER}\n`,
  };
  const shared = sharedFiles([...Object.keys(sources), 'tests/unit/missing.test.ts'], (f) => {
    const s = sources[f];
    if (s === undefined) throw new Error('ENOENT');
    return s;
  });
  assert.deepEqual(Object.fromEntries(shared), {
    unit: ['tests/unit/plain.test.ts', 'tests/unit/env-read.test.ts'],
    integration: ['tests/integration/asks.test.ts', 'tests/integration/asks-too.test.ts'],
  });
  // one file alone keeps its own process: sharing would save nothing
  assert.equal(sharedFiles(['tests/unit/plain.test.ts'], () => '').size, 0);
});

test('a shared process reports every test under its file, keeps hooks per file and fails on a failure', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shared-'));
  try {
    const a = path.join(dir, 'a.test.mjs');
    const b = path.join(dir, 'b.test.mjs');
    const c = path.join(dir, 'c.test.mjs');
    fs.writeFileSync(
      a,
      "import { afterEach, test } from 'node:test';\nlet hooks = 0;\nafterEach(() => { hooks++; globalThis.__aHooks = hooks; });\ntest('a1', () => {});\ntest('a2', () => {});\n",
    );
    fs.writeFileSync(
      b,
      "import assert from 'node:assert/strict';\nimport { test } from 'node:test';\ntest('b1 sees only its own hooks', () => { assert.equal(globalThis.__aHooks, 2); });\ntest('b2 too', () => { assert.equal(globalThis.__aHooks, 2); });\ntest('b3 fails', () => { assert.equal(1, 2); });\n",
    );
    fs.writeFileSync(c, "throw new Error('c does not load');\n");
    const entry = path.join(dir, 'shared.test.mjs');
    fs.writeFileSync(
      entry,
      sharedEntry([
        { name: 'tests/unit/a.test.ts', abs: a },
        { name: 'tests/unit/b.test.ts', abs: b },
        { name: 'tests/unit/c.test.ts', abs: c },
      ]),
    );
    // run() will not start files from inside a test file, so the entry runs under a fresh `node --test`
    const env = { ...process.env };
    delete env['NODE_TEST_CONTEXT'];
    const out = spawnSync(process.execPath, ['--test', '--test-reporter=tap', entry], {
      env,
      encoding: 'utf8',
    });
    const results = [...out.stdout.matchAll(/^( *)(ok|not ok) \d+ - (.*)$/gm)].map(
      ([, indent, verdict, name]) => `${verdict} ${(indent ?? '').length / 4}:${name}`,
    );
    assert.deepEqual(results.sort(), [
      'not ok 0:tests/unit/b.test.ts',
      'not ok 0:tests/unit/c.test.ts',
      'not ok 1:b3 fails',
      'ok 0:tests/unit/a.test.ts',
      'ok 1:a1',
      'ok 1:a2',
      'ok 1:b1 sees only its own hooks',
      'ok 1:b2 too',
    ]);
    assert.match(out.stdout, /c does not load/);
    assert.match(out.stdout, /^# tests 5$/m);
    assert.match(out.stdout, /^# pass 4$/m);
    assert.match(out.stdout, /^# fail 1$/m);
    assert.equal(out.status, 1, 'a failing test in a shared process fails the run');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
