// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// The combined kit process's failure isolation (core/worker-supervisor.ts), on real worker threads: an
// uncaught exception ends only its worker, which is started again with backoff while a sibling keeps
// running in the same thread; stop() asks each worker to stop and terminates one that does not.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { WorkerSupervisor } from '../../core/worker-supervisor.ts';
import { waitUntil } from '../support/net.ts';

const fixture = (name: string) => new URL(`../fixtures/workers/${name}.js`, import.meta.url);

function ping(w: Worker | null): Promise<number> {
  assert.ok(w, 'the worker is running');
  return new Promise<number>((resolve) => {
    const on = (m: { pong?: number }) => {
      if (m.pong === undefined) return;
      w.off('message', on);
      resolve(m.pong);
    };
    w.on('message', on);
    w.postMessage({ cmd: 'ping' });
  });
}

test('an uncaught exception ends only that worker; it is restarted, the sibling keeps its thread', async () => {
  const sup = new WorkerSupervisor({ minBackoffMs: 20, maxBackoffMs: 200 });
  const exits: Array<{ name: string; error: string | undefined; delay: number }> = [];
  sup.on('exit', (name: string, _code: number, error: string | undefined, delay: number) =>
    exits.push({ name, error, delay }),
  );
  try {
    sup.add({ name: 'steady', filename: fixture('steady'), workerData: null, env: {} });
    sup.add({ name: 'throws', filename: fixture('throws'), workerData: null, env: {} });
    const steadyThread = await ping(sup.current('steady'));
    await waitUntil(() => exits.filter((e) => e.name === 'throws').length >= 3, 20_000, 'three crashes');
    const crashes = exits.filter((e) => e.name === 'throws');
    assert.match(crashes[0]?.error ?? '', /part failed/);
    // repeated crashes back off: 20, 40, 80 ms …
    assert.deepEqual(
      crashes.slice(0, 3).map((e) => e.delay),
      [20, 40, 80],
    );
    const view = sup.view();
    const throwsView = view.find((v) => v.name === 'throws');
    assert.ok((throwsView?.restarts ?? 0) >= 3);
    assert.match(String(throwsView?.lastExit?.error), /part failed/);
    assert.equal(throwsView?.lastExit?.code, 1);
    // the sibling never ended: same thread, no restart, still answering
    assert.equal(exits.filter((e) => e.name === 'steady').length, 0);
    assert.equal(await ping(sup.current('steady')), steadyThread);
    assert.equal(view.find((v) => v.name === 'steady')?.restarts, 0);
  } finally {
    await sup.stop(2000);
  }
});

test('restart() stops a worker cleanly and starts a new thread; stop() terminates one that ignores it', async () => {
  const sup = new WorkerSupervisor({ minBackoffMs: 10, graceMs: 500 });
  try {
    sup.add({ name: 'steady', filename: fixture('steady'), workerData: null, env: {} });
    sup.add({ name: 'deaf', filename: fixture('deaf'), workerData: null, env: {} });
    const first = await ping(sup.current('steady'));
    assert.equal(sup.restart('steady'), true);
    assert.equal(sup.restart('nobody'), false);
    await waitUntil(
      () =>
        (sup.view().find((v) => v.name === 'steady')?.restarts ?? 0) === 1 && sup.current('steady') !== null,
      10_000,
      'steady restarted',
    );
    const second = await ping(sup.current('steady'));
    assert.notEqual(second, first, 'a new thread');
    // exited on the stop message: code 0, no error
    assert.deepEqual({ code: sup.view().find((v) => v.name === 'steady')?.lastExit?.code }, { code: 0 });
    const deaf = sup.current('deaf');
    assert.ok(deaf);
    const deafExit = new Promise<number>((resolve) => deaf.once('exit', resolve));
    await sup.stop(300);
    // terminate() ends a worker with exit code 1
    assert.equal(await deafExit, 1);
    assert.deepEqual(
      sup.view().map((v) => v.running),
      [false, false],
    );
  } finally {
    await sup.stop(300);
  }
});
