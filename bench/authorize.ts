// bench:authorize — the online card check's hop kit → sync → hub → gateway → kit
// (docs/scaling.md#the-online-card-check): `popkit hub` (real PostgreSQL, the strict sandbox) and
// `popkit sync` run as processes of their own on a private Mosquitto; this process is checkout (its
// OrderService on the kit's LMDB, the HubAuthorizer on sync's relay). Buyers pay with tokens the
// sandbox's card endpoint issued. Measured per order, sequentially and as a drop opening (buyers
// arriving evenly within one second), while sync drains the orders to the hub on the same link:
//   baseline — a card order committed without the hop (today's offline path);
//   hop      — the authorization alone;
//   order    — the authorization, then the commit (what a scarce card order costs online).
//
//   npm run bench:authorize -- [--buyers 200] [--sequential 200] [--budget-ms 1500]
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readRunStatus } from '../core/contracts/run-status.ts';
import { KitError } from '../core/errors.ts';
import { MonotonicIds } from '../core/ids.ts';
import { HubAuthorizer } from '../services/checkout/hub-authorizer.ts';
import type { OrderFeature } from '../services/checkout/order-features.ts';
import { OrderService } from '../services/checkout/orders.ts';
import {
  dropSchema,
  freePort,
  hubProcessEnv,
  makeKit,
  mosquitto,
  REPO,
  tmpDir,
  uniqueId,
  waitFor,
} from '../tests/support/hub-link.ts';

const { values } = parseArgs({
  options: {
    buyers: { type: 'string', default: '200' },
    sequential: { type: 'string', default: '200' },
    'budget-ms': { type: 'string', default: '1500' },
  },
});
const BUYERS = Number(values.buyers);
const SEQ = Number(values.sequential);
const BUDGET = Number(values['budget-ms']);
if (!(BUYERS > 0) || !(SEQ > 0) || !(BUDGET > 0)) {
  process.stderr.write('usage: bench/authorize.ts [--buyers N] [--sequential N] [--budget-ms MS]\n');
  process.exit(2);
}

function popkit(cmd: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [path.join(REPO, 'bin/popkit.js'), cmd], {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      POPKIT_LOG_LEVEL: process.env['BENCH_LOG_LEVEL'] ?? 'error',
      ...env,
    },
    stdio: ['ignore', process.env['BENCH_LOG_LEVEL'] ? 'inherit' : 'ignore', 'inherit'],
  });
}

interface Figures {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

function figures(ms: number[]): Figures {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? Number.NaN;
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1] ?? Number.NaN };
}

const fmt = (f: Figures) =>
  `n=${String(f.n).padStart(4)}  p50 ${f.p50.toFixed(2).padStart(7)}  p90 ${f.p90.toFixed(2).padStart(7)}  ` +
  `p99 ${f.p99.toFixed(2).padStart(7)}  max ${f.max.toFixed(2).padStart(7)} ms`;

