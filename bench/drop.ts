// bench/drop: the first second of a drop against a real `popkit checkout` process. 5,000 buyers
// without credentials, each from its own loopback address (Linux routes all of 127/8 to lo, so the
// per-address buyer limit is real), hit a 50-unit time-boxed SKU within one second of its window
// opening, paying with sandbox card tokens. Run twice in the same run: on the flat path
// (POPKIT_ADMISSION_CONCURRENCY=0) and with fair admission (the line).
// Two ways buyers connect: `warm` (default): each buyer's page watched the countdown, so its browser
// holds a keep-alive connection (opened with a catalog read before the window opens) and the tap is
// one request on it; `cold`: each tap opens a new connection (the kit also pays 5,000 accepts in that
// second).
//   node --import tsx bench/drop.ts [--buyers 5000] [--units 50] [--spread-ms 1000] [--cold]
//                                   [--concurrency N]   (the fair run's POPKIT_ADMISSION_CONCURRENCY)
// Goals: exactly 50 sold, 0 × 5xx, admission order = arrival order within the generator's own skew,
// p99 time to a definite answer <= 250 ms.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    buyers: { type: 'string', default: '5000' },
    units: { type: 'string', default: '50' },
    'spread-ms': { type: 'string', default: '1000' },
    /** the fair run's POPKIT_ADMISSION_CONCURRENCY (default: the kit's default) */
    concurrency: { type: 'string' },
    cold: { type: 'boolean', default: false },
  },
});
const BUYERS = Number(values.buyers);
const UNITS = Number(values.units);
const SPREAD_MS = Number(values['spread-ms']);
const COLD = values.cold === true;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ADMIN = 'bench-admin-token-0123456789';
/** the window opens this long after the catalog is loaded: buyers are scheduled from that instant */
const LEAD_MS = 12_000;

interface Shot {
  i: number;
  /** scheduled send, ms after the window opened */
  plannedMs: number;
  /** actual send (request created), performance.now() */
  sentAt: number;
  /** the generator wrote the request (its connect callback ran): later than sentAt by its own lag */
  writtenAt: number;
  /** the first byte of the answer */
  firstByteAt: number;
  doneAt: number;
  status: number;
  code: string;
  arrival?: number;
  admitted?: number;
  position?: number;
  orderId?: string;
  err?: string;
}

