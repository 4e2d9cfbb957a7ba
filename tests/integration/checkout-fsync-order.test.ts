// "201 only once the order is on disk", checked at the system-call level: a real `popkit checkout` runs
// under strace, and each `201 Created` must be written to its socket after the commit that carries THAT
// order is durable. (SIGKILL tests cannot show this: the page cache survives a killed process, not a
// power cut.)
//
// LMDB commits (overlappingSync off) by writing the dirty pages to the data file, fdatasync'ing it, then
// writing the meta page through a second descriptor opened O_DSYNC (durable when that write returns).
// The analysis (`checkAnswersAfterCommits`) ties each 201 to its commit by the order's id: the id from
// the answer's `location` header must be in the bytes of the pages that commit wrote. The first commit
// whose pages hold the id is the one that carries the order; its O_DSYNC meta write must have returned
// before the 201 write began, its fdatasync must have begun after the request of that answer was read,
// and (sequential mode) the k-th 201 needs at least k commits after the catalog's. Worker threads'
// `<unfinished ...>` / `<... resumed>` lines are merged into one call with a start and an end position
// in the log (strace sees a call's exit before the thread that made it can go on, so the log order is
// the causal order). A self-check runs the analysis on synthetic traces that must be flagged.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { ADMIN, BIN, kitEnv, smallCatalog, tempDir } from '../support/checkout.ts';
import { freePort, waitUntil } from '../support/net.ts';

/** One system call, its `<unfinished ...>` and `<... resumed>` halves merged. */
export interface Call {
  pid: number;
  name: string;
  args: string;
  ret: string;
  /** log line (0-based) where the call entered and where it returned */
  start: number;
  end: number;
}

/** Parse `strace -f -ttt -x` output (pid and timestamp prefix on each line). */
export function parseStrace(text: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<number, { name: string; args: string; start: number }>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    const head = /^(\d+)\s+[\d.:]+\s+(.*)$/.exec(l);
    if (!head) continue;
    const pid = Number(head[1]);
    const rest = head[2] as string;
    const unfinished = /^(\w+)\((.*?)\s*<unfinished \.\.\.>$/.exec(rest);
    if (unfinished) {
      pending.set(pid, { name: unfinished[1] as string, args: unfinished[2] as string, start: i });
      continue;
    }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(.*)$/.exec(rest);
    if (resumed) {
      const open = pending.get(pid);
      pending.delete(pid);
      if (!open || open.name !== resumed[1]) continue;
      calls.push({
        pid,
        name: open.name,
        args: open.args + (resumed[2] as string),
        ret: resumed[3] as string,
        start: open.start,
        end: i,
      });
      continue;
    }
    const whole = /^(\w+)\((.*)\)\s+=\s+(.*)$/.exec(rest);
    if (whole) {
      calls.push({
        pid,
        name: whole[1] as string,
        args: whole[2] as string,
        ret: whole[3] as string,
        start: i,
        end: i,
      });
    }
  }
  return calls.sort((a, b) => a.start - b.start);
}

/** The bytes of every quoted string in a call's arguments (strace -x escapes), concatenated. */
export function stringBytes(args: string): Buffer {
  const parts: Buffer[] = [];
  for (const m of args.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    const s = m[1] as string;
    const out: number[] = [];
    for (let i = 0; i < s.length; i++) {
      const c = s[i] as string;
      if (c !== '\\') {
        out.push(...Buffer.from(c, 'utf8'));
        continue;
      }
      const n = s[++i] as string;
      if (n === 'x') {
        out.push(Number.parseInt(s.slice(i + 1, i + 3), 16));
        i += 2;
      } else if (/[0-7]/.test(n)) {
        const oct = /^[0-7]{1,3}/.exec(s.slice(i)) as RegExpExecArray;
        out.push(Number.parseInt(oct[0], 8));
        i += oct[0].length - 1;
      } else {
        const esc: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12, a: 7, b: 8 };
        out.push(esc[n] ?? n.charCodeAt(0));
      }
    }
    parts.push(Buffer.from(out));
  }
  return Buffer.concat(parts);
}

const firstFd = (args: string) => Number(/^(\d+)/.exec(args)?.[1] ?? -1);
/** a pwrite that lands inside LMDB's two meta pages (4096-byte pages, lmdb-js's default) */
const isMetaPageWrite = (c: Call) => {
  const m = /, (\d+), (\d+)$/.exec(c.args);
  return c.name === 'pwrite64' && m !== null && Number(m[1]) + Number(m[2]) <= 2 * 4096;
};
const WRITES = new Set(['write', 'writev', 'pwrite64', 'pwritev', 'pwritev2', 'sendto', 'sendmsg']);
const READS = new Set(['read', 'readv', 'recvfrom', 'recvmsg']);

