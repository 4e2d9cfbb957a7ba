// Checkout first on the CPU under `popkit up` (core/priorities.ts CPU_PRIORITY): the supervisor starts a
// child at its nice value, every thread of it included and again after a restart, and `popkit up` gives
// checkout, sync, kitd, media and its embedded hub the table's values. Read from /proc, real processes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { after, test } from 'node:test';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { CPU_PRIORITY } from '../../core/priorities.ts';
import { ProcessSupervisor } from '../../core/process-supervisor.ts';
import { tempDir } from '../support/checkout.ts';
import { freePort, waitFor } from '../support/hub-link.ts';
import { spawnPopkitUp } from '../support/up.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** the nice value of every thread of `pid` (field 19 of /proc/<pid>/task/<tid>/stat) */
function threadNice(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // fields after the command name, which is in parentheses and may hold spaces
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[16]);
  });
}

const own = os.getPriority();
const niced = (n: number) => Math.min(19, own + n);

test('a supervised child runs at its nice value in every thread, and again after a restart', {
  timeout: 60_000,
}, async () => {
  const sup = new ProcessSupervisor(tempDir('popkit-sup-'), { minBackoffMs: 40, maxBackoffMs: 1000 });
  cleanups.push(() => sup.stop(2000));
  const starts: Record<string, number[]> = { low: [], plain: [] };
  sup.on('start', (name: string, pid: number) => starts[name]?.push(pid));
  // a child with worker threads of its own, made after start
  const child = [
    '-e',
    "new (require('node:worker_threads').Worker)('setInterval(()=>{},1<<30)',{eval:true});setInterval(()=>{},1<<30)",
  ];
  sup.add({ name: 'low', command: process.execPath, args: child, env: {}, nice: 7 });
  sup.add({ name: 'plain', command: process.execPath, args: child, env: {} });
  const lowPid = await waitFor(() => starts['low']![0], 15_000, 'low started');
  const plainPid = await waitFor(() => starts['plain']![0], 15_000, 'plain started');
  // node's own threads and the worker are up once there are more than a few
  await waitFor(() => threadNice(lowPid).length > 6 && threadNice(plainPid).length > 6, 15_000, 'threads');
  assert.deepEqual(new Set(threadNice(lowPid)), new Set([niced(7)]));
  assert.deepEqual(new Set(threadNice(plainPid)), new Set([own]));
  assert.ok(
    fs.readFileSync(`/proc/${lowPid}/cmdline`, 'utf8').startsWith(process.execPath),
    'nice(1) execs the command: the supervised pid is the node process itself',
  );
  process.kill(lowPid, 'SIGKILL');
  const again = await waitFor(() => starts['low']![1], 15_000, 'low restarted');
  await waitFor(() => threadNice(again).length > 6, 15_000, 'threads after restart');
  assert.deepEqual(new Set(threadNice(again)), new Set([niced(7)]));
});

test("popkit up starts its children at CPU_PRIORITY's nice values, checkout ahead of the rest", {
  timeout: 120_000,
}, async () => {
  const dataDir = tempDir('popkit-up-prio-');
  const run = spawnPopkitUp(['--no-media'], {
    POPKIT_DATA_DIR: dataDir,
    POPKIT_HTTP_PORT: String(await freePort()),
    POPKIT_HUB_HTTP_PORT: String(await freePort()),
    POPKIT_KIT_ID: 'kit-up-prio',
  });
  cleanups.push(async () => {
    run.proc.kill('SIGTERM');
    await run.exited;
  });
  const want = ['checkout', 'sync', 'kitd', 'hub'] as const;
  const sup = await waitFor(
    () => {
      const s = readRunStatus(dataDir, 'supervisor');
      return s && want.every((n) => s.children.some((c) => c.name === n && c.pid)) ? s : undefined;
    },
    90_000,
    `popkit up's children to run:\n${run.output()}`,
  );
  for (const name of want) {
    const pid = sup.children.find((c) => c.name === name)?.pid;
    assert.ok(pid, name);
    assert.deepEqual(new Set(threadNice(pid)), new Set([niced(CPU_PRIORITY[name].nice)]), name);
  }
  assert.ok(CPU_PRIORITY.sync.nice > CPU_PRIORITY.checkout.nice);
});
