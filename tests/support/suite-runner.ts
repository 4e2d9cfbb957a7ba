// The suite's runner: Node's test runner (`run()`, spec reporter, the CLI's exit code rule) over the files
// scripts/test.sh gives it, started longest first. `node --test` sorts its files by name, so the slowest
// ones (power cuts, e2e) used to start last and the run ended with one of two slots idle for minutes;
// started first, the short ones fill in beside them. The order comes from tests/durations.json (seconds
// per file, from a whole run: `POPKIT_TEST_DURATIONS_OUT=tests/durations.json bash scripts/test.sh`); a
// file it does not list counts as DEFAULT_S. The order changes nothing but when each file starts.
//
//
// Files that play video in real time (a browser playing the live stream, GStreamer encoding it) are
// hurt by a busy machine: `--realtime REGEX` gives the files it matches a lane of their own, one file
// at a time, beside the others' N. They never run beside each other (two players at once stalled), and
// the rest of the suite uses the CPU they leave idle while they wait on the clock. One spec reporter
// prints both lanes, and one summary at the end counts both.
//
//   node --import tsx tests/support/suite-runner.ts --concurrency N --timeout MS [--realtime REGEX] FILE…
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
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

/** The files of the real-time lane and the others, each in the order given. */
export function splitLanes(
  files: string[],
  realtime: RegExp | undefined,
): { main: string[]; realtime: string[] } {
  const lanes = { main: [] as string[], realtime: [] as string[] };
  for (const f of files) (realtime?.test(f) ? lanes.realtime : lanes.main).push(f);
  return lanes;
}

/** The counts of a run's closing summary (the runner's root diagnostics `tests 12`, `pass 11`, …). */
export const SUMMARY_COUNTS = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo'] as const;
type SummaryCount = (typeof SUMMARY_COUNTS)[number];
const SUMMARY_LINE = new RegExp(`^(${SUMMARY_COUNTS.join('|')}|duration_ms) (\\d+(?:\\.\\d+)?)$`);

/** Adds a root summary line to `into`; false for any other message (a test's own diagnostic). */
export function foldSummaryLine(into: Map<string, number>, message: string): boolean {
  const m = SUMMARY_LINE.exec(message);
  if (!m) return false;
  const [, key, value] = m as unknown as [string, SummaryCount | 'duration_ms', string];
  const n = Number(value);
  into.set(key, key === 'duration_ms' ? Math.max(into.get(key) ?? 0, n) : (into.get(key) ?? 0) + n);
  return true;
}

/** The combined summary, in the runner's order. */
export function summaryLines(totals: Map<string, number>, durationMs: number): string[] {
  return [...SUMMARY_COUNTS.map((k) => `${k} ${totals.get(k) ?? 0}`), `duration_ms ${durationMs}`];
}

interface Args {
  concurrency: number;
  timeout: number;
  realtime: RegExp | undefined;
  files: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { concurrency: 2, timeout: Number.POSITIVE_INFINITY, realtime: undefined, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--realtime') {
      const re = argv[++i];
      if (!re) throw new Error('--realtime needs a regular expression');
      args.realtime = new RegExp(re);
    } else if (a === '--concurrency' || a === '--timeout') {
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
  const ordered = orderByDuration(args.files.map(rel), known);
  // per file, the sum of its top-level tests' durations (they run one after another)
  const measured: Record<string, number> = {};
  // the lane pattern sees paths relative to the project (tests/browser/…); run() gets absolute ones
  const lanes = splitLanes(ordered, args.realtime);
  const abs = (files: string[]) => files.map((f) => path.join(root, f));
  const streams = [
    ...(lanes.main.length > 0
      ? [run({ files: abs(lanes.main), concurrency: args.concurrency, timeout: args.timeout })]
      : []),
    ...(lanes.realtime.length > 0
      ? [run({ files: abs(lanes.realtime), concurrency: 1, timeout: args.timeout })]
      : []),
  ];
  const started = performance.now();
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
  // both lanes into one reporter; each lane's closing summary is held back and printed once, summed
  const merged = new PassThrough({ objectMode: true });
  merged.compose(new spec()).pipe(process.stdout);
  const totals = new Map<string, number>();
  await Promise.all(
    streams.map((stream) => {
      stream.on('test:pass', onDone(false));
      stream.on('test:fail', onDone(true));
      stream.on(
        'data',
        (ev: { type: string; data: { nesting?: number; file?: string; message?: string } }) => {
          const d = ev.data;
          const rootSummary =
            ev.type === 'test:diagnostic' &&
            d.nesting === 0 &&
            d.file === undefined &&
            typeof d.message === 'string' &&
            foldSummaryLine(totals, d.message);
          if (!rootSummary) merged.write(ev);
        },
      );
      return new Promise<void>((resolve) => stream.once('close', () => resolve()));
    }),
  );
  for (const message of summaryLines(totals, performance.now() - started))
    merged.write({ type: 'test:diagnostic', data: { nesting: 0, message } });
  await new Promise<void>((resolve) => merged.end(resolve));
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