interface Commit {
  index: number;
  pages: Buffer;
  pagesEnd: number;
  /** log line where the sync covering the commit's pages began */
  syncStart: number;
  /** log line after which the commit is durable (its O_DSYNC meta write, or the sync after the meta page) */
  durableAt: number;
}

export interface FsyncReport {
  problems: string[];
  dataFd: number;
  dsyncFd: number;
  commits: number;
  /** for each 201 in order: its order id and the index of the commit that carried it */
  answers: { id: string; commit: number | null }[];
}

/**
 * Check a checkout trace: every `201 Created` is written after the commit carrying its order is
 * durable. `sequential`: the orders were sent one after another, so the k-th 201 also needs at least k
 * commits that ended after the catalog's answer.
 */
export function checkAnswersAfterCommits(
  text: string,
  storeFile: string,
  opts: { sequential: boolean },
): FsyncReport {
  const calls = parseStrace(text);
  const problems: string[] = [];
  // the data and meta descriptors: LMDB opens the data file O_RDWR, then again O_WRONLY|O_DSYNC
  const opens = calls.filter(
    (c) => c.name === 'openat' && stringBytes(c.args).toString('latin1') === storeFile && /^\d+$/.test(c.ret),
  );
  const dsyncAt = opens.findIndex((c) => c.args.includes('O_DSYNC'));
  const dataOpen = opens
    .slice(0, Math.max(0, dsyncAt))
    .filter((c) => c.args.includes('O_RDWR'))
    .at(-1);
  const dsyncFd = dsyncAt >= 0 ? Number(opens[dsyncAt]?.ret) : -1;
  const dataFd = dataOpen ? Number(dataOpen.ret) : -1;
  const report: FsyncReport = { problems, dataFd, dsyncFd, commits: 0, answers: [] };
  if (dataFd < 0 || dsyncFd < 0) {
    problems.push(`the store ${storeFile} was not opened read-write and O_DSYNC in the trace`);
    return report;
  }

  // commits, followed per thread (LMDB runs a whole commit on the thread that owns the write txn):
  // page writes on the data fd, then either (a) an fdatasync/fsync of it begun after the last page write
  // returned and a meta write on the O_DSYNC fd begun after that sync returned (durable when the meta
  // write returns), or (b) the meta page written through the data fd itself (offset within the first two
  // pages) and then a sync begun after that (durable when the sync returns). Anything else (no sync, a
  // page written after the sync) is no durable commit.
  const commits: Commit[] = [];
  interface Pending {
    pages: Buffer[];
    pagesEnd: number;
    sync: Call | null;
    metaOnData: Call | null;
  }
  const fresh = (): Pending => ({ pages: [], pagesEnd: -1, sync: null, metaOnData: null });
  const threads = new Map<number, Pending>();
  const push = (p: Pending, syncCall: Call, durableAt: number) => {
    commits.push({
      index: commits.length,
      pages: Buffer.concat(p.pages),
      pagesEnd: p.pagesEnd,
      syncStart: syncCall.start,
      durableAt,
    });
  };
  const answers: { call: Call; status: number; id: string | null; fd: number }[] = [];
  const requests: { call: Call; fd: number; head: string }[] = [];
  for (const c of calls) {
    const fd = firstFd(c.args);
    const ok = /^\d+/.test(c.ret) && !c.ret.startsWith('-');
    const t = threads.get(c.pid) ?? fresh();
    threads.set(c.pid, t);
    if (WRITES.has(c.name) && fd === dataFd && ok) {
      if (t.pages.length > 0 && isMetaPageWrite(c)) {
        t.metaOnData = c;
      } else {
        t.pages.push(stringBytes(c.args));
        t.pagesEnd = Math.max(t.pagesEnd, c.end);
        t.sync = null; // a page written after the sync is not covered by it
        t.metaOnData = null;
      }
    } else if ((c.name === 'fdatasync' || c.name === 'fsync') && fd === dataFd && c.ret.trim() === '0') {
      if (t.metaOnData && c.start > t.metaOnData.end) {
        push(t, c, c.end);
        threads.set(c.pid, fresh());
      } else if (t.pages.length > 0 && c.start > t.pagesEnd) {
        t.sync = c;
      }
    } else if (WRITES.has(c.name) && fd === dsyncFd && ok) {
      if (t.sync && c.start > t.sync.end) push(t, t.sync, c.end);
      // a meta write without a sync of the pages before it is no durable commit; start afresh either way
      threads.set(c.pid, fresh());
    } else if (WRITES.has(c.name)) {
      const bytes = stringBytes(c.args).toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(bytes);
      if (status) {
        const id = /\r\nlocation: \/v1\/orders\/([0-9A-Za-z]+)\r\n/i.exec(bytes)?.[1] ?? null;
        answers.push({ call: c, status: Number(status[1]), id, fd });
      }
    } else if (READS.has(c.name) && ok) {
      const head = stringBytes(c.args).toString('latin1');
      if (/^(GET|PUT|POST|DELETE|PATCH) \//.test(head)) requests.push({ call: c, fd, head });
    }
  }
  report.commits = commits.length;

  const requestOf = (a: { call: Call; fd: number }) =>
    requests.filter((r) => r.fd === a.fd && r.call.end < a.call.start).at(-1);
  const catalogAnswer = answers.find(
    (a) => a.status === 200 && requestOf(a)?.head.startsWith('PUT /v1/catalog'),
  );
  if (opts.sequential && !catalogAnswer) problems.push('no answer to the catalog PUT in the trace');

  let k = 0;
  for (const a of answers) {
    if (a.status !== 201) continue;
    k++;
    const at = `201 number ${k} (log line ${a.call.start + 1})`;
    if (!a.id) {
      problems.push(`${at} has no location header naming its order`);
      report.answers.push({ id: '?', commit: null });
      continue;
    }
    const carrier = commits.find((c) => c.pages.includes(a.id as string, 0, 'latin1'));
    report.answers.push({ id: a.id, commit: carrier?.index ?? null });
    if (!carrier) {
      problems.push(`${at} for order ${a.id}: no durable commit wrote a page holding that order`);
    } else if (carrier.durableAt >= a.call.start) {
      problems.push(
        `${at} for order ${a.id} was written before its commit was durable ` +
          `(commit ${carrier.index}, durable at log line ${carrier.durableAt + 1})`,
      );
    }
    const req = requestOf(a);
    if (!req?.head.startsWith('POST /v1/orders')) {
      problems.push(`${at}: no POST /v1/orders read on its socket (fd ${a.fd}) before it`);
    } else if (carrier && carrier.syncStart <= req.call.end) {
      problems.push(`${at} for order ${a.id}: its commit was synced before its request was read`);
    }
    if (opts.sequential && catalogAnswer) {
      const since = commits.filter(
        (c) => c.durableAt > catalogAnswer.call.start && c.durableAt < a.call.start,
      );
      if (since.length < k) {
        problems.push(`${at}: only ${since.length} commits since the catalog's, ${k} needed`);
      }
    }
  }
  if (k === 0) problems.push('no 201 in the trace');
  return report;
}

// --- self-check: the analysis flags a 201 that precedes its commit -----------------------------------

const STORE = '/data/kit.lmdb';
const hex = (s: string) =>
  [...Buffer.from(s, 'latin1')].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
const http = (status: string, id?: string) =>
  `"HTTP/1.1 ${status}\\r\\n${id ? `location: /v1/orders/${id}\\r\\n` : ''}content-length: 2\\r\\n\\r\\n{}"`;
const opens = [
  `100 1.000001 openat(AT_FDCWD, "${STORE}", O_RDWR|O_CREAT, 0664) = 27`,
  `100 1.000002 openat(AT_FDCWD, "${STORE}", O_WRONLY|O_DSYNC|O_CLOEXEC) = 28`,
];
/** one commit on worker thread 201 whose pages hold `body`, split by another thread's calls */
const commit = (t: string, body: string) => [
  `201 ${t}1 pwrite64(27, "${hex(`\x02\x00page:${body}`)}", 4096, 8192) = 4096`,
  `201 ${t}2 fdatasync(27 <unfinished ...>`,
  `100 ${t}3 epoll_wait(13, [], 1024, 0) = 0`,
  `201 ${t}4 <... fdatasync resumed>) = 0`,
  `201 ${t}5 pwrite64(28, "${hex('\x00\x00meta')}", 160, 4096 <unfinished ...>`,
  `100 ${t}6 futex(0x1, FUTEX_WAKE, 1) = 0`,
  `201 ${t}7 <... pwrite64 resumed>) = 160`,
];
const catalogPut = [
  `100 2.1 read(30, "PUT /v1/catalog HTTP/1.1\\r\\n\\r\\n{}", 65536) = 30`,
  ...commit('2.2', 'catalog'),
  `100 2.3 writev(30, [{iov_base=${http('200 OK')}, iov_len=40}], 1) = 40`,
];
const post = (fd: number, t: string) =>
  `100 ${t} read(${fd}, "POST /v1/orders HTTP/1.1\\r\\n\\r\\n{}", 65536) = 30`;
const answer = (fd: number, t: string, id: string) =>
  `100 ${t} writev(${fd}, [{iov_base=${http('201 Created', id)}, iov_len=60}], 1) = 60`;

test('self-check: the trace analysis flags a 201 written before the commit that carries its order', () => {
  const good = [
    ...opens,
    ...catalogPut,
    post(31, '3.0'),
    ...commit('3.1', 'ORDER0000000000000000000001'),
    answer(31, '3.2', 'ORDER0000000000000000000001'),
    post(31, '4.0'),
    ...commit('4.1', 'ORDER0000000000000000000002'),
    answer(31, '4.2', 'ORDER0000000000000000000002'),
  ].join('\n');
  const ok = checkAnswersAfterCommits(good, STORE, { sequential: true });
  assert.deepEqual(ok.problems, []);
  assert.deepEqual(
    ok.answers.map((a) => a.commit),
    [1, 2],
  );

  // answer-before-commit: each late commit would vouch for the next order under a "some commit since
  // the previous 201" rule; tied by id, both answers are flagged
  const early = [
    ...opens,
    ...catalogPut,
    post(31, '3.0'),
    answer(31, '3.1', 'ORDER0000000000000000000001'),
    ...commit('3.2', 'ORDER0000000000000000000001'),
    post(31, '4.0'),
    answer(31, '4.1', 'ORDER0000000000000000000002'),
    ...commit('4.2', 'ORDER0000000000000000000002'),
  ].join('\n');
  const bad = checkAnswersAfterCommits(early, STORE, { sequential: true });
  assert.equal(
    bad.problems.filter((p) => p.includes('before its commit was durable')).length,
    2,
    bad.problems.join('\n'),
  );
  assert.ok(bad.problems.some((p) => p.includes('only 0 commits since the catalog')));

  // the 201 comes while its commit's meta write is still in flight on the worker thread
  const inFlight = [
    ...opens,
    ...catalogPut,
    post(31, '3.0'),
    `201 3.1 pwrite64(27, "${hex('page:ORDER0000000000000000000001')}", 4096, 8192) = 4096`,
    `201 3.2 fdatasync(27) = 0`,
    `201 3.3 pwrite64(28, "${hex('meta')}", 160, 4096 <unfinished ...>`,
    answer(31, '3.4', 'ORDER0000000000000000000001'),
    `201 3.5 <... pwrite64 resumed>) = 160`,
  ].join('\n');
  assert.match(
    checkAnswersAfterCommits(inFlight, STORE, { sequential: false }).problems.join('\n'),
    /before its commit was durable/,
  );

  // pages synced, but the meta page written before the sync (or never): not durable, not a commit
  const noSync = [
    ...opens,
    ...catalogPut,
    post(31, '3.0'),
    `201 3.1 pwrite64(27, "${hex('page:ORDER0000000000000000000001')}", 4096, 8192) = 4096`,
    `201 3.2 pwrite64(28, "${hex('meta')}", 160, 4096) = 160`,
    `201 3.3 fdatasync(27) = 0`,
    answer(31, '3.4', 'ORDER0000000000000000000001'),
  ].join('\n');
  assert.match(
    checkAnswersAfterCommits(noSync, STORE, { sequential: false }).problems.join('\n'),
    /no durable commit wrote a page holding that order/,
  );

  // the meta page through the data fd (lmdb-js overlappingSync): durable once a later sync returns, and
  // another thread's pages written meanwhile do not spoil this thread's commit; with no sync at all
  // (noSync) nothing is durable
  const metaOnData = (sync: boolean) =>
    [
      ...opens,
      ...catalogPut,
      post(31, '3.0'),
      `201 3.1 writev(27, [{iov_base="${hex('page:ORDER0000000000000000000001')}", iov_len=4096}], 1) = 4096`,
      `201 3.2 pwrite64(27, "${hex('meta')}", 128, 4136) = 128`,
      ...(sync ? [`201 3.3 fdatasync(27 <unfinished ...>`] : []),
      `202 3.4 pwrite64(27, "${hex('page:ORDER0000000000000000000009')}", 4096, 12288) = 4096`,
      ...(sync ? [`201 3.5 <... fdatasync resumed>) = 0`] : []),
      answer(31, '3.6', 'ORDER0000000000000000000001'),
    ].join('\n');
  assert.deepEqual(checkAnswersAfterCommits(metaOnData(true), STORE, { sequential: true }).problems, []);
  assert.match(
    checkAnswersAfterCommits(metaOnData(false), STORE, { sequential: true }).problems.join('\n'),
    /no durable commit wrote a page holding that order/,
  );

  // concurrent: the commit carrying order 2 was synced before order 2's request was read (an answer
  // tied to a commit that cannot hold it), and order 3 rides a commit of another order only
  const concurrent = [
    ...opens,
    ...catalogPut,
    post(31, '3.0'),
    ...commit('3.1', 'ORDER0000000000000000000001|ORDER0000000000000000000002'),
    post(32, '3.2'),
    answer(31, '3.3', 'ORDER0000000000000000000001'),
    answer(32, '3.4', 'ORDER0000000000000000000002'),
    post(33, '3.5'),
    answer(33, '3.6', 'ORDER0000000000000000000003'),
  ].join('\n');
  const conc = checkAnswersAfterCommits(concurrent, STORE, { sequential: false }).problems.join('\n');
  assert.match(conc, /201 number 2 .* synced before its request was read/);
  assert.match(conc, /201 number 3 .* no durable commit wrote a page holding that order/);
  assert.doesNotMatch(conc, /201 number 1 /);
});

// --- the real checkout under strace -------------------------------------------------------------------

async function traceCheckout(
  orders: (base: string) => Promise<void>,
): Promise<{ text: string; store: string }> {
  const dataDir = tempDir('popkit-fsync-');
  const trace = path.join(dataDir, 'strace.out');
  const port = await freePort();
  const proc = spawn(
    'strace',
    [
      '-f',
      '-ttt',
      '-x',
      '-s',
      '4096',
      '-e',
      'trace=openat,fdatasync,fsync,write,writev,pwrite64,pwritev,pwritev2,sendto,sendmsg,read,readv,recvfrom,recvmsg',
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
      body: JSON.stringify(smallCatalog({ A: 1000 })),
    });
    assert.equal(put.status, 200);
    await orders(base);
  } finally {
    // stop checkout itself (its pid is in its status file); strace leaves with its tracee
    const pid = readRunStatus(dataDir, 'checkout')?.pid;
    if (pid) process.kill(pid, 'SIGTERM');
    else proc.kill('SIGKILL');
    await exited;
  }
  const text = fs.readFileSync(trace, 'utf8');
  fs.rmSync(dataDir, { recursive: true, force: true });
  return { text, store: path.join(dataDir, 'kit.lmdb') };
}

