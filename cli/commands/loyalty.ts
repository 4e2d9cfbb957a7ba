// `popkit loyalty issue|double-uses`: loyalty passes through the hub's admin API (docs/drops.md#loyalty).
// Issuing goes through the hub, never signs locally: the hub keeps every pass with its allowed uses,
// which is what it holds redemptions against when it looks for double uses. The hub's admin token comes
// from POPKIT_HUB_ADMIN_TOKEN, else from the embedded hub's data dir (`popkit up`).
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import QRCode from 'qrcode';
import { BaseConfig, loadConfig, resolveDataDir } from '../../core/config.ts';
import type { IssuePassBodyT } from '../../core/contracts/loyalty.ts';
import { dataLayout, hubDataLayout } from '../../core/data-dir.ts';

const USAGE =
  'usage: popkit loyalty issue --holder ID --tier T (--percent N | --fixed CENTS) --cap CENTS\n' +
  '                            [--skus A,B] (--creator ID | --event ID ...) [--uses N]\n' +
  '                            (--expires ISO-8601 | --days N) [--qr FILE.svg] [--json]\n' +
  '       popkit loyalty double-uses [--limit N] [--json]\n' +
  '  [--hub http://HUB:8090] (else POPKIT_HUB_HTTP_URL, else http://127.0.0.1:8090)\n';

type ApiError = { error?: { code?: string; message?: string } };

function hubToken(env: NodeJS.ProcessEnv): string | undefined {
  if (env['POPKIT_HUB_ADMIN_TOKEN']) return env['POPKIT_HUB_ADMIN_TOKEN'];
  const file = hubDataLayout(dataLayout(resolveDataDir(loadConfig(BaseConfig, env))).hub).adminToken;
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

async function hubRequest(
  base: string,
  token: string,
  method: string,
  p: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed };
}

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,12}$/.test(v)) throw new UsageError(`--${name} must be a whole number`);
  return Number(v);
}

class UsageError extends Error {}

/** The issue body from the command line (the hub validates it again: its schema is the contract). */
export function issueBody(values: Record<string, string | string[] | boolean | undefined>, now = Date.now()) {
  const s = (k: string) => values[k] as string | undefined;
  const percent = int(s('percent'), 'percent');
  const fixed = int(s('fixed'), 'fixed');
  const cap = int(s('cap'), 'cap');
  if ((percent === undefined) === (fixed === undefined))
    throw new UsageError('give exactly one of --percent or --fixed');
  if (cap === undefined) throw new UsageError('--cap CENTS is required (the most one use takes off)');
  const skus = s('skus')
    ?.split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const events = (values['event'] as string[] | undefined) ?? [];
  const creator = s('creator');
  if (!creator && events.length === 0) throw new UsageError('scope: give --creator and/or --event');
  const days = int(s('days'), 'days');
  const expires =
    s('expires') ?? (days !== undefined ? new Date(now + days * 86_400_000).toISOString() : undefined);
  if (!expires) throw new UsageError('give --expires ISO-8601 or --days N');
  const uses = int(s('uses'), 'uses');
  const body: IssuePassBodyT = {
    holder: s('holder') ?? '',
    tier: s('tier') ?? '',
    rule:
      percent !== undefined
        ? { kind: 'percent', percent, capCents: cap, ...(skus?.length ? { skus } : {}) }
        : { kind: 'fixed', cents: fixed ?? 0, capCents: cap, ...(skus?.length ? { skus } : {}) },
    scope: { ...(creator ? { creatorId: creator } : {}), ...(events.length ? { eventIds: events } : {}) },
    ...(uses !== undefined ? { uses } : {}),
    expiresAt: expires,
  };
  return body;
}

export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`popkit loyalty: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { positionals, values } = parsed;
  const [sub, ...rest] = positionals;
  if (rest.length > 0 || (sub !== 'issue' && sub !== 'double-uses')) {
    process.stderr.write(USAGE);
    return 2;
  }
  const base = (values.hub ?? env['POPKIT_HUB_HTTP_URL'] ?? 'http://127.0.0.1:8090').replace(/\/+$/, '');
  const token = hubToken(env);
  if (!token) {
    process.stderr.write('popkit loyalty: no hub admin token (set POPKIT_HUB_ADMIN_TOKEN)\n');
    return 1;
  }
  const refused = (status: number, body: unknown) => {
    const e = (body as ApiError | null)?.error;
    process.stderr.write(
      `popkit loyalty ${sub}: refused (${status} ${e?.code ?? ''}): ${e?.message ?? ''}\n`,
    );
    return 1;
  };
  if (sub === 'double-uses') {
    const limit = /^\d{1,4}$/.test(values.limit ?? '100') ? Number(values.limit ?? '100') : 0;
    if (limit < 1 || limit > 1000) {
      process.stderr.write(`popkit loyalty: --limit must be 1 to 1000\n${USAGE}`);
      return 2;
    }
    const res = await hubRequest(base, token, 'GET', `/v1/loyalty/double-uses?limit=${limit}`);
    if (res.status !== 200) return refused(res.status, res.body);
    const b = res.body as { count: number; doubleUses: Array<Record<string, unknown>> };
    if (values.json) process.stdout.write(`${JSON.stringify(b)}\n`);
    else {
      process.stdout.write(`${b.count} pass(es) used more than allowed\n`);
      for (const d of b.doubleUses)
        process.stdout.write(
          `  ${d['passId']} at ${d['eventId']} (holder ${d['holder']}): ${d['uses']} uses of ${d['allowed']} on ${d['kits']} kit(s), ${d['excessCents']} cents beyond\n`,
        );
    }
    return 0;
  }
  let body: IssuePassBodyT;
  try {
    body = issueBody(values);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`popkit loyalty issue: ${err.message}\n${USAGE}`);
    return 2;
  }
  const res = await hubRequest(base, token, 'POST', '/v1/loyalty/passes', body);
  if (res.status !== 201) return refused(res.status, res.body);
  const issued = res.body as { pass: string; payload: { id: string; holder: string; expiresAt: number } };
  // an output the operator asked for, wherever they point it (a file, /dev/stdout): not kit state, and
  // the pass itself is printed below, so a QR image lost to a power cut is made again from it
  if (values.qr) fs.writeFileSync(values.qr, await QRCode.toString(issued.pass, { type: 'svg' }));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(issued)}\n`);
    return 0;
  }
  const qr = await QRCode.toString(issued.pass, { type: 'terminal', small: true });
  process.stdout.write(
    `pass ${issued.payload.id} for ${issued.payload.holder}, until ${new Date(issued.payload.expiresAt * 1000).toISOString()}\n${issued.pass}\n${qr}`,
  );
  return 0;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      hub: { type: 'string' },
      holder: { type: 'string' },
      tier: { type: 'string' },
      percent: { type: 'string' },
      fixed: { type: 'string' },
      cap: { type: 'string' },
      skus: { type: 'string' },
      creator: { type: 'string' },
      event: { type: 'string', multiple: true },
      uses: { type: 'string' },
      expires: { type: 'string' },
      days: { type: 'string' },
      limit: { type: 'string' },
      qr: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
}
