// "201 only once the order is on disk", checked at the system-call level: a real `popkit checkout` runs
// under strace, and every `201 Created` written to a socket must come after an fdatasync/fsync of the
// LMDB data file that happened since the previous answer. (SIGKILL tests cannot show this: the page cache
// survives a killed process, not a power cut.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { ADMIN, BIN, kitEnv, smallCatalog, tempDir } from '../support/checkout.ts';
import { freePort, waitUntil } from '../support/net.ts';

test('every 201 is written after the fsync of the commit that holds its order', {
  timeout: 120_000,
}, async () => {
  const dataDir = tempDir('popkit-fsync-');
  const trace = path.join(dataDir, 'strace.out');
  const port = await freePort();
  const proc = spawn(
    'strace',
    [
      '-f',
      '-tt',
      '-e',
      'trace=openat,fdatasync,fsync,writev,write,pwrite64',
      '-o',
      trace,
      process.execPath,
      BIN,
      'checkout',
    ],
    {
      env: kitEnv(dataDir, { POPKIT_HTTP_PORT: String(port), POPKIT_HTTP_HOST: '127.0.0.1' }),
      stdio: 'ignore',
    },
  );
  const exited = new Promise((r) => proc.once('exit', r));
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      async () => (await fetch(`${base}/healthz`).catch(() => null)) !== null,
      60_000,
      'checkout under strace',
    );
    const put = await fetch(`${base}/v1/catalog`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify(smallCatalog({ A: 100 })),
    });
    assert.equal(put.status, 200);
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${base}/v1/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } }),
      });
      assert.equal(res.status, 201);
    }
  } finally {
    // stop checkout itself (its pid is in its status file); strace leaves with its tracee
    const pid = readRunStatus(dataDir, 'checkout')?.pid;
    if (pid) process.kill(pid, 'SIGTERM');
    else proc.kill('SIGKILL');
    await exited;
  }
  const lines = fs.readFileSync(trace, 'utf8').split('\n');
  // LMDB commits by writing the data pages, fdatasync'ing the data file, then writing the meta page through a
  // second descriptor opened O_DSYNC (durable when the write returns). Find both descriptors.
  const opens = lines.filter((l) => /openat\(.*kit\.lmdb", /.test(l));
  const dsyncFd = /= (\d+)$/.exec(opens.find((l) => l.includes('O_DSYNC')) ?? '')?.[1];
  const dataFd = /= (\d+)$/.exec(opens.filter((l) => l.includes('O_RDWR')).at(-1) ?? '')?.[1];
  assert.ok(dataFd && dsyncFd, `the LMDB data file was opened read-write and O_DSYNC:\n${opens.join('\n')}`);
  const dataSync = new RegExp(`\\b(fdatasync|fsync)\\(${dataFd}\\)\\s+= 0`);
  const metaWrite = new RegExp(`\\bpwrite64\\(${dsyncFd}, `);
  let synced = false;
  let committed = false;
  let answers = 0;
  for (const l of lines) {
    if (dataSync.test(l)) synced = true;
    if (synced && metaWrite.test(l)) committed = true;
    if (/writev?\(\d+, .*HTTP\/1\.1 201 Created/.test(l)) {
      answers++;
      assert.ok(committed, `201 number ${answers} was written before its commit was on disk`);
      synced = false;
      committed = false;
    }
  }
  assert.equal(answers, 8);
});