const schema = uniqueId('bench_auth').replace(/-/g, '_');
const broker = await mosquitto({ dir: tmpDir('bench-auth-mosq') });
const hubPort = await freePort();
const hub = popkit('hub', {
  ...hubProcessEnv({ dataDir: tmpDir('bench-auth-hub'), brokerUrl: broker.url, schema, port: hubPort }),
  POPKIT_HUB_SANDBOX_CARDS: 'strict',
});
const kit = await makeKit(uniqueId('bench-auth'));
let sync: ChildProcess | undefined;
let authz: HubAuthorizer | undefined;
try {
  const hubUrl = `http://127.0.0.1:${hubPort}`;
  await waitFor(() => fetch(`${hubUrl}/healthz`).then((r) => r.ok), 30_000, 'hub healthz');
  sync = popkit('sync', {
    POPKIT_KIT_ID: kit.kitId,
    POPKIT_DATA_DIR: kit.dataDir,
    POPKIT_HUB_URL: broker.url,
    POPKIT_SYNC_POLL_MS: '50',
  });
  await waitFor(() => readRunStatus(kit.dataDir, 'sync')?.link === 'up', 30_000, 'sync link up');
  authz = HubAuthorizer.forDataDir(kit.dataDir).start();
  await waitFor(() => authz?.online(), 10_000, 'checkout hears the link is up');

  // the buyers' cards, from the sandbox card endpoint (as their pages would get them), before timing
  const total = 3 * BUYERS + 2 * SEQ + 40;
  const tokens: string[] = [];
  for (let i = 0; i < total; i++) {
    const res = await fetch(`${hubUrl}/v1/sandbox/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    tokens.push(((await res.json()) as { token: string }).token);
  }
  const card = () => tokens.pop()!;

  const a = authz;
  const outcomes: Record<string, number> = {};
  const online: OrderFeature = {
    name: 'bench-online-check',
    async settle(d) {
      if (d.body.payment.method !== 'token') return;
      const out = await a.authorize(
        { orderId: d.orderId, token: d.body.payment.token, amountCents: d.totalCents, currency: 'EUR' },
        BUDGET,
      );
      const k = `${out.verdict}${out.reason ? `:${out.reason}` : ''}`;
      outcomes[k] = (outcomes[k] ?? 0) + 1;
      if (out.verdict === 'declined') throw new KitError('PAYMENT_DECLINED', out.reason ?? 'declined');
      if (out.verdict === 'approved') {
        d.extra.authRef = out.ref!;
        d.riskBudget = false;
      }
    },
  };
  const big = 1_000_000_000_000;
  const svc = (features: OrderFeature[]) =>
    new OrderService(kit.store, new MonotonicIds(), kit.vault, {
      kitId: kit.kitId,
      tokenTtlMs: 3600_000,
      limits: { maxOrderCents: big, maxUnsyncedCents: big, maxUnsyncedOrders: big, maxUnsyncedAgeS: big },
      features,
    });
  const plain = svc([]);
  const withHop = svc([online]);
  const body = () => ({
    lines: [{ sku: 'TEE', qty: 1 }],
    payment: { method: 'token' as const, token: card() },
  });
  const kinds = {
    baseline: async () => void (await plain.create(body(), undefined)),
    hop: async () => {
      const out = await a.authorize(
        { orderId: uniqueId('o'), token: card(), amountCents: 2500, currency: 'EUR' },
        BUDGET,
      );
      const k = `${out.verdict}${out.reason ? `:${out.reason}` : ''}`;
      outcomes[k] = (outcomes[k] ?? 0) + 1;
    },
    order: async () => void (await withHop.create(body(), undefined)),
  };
  const timed = async (fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    return performance.now() - t0;
  };
  // warm-up (JIT, connections, prepared paths), not counted
  for (let i = 0; i < 10; i++) {
    await kinds.baseline();
    await kinds.order();
  }
  for (const k of Object.keys(outcomes)) delete outcomes[k];

  const results: Record<string, Figures> = {};
  const seqN = { baseline: SEQ, hop: SEQ / 2, order: SEQ / 2 };
  process.stdout.write(
    `bench:authorize — kit → sync → Mosquitto ${broker.url} → hub (PostgreSQL schema ${schema}, strict sandbox) → kit; ` +
      `budget ${BUDGET} ms\n\nsequential (one buyer after another)\n`,
  );
  for (const kind of ['baseline', 'hop', 'order'] as const) {
    const ms: number[] = [];
    for (let i = 0; i < seqN[kind]; i++) ms.push(await timed(kinds[kind]));
    results[`seq ${kind}`] = figures(ms);
    process.stdout.write(`  ${kind.padEnd(8)} ${fmt(results[`seq ${kind}`]!)}\n`);
  }
  // the hub's per-kit check quota (default burst 400, 100/s) refills between the phases
  await new Promise((r) => setTimeout(r, 4000));
  process.stdout.write(`\ndrop opening (${BUYERS} buyers arriving evenly within one second)\n`);
  for (const kind of ['baseline', 'hop', 'order'] as const) {
    const gap = 1000 / BUYERS;
    const t0 = performance.now();
    const ms = await Promise.all(
      Array.from({ length: BUYERS }, async (_, i) => {
        const wait = t0 + i * gap - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        return timed(kinds[kind]);
      }),
    );
    results[`drop ${kind}`] = figures(ms);
    process.stdout.write(`  ${kind.padEnd(8)} ${fmt(results[`drop ${kind}`]!)}\n`);
    await new Promise((r) => setTimeout(r, 4000));
  }
  const ratio = (a: string, b: string, q: keyof Figures) => (results[a]![q] / results[b]![q]).toFixed(1);
  const extra = (a: string, b: string) => (results[a]!.p99 - results[b]!.p99).toFixed(2);
  process.stdout.write(
    `\nresult: the hop's p99 ${results['seq hop']!.p99.toFixed(2)} ms sequential, ` +
      `${results['drop hop']!.p99.toFixed(2)} ms at the drop opening (budget ${BUDGET} ms);\n` +
      `  order online vs baseline, sequential: p50 ${ratio('seq order', 'seq baseline', 'p50')}x, ` +
      `p99 ${ratio('seq order', 'seq baseline', 'p99')}x (+${extra('seq order', 'seq baseline')} ms)\n` +
      `  order online vs baseline, drop:       p50 ${ratio('drop order', 'drop baseline', 'p50')}x, ` +
      `p99 ${ratio('drop order', 'drop baseline', 'p99')}x (+${extra('drop order', 'drop baseline')} ms)\n` +
      `  verdicts: ${JSON.stringify(outcomes)}\n`,
  );
  const fellBack = Object.entries(outcomes)
    .filter(([k]) => !k.startsWith('approved'))
    .reduce((n, [, v]) => n + v, 0);
  if (fellBack > 0) process.stdout.write(`  ${fellBack} checks fell back (see verdicts)\n`);
} finally {
  await authz?.close();
  if (sync) {
    sync.kill('SIGTERM');
    await new Promise((r) => sync?.once('exit', r));
  }
  hub.kill('SIGTERM');
  await new Promise((r) => hub.once('exit', r));
  await kit.close();
  await broker.stop();
  await dropSchema(schema);
}
