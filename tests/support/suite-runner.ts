// The suite's runner: Node's test runner (`run()`, spec reporter, the CLI's exit code rule) over the files
// scripts/test.sh gives it, started longest first. `node --test` sorts its files by name, so the slowest
// ones (power cuts, e2e) used to start last and the run ended with one of two slots idle for minutes;
// started first, the short ones fill in beside them. The order comes from tests/durations.json (seconds
// per file, from a whole run: `POPKIT_TEST_DURATIONS_OUT=tests/durations.json bash scripts/test.sh`); a
// file it does not list counts as DEFAULT_S. The order changes nothing but when each file starts.
//
//   node --import tsx tests/support/suite-runner.ts --concurrency N --timeout MS FILE…
import fs from 'node:fs';
import path from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

/** a file tests/durations.json does not list (a new one): assumed this long, so it starts early */
const DEFAULT_S = 30;

export function orderByDuration(files: string[], durations: Record<string, number>): string[] {
  const secs = (f: string) => {
    const s = Object.hasOwn(durations, f) ? durations[f] : undefined;
    return typeof s === 'number' && Number.isFinite(s) && s >= 0 ? s : DEFAULT_S;
  };
  // longest first; ties by name, so the order is the same on every machine
  return [...files].sort((a, b) => secs(b) - secs(a) || (a < b ? -1 : a > b ? 1 : 0));
}

export function readDurations(file: string): Record<string, number> {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    const out: Record<string, number> = Object.create(null);
    for (const [k, v] of Object.entries(parsed)) if (typeof v === 'number') out[k] = v;
    return out;
  } catch {
    // no figures (or unreadable ones): every file counts the same, the order is by name
    return {};
  }
}

interface Args {
  concurrency: number;
  timeout: number;
  files: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { concurrency: 2, timeout: Number.POSITIVE_INFINITY, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--concurrency' || a === '--timeout') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} needs a positive integer`);
      if (a === '--concurrency') args.concurrency = n;
      else args.timeout = n;
    } else args.files.push(a);
  }
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.files.length === 0) throw new Error('no test files given');
  const root = path.resolve(import.meta.dirname, '../..');
  const durationsFile = path.join(root, 'tests/durations.json');
  const rel = (f: string) => path.relative(root, path.resolve(f));
  const known = readDurations(durationsFile);
  const ordered = orderByDuration(args.files.map(rel), known).map((f) => path.join(root, f));
  // per file, the sum of its top-level tests' durations (they run one after another)
  const measured: Record<string, number> = {};
  const stream = run({ files: ordered, concurrency: args.concurrency, timeout: args.timeout });
  const onDone =
    (failed: boolean) =>
    (data: { nesting: number; file?: string; details: { duration_ms: number }; todo?: unknown }) => {
      // the CLI's rule: a failure fails the run unless it is a todo test's
      if (failed && (data.todo === undefined || data.todo === false)) process.exitCode = 1;
      if (data.nesting === 0 && data.file) {
        const f = rel(data.file);
        measured[f] = (measured[f] ?? 0) + data.details.duration_ms / 1000;
      }
    };
  stream.on('test:pass', onDone(false));
  stream.on('test:fail', onDone(true));
  stream.compose(new spec()).pipe(process.stdout);
  await new Promise<void>((resolve) => stream.once('close', () => resolve()));
  const out = process.env.POPKIT_TEST_DURATIONS_OUT;
  if (out) {
    const rounded = Object.fromEntries(
      Object.entries(measured)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([f, s]) => [f, Math.round(s)]),
    );
    fs.writeFileSync(out, `${JSON.stringify(rounded, null, 2)}\n`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  main().catch((err) => {
    console.error((err as Error).message);
    process.exitCode = 1;
  });
}