/** Buyer i's own loopback address: 127.1.x.y (never .0 or .255). */
const addressOf = (i: number) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} never answered`);
}

async function stop(p: ChildProcess) {
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
}

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: string;
  firstByteAt: number;
  doneAt: number;
}

/** One buyer's HTTP/1.1 connection from its own address: requests in turn, answers framed by content-length. */
class Conn {
  private sock: net.Socket | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private firstByteAt = 0;
  private waiting: ((a: Answer) => void) | undefined;
  /** when the connect callback ran (the request can be written) */
  connectedAt = 0;

  constructor(
    private readonly port: number,
    readonly local: string,
  ) {}

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port: this.port, localAddress: this.local }, () => {
        this.connectedAt = performance.now();
        resolve();
      });
      sock.setNoDelay(true);
      this.sock = sock;
      sock.on('data', (c: Buffer) => this.onData(c));
      sock.on('error', (e) => reject(e));
      sock.on('close', () => {
        const w = this.waiting;
        this.waiting = undefined;
        w?.({ status: 0, headers: new Map(), body: '', firstByteAt: 0, doneAt: performance.now() });
      });
    });
  }

  private onData(c: Buffer): void {
    if (this.buf.length === 0) this.firstByteAt = performance.now();
    this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
    const split = this.buf.indexOf('\r\n\r\n');
    if (split < 0) return;
    const head = this.buf.subarray(0, split).toString('latin1');
    const headers = new Map<string, string>();
    for (const line of head.split('\r\n').slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
    }
    const len = Number(headers.get('content-length') ?? 0);
    if (this.buf.length < split + 4 + len) return;
    const body = this.buf.subarray(split + 4, split + 4 + len).toString('utf8');
    this.buf = this.buf.subarray(split + 4 + len);
    const w = this.waiting;
    this.waiting = undefined;
    w?.({
      status: Number(head.slice(9, 12)),
      headers,
      body,
      firstByteAt: this.firstByteAt,
      doneAt: performance.now(),
    });
  }

  request(method: string, pathName: string, extra: Record<string, string> = {}, body = ''): Promise<Answer> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      const lines = [`${method} ${pathName} HTTP/1.1`, `host: 127.0.0.1:${this.port}`];
      for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
      if (body) lines.push('content-type: application/json', `content-length: ${Buffer.byteLength(body)}`);
      this.sock?.write(`${lines.join('\r\n')}\r\n\r\n${body}`);
    });
  }

  close(): void {
    this.sock?.destroy();
  }
}

/** One buyer's tap: the order on its connection (a new one when cold), the answer recorded. */
async function tap(shot: Shot, conn: Conn, cold: boolean, device: string): Promise<void> {
  shot.sentAt = performance.now();
  try {
    if (cold) await conn.connect();
  } catch (e) {
    shot.doneAt = performance.now();
    shot.code = 'NETWORK';
    shot.err = (e as Error).message;
    return;
  }
  shot.writtenAt = performance.now();
  const body = JSON.stringify({
    lines: [{ sku: 'DROP-1', qty: 1 }],
    payment: { method: 'token', token: `tok_sandbox_${shot.i.toString(36).padStart(6, '0')}` },
  });
  const a = await conn.request(
    'POST',
    '/v1/orders',
    {
      'idempotency-key': `drop-${shot.i}`,
      'x-popkit-device': device,
      ...(cold ? { connection: 'close' } : {}),
    },
    body,
  );
  shot.firstByteAt = a.firstByteAt;
  shot.doneAt = a.doneAt;
  shot.status = a.status;
  const h = (n: string) => (a.headers.has(n) ? Number(a.headers.get(n)) : undefined);
  const arrival = h('x-popkit-arrival');
  const admitted = h('x-popkit-admitted');
  const position = h('x-popkit-queue-position');
  if (arrival !== undefined) shot.arrival = arrival;
  if (admitted !== undefined) shot.admitted = admitted;
  if (position !== undefined) shot.position = position;
  if (a.status === 0) {
    shot.code = 'NETWORK';
    return;
  }
  try {
    const b = JSON.parse(a.body);
    shot.code = a.status < 300 ? 'SOLD' : (b?.error?.code ?? '?');
    if (a.status < 300) shot.orderId = b.id;
  } catch {
    shot.code = 'UNPARSABLE';
  }
}

/** p50/p99 upper bounds of the kit's own order histogram (accepted and refused): time inside the server. */
async function serverQuantiles(url: string, headers: Record<string, string>) {
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  const sum = new Map<number, number>();
  for (const m of text.matchAll(
    /popkit_order_duration_seconds_bucket\{le="([^"]+)",outcome="[a-z]+"\} (\d+)/g,
  )) {
    const le = m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]);
    sum.set(le, (sum.get(le) ?? 0) + Number(m[2]));
  }
  const buckets = [...sum.entries()].sort((a, b) => a[0] - b[0]);
  const count = buckets.at(-1)?.[1] ?? 0;
  const q = (f: number) => {
    const b = buckets.find(([, n]) => n >= f * count);
    return !b ? '?' : Number.isFinite(b[0]) ? `<= ${b[0] * 1000} ms` : '> 1 s';
  };
  return { p50: q(0.5), p99: q(0.99), count };
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number;
};

/**
 * Out-of-order admissions beyond `tolerMs`: walking the requests in the server's order (admission
 * number, or order id for the flat path), one whose send came more than tolerMs before the latest send
 * already served was overtaken by a request sent clearly after it.
 */
function inversions(shots: Shot[], key: (s: Shot) => number | string | undefined, tolerMs: number) {
  const served = shots.filter((s) => key(s) !== undefined);
  served.sort((a, b) => {
    const ka = key(a) as number | string;
    const kb = key(b) as number | string;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  let latest = Number.NEGATIVE_INFINITY;
  let count = 0;
  let worstMs = 0;
  for (const s of served) {
    if (latest - s.sentAt > tolerMs) {
      count++;
      worstMs = Math.max(worstMs, latest - s.sentAt);
    }
    latest = Math.max(latest, s.sentAt);
  }
  return { checked: served.length, count, worstMs };
}

/** CPU time (user + system) a process used so far, ms. */
function cpuMs(pid: number | undefined): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

/** The kernel's count of connections dropped because a listen queue was full (all sockets). */
function listenOverflows(): number {
  try {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const names = lines[0]?.split(' ') ?? [];
    const vals = lines[1]?.split(' ') ?? [];
    return Number(vals[names.indexOf('ListenOverflows')] ?? Number.NaN);
  } catch {
    return Number.NaN;
  }
}

async function runDrop(label: string, port: number, extraEnv: Record<string, string>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-bench-drop-'));
  // BENCH_KIT_NODE_ARGS: extra node flags for the kit (e.g. --cpu-prof to see where its time goes)
  const nodeArgs = process.env['BENCH_KIT_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
  const kit = spawn(process.execPath, [...nodeArgs, path.join(root, 'bin/popkit.js'), 'checkout'], {
    env: {
      ...process.env,
      POPKIT_DATA_DIR: path.join(dir, 'kit'),
      POPKIT_HTTP_PORT: String(port),
      POPKIT_HTTP_HOST: '127.0.0.1',
      POPKIT_BOARD: 'sim',
      POPKIT_ADMIN_TOKEN: ADMIN,
      POPKIT_LOG_LEVEL: 'warn',
      POPKIT_STORE_RESERVE_MB: '0',
      ...extraEnv,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const admin = { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` };
  try {
    await waitReady(`${url}/healthz`);
    // no NTP or RTC on a bench machine: staff vouch for the clock, as at a venue without uplink
    const trust = await fetch(`${url}/v1/clock/trust`, { method: 'POST', headers: admin, body: '{}' });
    if (trust.status !== 200) throw new Error(`clock trust refused: ${await trust.text()}`);
    // the drop is scarce (time-boxed, hero): each buyer's page got its device token when it opened,
    // from the buyer's own address, well before the drop (docs/security.md#drain-proofing)
    const devices: string[] = [];
    for (let i = 0; i < BUYERS; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, BUYERS - i) }, async (_, k) => {
          const c = new Conn(port, addressOf(i + k));
          await c.connect();
          const a = await c.request('POST', '/v1/devices', {}, '{}');
          c.close();
          if (a.status !== 201) throw new Error(`device token refused: ${a.status} ${a.body}`);
          devices[i + k] = JSON.parse(a.body).device as string;
        }),
      );
    }
    const opensAt = Date.now() + LEAD_MS;
    const put = await fetch(`${url}/v1/catalog`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({
        version: 1,
        eventId: 'bench-drop',
        currency: 'USD',
        items: [
          {
            sku: 'DROP-1',
            name: 'Numbered edition',
            priceCents: 5000,
            stock: UNITS,
            hero: true,
            maxPerOrder: 1,
            saleWindow: {
              startsAt: new Date(opensAt).toISOString(),
              endsAt: new Date(opensAt + 3_600_000).toISOString(),
            },
          },
        ],
      }),
    });
    if (put.status !== 200) throw new Error(`catalog refused: ${await put.text()}`);

    // before the window opens buyers watch the countdown: a catalog read from each buyer's address,
    // on the connection its browser keeps (warm) or one it closes (cold: a thousand of them, which
    // also warms both processes as a real countdown does)
    const conns = Array.from({ length: BUYERS }, (_, i) => new Conn(port, addressOf(i)));
    const watchers = COLD ? conns.slice(0, 1000).map((c) => new Conn(port, c.local)) : conns;
    for (let i = 0; i < watchers.length; i += 500) {
      await Promise.all(
        watchers.slice(i, i + 500).map(async (c) => {
          await c.connect();
          const a = await c.request('GET', '/v1/catalog');
          if (a.status !== 200) throw new Error(`countdown read answered ${a.status}`);
          if (COLD) c.close();
        }),
      );
    }
    if (Date.now() > opensAt - 200) throw new Error('the countdown reads took longer than the lead time');

    // every buyer's send instant, uniform over the spread, in send order
    const shots: Shot[] = Array.from({ length: BUYERS }, (_, i) => ({
      i,
      plannedMs: (i * SPREAD_MS) / BUYERS,
      sentAt: 0,
      writtenAt: 0,
      firstByteAt: 0,
      doneAt: 0,
      status: 0,
      code: '',
    }));
    const pending: Promise<void>[] = [];
    const overflowsBefore = listenOverflows();
    const cpuBefore = cpuMs(kit.pid);
    const startWall = Date.now();
    const startPerf = performance.now() + (opensAt - startWall);
    let next = 0;
    await new Promise<void>((resolve) => {
      const pump = () => {
        const now = performance.now() - startPerf;
        while (next < shots.length && (shots[next] as Shot).plannedMs <= now) {
          const s = shots[next++] as Shot;
          pending.push(tap(s, conns[s.i] as Conn, COLD, devices[s.i] as string));
        }
        if (next < shots.length) setImmediate(pump);
        else resolve();
      };
      setTimeout(pump, Math.max(0, opensAt - Date.now() - 5));
    });
    await Promise.all(pending);
    for (const c of conns) c.close();
    const overflows = listenOverflows() - overflowsBefore;
    const kitCpuMs = cpuMs(kit.pid) - cpuBefore;

    const status = await (await fetch(`${url}/v1/status`, { headers: admin })).json();
    const catalog = await (await fetch(`${url}/v1/catalog`)).json();
    const server = await serverQuantiles(url, admin);
    const lateness = shots.map((s) => s.sentAt - startPerf - s.plannedMs);
    const answered = shots.filter((s) => s.status > 0);
    const answerMs = answered.map((s) => s.doneAt - s.sentAt);
    // the generator's own lag between opening the connection and writing the request on it
    const writeLagMs = answered.map((s) => s.writtenAt - s.sentAt);
    // from the request on the wire to the answer's first byte: the kit's accept queue and its work
    const kitMs = answered.map((s) => s.firstByteAt - s.writtenAt);
    const skewMs = Math.max(1, quantile(lateness, 0.99));
    const codes: Record<string, number> = {};
    for (const s of shots) codes[s.code] = (codes[s.code] ?? 0) + 1;
    const sold = shots.filter((s) => s.status === 201);
    const firstSends = [...shots].sort((a, b) => a.sentAt - b.sentAt);
    const cutoff = (firstSends[UNITS - 1] as Shot | undefined)?.sentAt ?? 0;
    const winnersLate = sold.filter((s) => s.sentAt > cutoff + skewMs).length;
    return {
      label,
      sold: sold.length,
      stockLeft: catalog.items?.[0]?.stock as number,
      fivexx: shots.filter((s) => s.status >= 500).length,
      network: shots.filter((s) => s.status === 0).length,
      codes,
      p50: quantile(answerMs, 0.5),
      p99: quantile(answerMs, 0.99),
      max: quantile(answerMs, 1),
      writeLag: { p50: quantile(writeLagMs, 0.5), p99: quantile(writeLagMs, 0.99) },
      wire: { p50: quantile(kitMs, 0.5), p99: quantile(kitMs, 0.99) },
      skew: { p50: quantile(lateness, 0.5), p99: quantile(lateness, 0.99), max: quantile(lateness, 1) },
      sendSpanMs: (firstSends.at(-1)?.sentAt ?? 0) - (firstSends[0]?.sentAt ?? 0),
      order: shots.some((s) => s.admitted !== undefined)
        ? { by: 'admission number', ...inversions(shots, (s) => s.admitted, skewMs) }
        : { by: 'order id (flat: no line)', ...inversions(shots, (s) => s.orderId, skewMs) },
      winnersLate,
      maxPosition: Math.max(0, ...shots.map((s) => s.position ?? 0)),
      admission: status?.drops?.admission,
      server,
      overflows,
      kitCpuMs,
      lastAnswerMs: Math.max(...answered.map((s) => s.doneAt)) - startPerf,
    };
  } finally {
    await stop(kit);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// the flat path first, then the line: whichever runs first also pays for warming the generator
const flat = await runDrop('flat path (admission off)', 18192, { POPKIT_ADMISSION_CONCURRENCY: '0' });
const fair = await runDrop(
  `fair admission (${values.concurrency ? `concurrency ${values.concurrency}` : 'default line'})`,
  18191,
  values.concurrency ? { POPKIT_ADMISSION_CONCURRENCY: values.concurrency } : {},
);

const ms = (n: number) => `${n.toFixed(1)} ms`;
console.log(
  `bench/drop: ${BUYERS} buyers (each its own 127.1.x.y address; ${COLD ? 'cold: a new connection per tap' : 'warm: the keep-alive connection of the countdown page'}) on a ${UNITS}-unit drop within ${SPREAD_MS} ms, ${os.cpus().length} cores, load average ${os.loadavg()[0]?.toFixed(1)}`,
);
for (const r of [fair, flat]) {
  console.log(`\n${r.label}`);
  console.log(
    `  sold ${r.sold} (stock left ${r.stockLeft}), 5xx ${r.fivexx}, network errors ${r.network}, listen queue overflows during the drop (whole machine) ${r.overflows}`,
  );
  console.log(
    `  answers: ${Object.entries(r.codes)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  console.log(`  time to a definite answer: p50 ${ms(r.p50)}, p99 ${ms(r.p99)}, max ${ms(r.max)}`);
  console.log(
    `  from the request written to the first byte back (accept queue + kit): p50 ${ms(r.wire.p50)}, p99 ${ms(r.wire.p99)}; generator's connect-to-write lag p50 ${ms(r.writeLag.p50)}, p99 ${ms(r.writeLag.p99)}`,
  );
  console.log(
    `  kit CPU during the drop ${r.kitCpuMs.toFixed(0)} ms (${((r.kitCpuMs * 1000) / BUYERS).toFixed(0)} µs per buyer); last answer ${ms(r.lastAnswerMs)} after the window opened`,
  );
  console.log(
    `  inside the kit (its histogram, ${r.server.count} requests): p50 ${r.server.p50}, p99 ${r.server.p99}`,
  );
  console.log(
    `  load generator skew (send lateness): p50 ${ms(r.skew.p50)}, p99 ${ms(r.skew.p99)}, max ${ms(r.skew.max)}; sends spanned ${ms(r.sendSpanMs)}`,
  );
  console.log(
    `  order (${r.order.by}): ${r.order.count} of ${r.order.checked} served out of send order beyond the skew (worst ${ms(r.order.worstMs)}); winners sent after the first ${UNITS} (+skew): ${r.winnersLate}`,
  );
  if (r.admission)
    console.log(
      `  line: max position ${r.maxPosition}, admitted ${r.admission.admitted}, answered from the stock read ${r.admission.shortCircuited}, refused ${r.admission.refused}`,
    );
}
const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
console.log(
  `\ngoals (fair admission): exactly ${UNITS} sold: ${met(fair.sold === UNITS)}; 0 × 5xx: ${met(fair.fivexx === 0 && fair.network === 0)}; ` +
    `arrival order: ${met(fair.order.count === 0)}; p99 <= 250 ms: ${met(fair.p99 <= 250)}`,
);
console.log(
  `flat path, same goals: exactly ${UNITS} sold: ${met(flat.sold === UNITS)}; 0 × 5xx: ${met(flat.fivexx === 0 && flat.network === 0)}; ` +
    `arrival order: ${met(flat.order.count === 0)}; p99 <= 250 ms: ${met(flat.p99 <= 250)}`,
);