async function order(base: string): Promise<string> {
  const res = await fetch(`${base}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } }),
  });
  assert.equal(res.status, 201);
  return ((await res.json()) as { id: string }).id;
}

test('orders one after another: the k-th 201 follows the durable commit holding its order, k commits after the catalog', {
  timeout: 120_000,
}, async () => {
  const ids: string[] = [];
  const { text, store } = await traceCheckout(async (base) => {
    for (let i = 0; i < 8; i++) ids.push(await order(base));
  });
  const report = checkAnswersAfterCommits(text, store, { sequential: true });
  assert.deepEqual(report.problems, []);
  assert.deepEqual(
    report.answers.map((a) => a.id),
    ids,
  );
  // one commit per order, each a later one
  const carriers = report.answers.map((a) => a.commit as number);
  assert.equal(new Set(carriers).size, 8, `carrying commits ${carriers}`);
});

test('30 concurrent orders (group commit): each 201 follows the durable commit holding its order, read before it', {
  timeout: 120_000,
}, async () => {
  let ids: string[] = [];
  const { text, store } = await traceCheckout(async (base) => {
    ids = await Promise.all(Array.from({ length: 30 }, () => order(base)));
  });
  const report = checkAnswersAfterCommits(text, store, { sequential: false });
  assert.deepEqual(report.problems, []);
  assert.deepEqual(report.answers.map((a) => a.id).sort(), [...ids].sort());
  // the orders were batched: some commit carried more than one of them
  const carriers = report.answers.map((a) => a.commit as number);
  assert.ok(new Set(carriers).size < 30, `no group commit: carrying commits ${carriers}`);
});
