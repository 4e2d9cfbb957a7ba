// `popkit up` logs rotate by size: children write through pipes into the parent (ProcessSupervisor),
// which writes whole lines into <logs>/<name>.log and rotates it (<name>.log.1 newest). A child writing
// far past the size loses no line and splits none; only the configured number of rotated files is
// kept; every file is 0600 (this file runs with umask 000). POPKIT_LOG_MAX_MB / POPKIT_LOG_FILES
// configure it and refuse nonsense.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { logRotationFrom, UpOwnConfig } from '../../cli/commands/up.ts';
import { ConfigError, loadConfig } from '../../core/config.ts';
import { ProcessSupervisor } from '../../core/process-supervisor.ts';
import { logFiles } from '../../core/rotating-log.ts';
import { tempDir } from '../support/checkout.ts';
import { waitFor } from '../support/hub-link.ts';

const mode = (file: string) => (fs.statSync(file).mode & 0o7777).toString(8).padStart(4, '0');

let umask = 0;
before(() => {
  umask = process.umask(0o000);
});
after(() => {
  process.umask(umask);
});

const LINES = 12_000;
// numbered lines on stdout and stderr, as fast as the child can write them, then exit
const WRITER = `
const pad = 'x'.repeat(30);
for (let i = 0; i < ${LINES}; i++) {
  process.stdout.write('out ' + i + ' ' + pad + '\\n');
  process.stderr.write('err ' + i + ' ' + pad + '\\n');
}
process.stdout.write('out tail without newline');
`;

/** Run the writer once under a supervisor with `log` rotation; stop it once the child has exited. */
async function runWriter(log: { maxBytes: number; files: number }) {
  const logs = path.join(tempDir('popkit-logrot-'), 'logs');
  // no restart within the test: the child runs once
  const sup = new ProcessSupervisor(logs, { minBackoffMs: 600_000, maxBackoffMs: 600_000, log });
  let exited = false;
  sup.on('exit', () => {
    exited = true;
  });
  try {
    sup.add({ name: 'writer', command: process.execPath, args: ['-e', WRITER], env: {} });
    await waitFor(() => exited, 30_000, 'the writer to exit');
  } finally {
    await sup.stop(5000);
  }
  return { logs, files: logFiles(logs, 'writer') };
}

function numbers(lines: string[], stream: 'out' | 'err'): number[] {
  return lines
    .filter((l) => l.startsWith(`${stream} `) && l !== 'out tail without newline')
    .map((l) => Number(l.split(' ')[1]));
}

test('writing far past the size rotates, and no line is lost, doubled or split', async () => {
  const { logs, files } = await runWriter({ maxBytes: 32 * 1024, files: 100 });
  // 2 × 12,000 lines of ~40 bytes: about 30 rotations of 32 KiB
  assert.ok(files.length > 10, `expected many rotated files, got ${files.map((f) => path.basename(f))}`);
  const lines = files
    .slice()
    .reverse() // oldest first
    .flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').slice(0, -1));
  for (const l of lines) {
    assert.match(l, /^(out|err) \d+ x{30}$|^out tail without newline$/, `a split or foreign line: ${l}`);
  }
  const expected = Array.from({ length: LINES }, (_, i) => i);
  assert.deepEqual(numbers(lines, 'out'), expected, 'stdout lines in order, each once');
  assert.deepEqual(numbers(lines, 'err'), expected, 'stderr lines in order, each once');
  assert.ok(lines.includes('out tail without newline'), 'the last partial line is kept');
  assert.equal(mode(logs), '0700');
  for (const f of files) assert.equal(mode(f), '0600', `${path.basename(f)} is not 0600`);
});

test('only the configured number of rotated files is kept, the newest lines among them', async () => {
  const { files } = await runWriter({ maxBytes: 16 * 1024, files: 2 });
  assert.deepEqual(
    files.map((f) => path.basename(f)),
    ['writer.log', 'writer.log.1', 'writer.log.2'],
  );
  const newest = files.flatMap((f) => fs.readFileSync(f, 'utf8').split('\n'));
  // stdout and stderr drain through separate pipes, so either may finish last (under load stdout can
  // trail stderr by more than the kept files hold): the last line of at least one is kept
  assert.ok(
    newest.some((l) => l.startsWith(`err ${LINES - 1} `) || l.startsWith(`out ${LINES - 1} `)),
    'the newest lines are kept',
  );
  assert.ok(!newest.some((l) => /^(out|err) 0 /.test(l)), 'the oldest lines were rotated away');
  for (const f of files) assert.equal(mode(f), '0600');
});

test('POPKIT_LOG_MAX_MB and POPKIT_LOG_FILES set the rotation and refuse nonsense', () => {
  assert.deepEqual(logRotationFrom(loadConfig(UpOwnConfig, {})), { maxBytes: 10 * 1024 * 1024, files: 5 });
  assert.deepEqual(
    logRotationFrom(loadConfig(UpOwnConfig, { POPKIT_LOG_MAX_MB: '0.5', POPKIT_LOG_FILES: '3' })),
    {
      maxBytes: 512 * 1024,
      files: 3,
    },
  );
  for (const env of [
    { POPKIT_LOG_MAX_MB: '0' },
    { POPKIT_LOG_MAX_MB: '-1' },
    { POPKIT_LOG_MAX_MB: 'lots' },
    { POPKIT_LOG_MAX_MB: '1e9' },
    { POPKIT_LOG_FILES: '0' },
    { POPKIT_LOG_FILES: '\u0000' },
  ]) {
    assert.throws(() => loadConfig(UpOwnConfig, env), ConfigError, JSON.stringify(env));
  }
});
