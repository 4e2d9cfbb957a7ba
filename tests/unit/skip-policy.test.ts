// No silent green: in CI, scripts/test.sh fails a run with a skipped or todo test unless each skip's
// reason is on tests/accepted-skips.txt. The check runs here on the real spec reporter's output of small
// test files, so a change in the reporter's format that would let skips through fails this test.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-skips-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** run `node --test --test-reporter=spec` on a file of the given body; its output goes to a log file */
function specLog(name: string, body: string): string {
  const file = path.join(dir, `${name}.test.mjs`);
  fs.writeFileSync(file, `import { test, describe } from 'node:test';\n${body}\n`);
  const env = { ...process.env };
  delete env['NODE_TEST_CONTEXT']; // a runner of its own, not a child of this one
  const run = spawnSync(process.execPath, ['--test', '--test-reporter=spec', file], {
    env,
    encoding: 'utf8',
  });
  const log = path.join(dir, `${name}.log`);
  fs.writeFileSync(log, run.stdout);
  return log;
}

function check(log: string, allow: string) {
  const allowFile = path.join(dir, `allow-${Math.random().toString(36).slice(2)}.txt`);
  fs.writeFileSync(allowFile, allow);
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/test.sh'), '--check-skips', log, allowFile], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

const SKIPS = `
test('mounts a tmpfs', { skip: 'needs root to mount a tmpfs' }, () => {});
describe('media', () => {
  test('real pipeline', { skip: 'binding missing: no gst' }, () => {});
  test('skips itself', (t) => { t.skip('board absent'); });
});
test('runs', () => {});
`;

test('a skip whose reason is not on the accepted list fails the check, naming the test and its reason', () => {
  const log = specLog('skips', SKIPS);
  assert.match(fs.readFileSync(log, 'utf8'), /skipped 3/);
  const r = check(log, '# nothing accepted\n');
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /SKIPPED \(not accepted in CI\): mounts a tmpfs # needs root to mount a tmpfs/);
  assert.match(r.out, /SKIPPED \(not accepted in CI\): real pipeline # binding missing: no gst/);
  assert.match(r.out, /SKIPPED \(not accepted in CI\): skips itself # board absent/);
  // one reason accepted, the others still fail the run
  const partly = check(log, '# why: test only\nneeds root to mount\n');
  assert.equal(partly.code, 1, partly.out);
  assert.match(partly.out, /accepted skip: mounts a tmpfs/);
  assert.match(partly.out, /not accepted in CI\): real pipeline/);
});

test('skips whose reasons are all accepted pass; a run without skips passes', () => {
  const all = check(
    specLog('skips2', SKIPS),
    '# why: test only\nneeds root\n# why\nbinding missing\n# why\nboard absent\n',
  );
  assert.equal(all.code, 0, all.out);
  const none = check(specLog('clean', "test('a', () => {});\ntest('b', () => {});"), '');
  assert.equal(none.code, 0, none.out);
  assert.doesNotMatch(none.out, /SKIP/);
});

test('a skip without a reason, and a todo, are never accepted', () => {
  const bare = check(specLog('bare', "test('no reason', { skip: true }, () => {});"), '.*\n');
  assert.equal(bare.code, 1, bare.out);
  assert.match(bare.out, /not accepted in CI\): no reason # SKIP/);
  const todo = check(specLog('todo', "test('later', { todo: 'write it' }, () => {});"), '.*\n');
  assert.equal(todo.code, 1, todo.out);
  assert.match(todo.out, /1 todo tests/);
});

test('the accepted list of the repository accepts none of the skips this suite has', () => {
  const r = check(
    specLog('repo', SKIPS),
    fs.readFileSync(path.join(ROOT, 'tests/accepted-skips.txt'), 'utf8'),
  );
  assert.equal(r.code, 1, r.out);
  assert.doesNotMatch(r.out, /accepted skip:/);
});
