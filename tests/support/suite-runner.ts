// The suite's runner: Node's test runner (`run()`, spec reporter, the CLI's exit code rule) over the files
// scripts/test.sh gives it, started longest first. `node --test` sorts its files by name, so the slowest
// ones (power cuts, e2e) used to start last and the run ended with one of two slots idle for minutes;
// started first, the short ones fill in beside them. The order comes from tests/durations.json (seconds
// per file, from a whole run: `POPKIT_TEST_DURATIONS_OUT=tests/durations.json bash scripts/test.sh`); a
// file it does not list counts as DEFAULT_S. The order changes nothing but when each file starts.
//
// The small test files share a process per tier. Each file costs ~2-3 s of CPU just to start (the tsx
// loader, the same imports again, a coverage dump) for often under half a second of tests; ~55 unit and
// ~40 integration files did this one by one. The runner writes one entry per tier that imports each
// shared file inside a describe() named by its path, so every test still runs, is counted and reported
// under its file, top-level hooks stay scoped to their file, and a failure (or a file that does not
// load) fails the run as before. Unit files share unless they opt out; other files share only when they
// opt in with a line `// suite-runner: shared process` (short integration files). Either way a file keeps its own process when it touches process-wide state
// (OWN_PROCESS_PATTERNS: mocked timers or methods, process.exit/chdir/umask/kill, writes to process.env,
// process listeners) or says `// suite-runner: own process` (and why). The files of one shared entry run
// one after another, in name order, like the tests inside one file; the entries run beside the other
// files as any file does (the concurrency does not change).
//
//   node --import tsx tests/support/suite-runner.ts --concurrency N --timeout MS FILE…
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { pathToFileURL } from 'node:url';

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

/** files under this directory share their tier's process unless they opt out */
const SHARED_BY_DEFAULT = 'tests/unit/';
/** the marker a file writes to keep a process of its own */
export const OWN_PROCESS_MARKER = '// suite-runner: own process';
/** the marker a file outside tests/unit/ writes to share its tier's process */
export const SHARED_PROCESS_MARKER = '// suite-runner: shared process';
/** process-wide state a test changes: a file doing any of this keeps its own process */
export const OWN_PROCESS_PATTERNS: readonly RegExp[] = [
  /\bmock\s*\.\s*(timers|method|module|getter|setter|property)\b/,
  /\bprocess\s*\.\s*(exit|chdir|umask|setuid|setgid|abort|kill)\s*\(/,
  /\bprocess\s*\.\s*(exitCode|env(\s*\.\s*\w+|\s*\[[^\]]+\])?)\s*=[^=]/,
  /\bdelete\s+process\s*\.\s*env\b/,
  /\bprocess\s*\.\s*(on|once|addListener|prependListener)\s*\(/,
  /\bglobalThis\s*\.\s*\w+\s*=[^=]/,
];

/**
 * Which files (relative paths) share a process, by tier (`tests/<tier>/`): unit files that change
 * nothing process-wide, and other files that ask to. A tier with one such file shares nothing.
 */
export function sharedFiles(files: string[], source: (file: string) => string): Map<string, string[]> {
  const byTier = new Map<string, string[]>();
  for (const f of files) {
    const tier = /^tests\/([^/]+)\//.exec(f)?.[1];
    if (!tier) continue;
    let text: string;
    try {
      text = source(f);
    } catch {
      continue; // unreadable: its own process reports why
    }
    const lines = text.split('\n').map((l) => l.trim());
    const marked = (marker: string) => lines.some((l) => l.startsWith(marker));
    if (!f.startsWith(SHARED_BY_DEFAULT) && !marked(SHARED_PROCESS_MARKER)) continue;
    if (marked(OWN_PROCESS_MARKER)) continue;
    if (OWN_PROCESS_PATTERNS.some((re) => re.test(text))) continue;
    byTier.set(tier, [...(byTier.get(tier) ?? []), f]);
  }
  // one file alone gains nothing from sharing
  for (const [tier, list] of byTier) if (list.length < 2) byTier.delete(tier);
  return byTier;
}

/** the entry that runs `files` (absolute paths, shown under their names) in one process */
export function sharedEntry(files: { name: string; abs: string }[]): string {
  // Every file is imported at once, inside its suite (so its tests and top-level hooks land there),
  // and no suite starts its tests before all imports are done: a test of the first file must not run
  // while the others still load and compile on the same event loop (real-timer tests would see stalls).
  const lines = [
    '// written by tests/support/suite-runner.ts: test files sharing one process, each as a suite',
    "import { describe } from 'node:test';",
    'let loaded;',
    'const all = new Promise((resolve) => { loaded = resolve; });',
    'const loads = [];',
    'const suite = (name, url) => describe(name, async () => {',
    '  const load = import(url);',
    '  loads.push(load);',
    '  await load;',
    '  await all;',
    '});',
  ];
  for (const { name, abs } of files) {
    lines.push(`suite(${JSON.stringify(name)}, ${JSON.stringify(pathToFileURL(abs).href)});`);
  }
  lines.push('Promise.allSettled(loads).then(() => loaded());');
  return `${lines.join('\n')}\n`;
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
  const files = args.files.map(rel);
  const shared = sharedFiles(files, (f) => fs.readFileSync(path.join(root, f), 'utf8'));
  const inShared = new Set([...shared.values()].flat());
  const own = files.filter((f) => !inShared.has(f));
  // each shared entry counts as long as its files together, and starts in that place
  const durations: Record<string, number> = { ...known };
  const sharedDir = shared.size > 0 ? fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-suite-')) : '';
  const entries = new Set<string>();
  for (const [tier, list] of shared) {
    const entry = path.join(sharedDir, `shared-${tier}.test.mjs`);
    const names = [...list].sort();
    fs.writeFileSync(entry, sharedEntry(names.map((name) => ({ name, abs: path.join(root, name) }))));
    durations[entry] = names.reduce(
      (t, f) => t + (Object.hasOwn(known, f) ? (known[f] ?? 0) : DEFAULT_S / 10),
      0,
    );
    entries.add(entry);
    own.push(entry);
  }
  const ordered = orderByDuration(own, durations).map((f) => path.resolve(root, f));
  // per file, the sum of its top-level tests' durations (they run one after another)
  const measured: Record<string, number> = {};
  const stream = run({ files: ordered, concurrency: args.concurrency, timeout: args.timeout });
  const onDone =
    (failed: boolean) =>
    (data: {
      name: string;
      nesting: number;
      file?: string;
      details: { duration_ms: number };
      todo?: unknown;
    }) => {
      // the CLI's rule: a failure fails the run unless it is a todo test's
      if (failed && (data.todo === undefined || data.todo === false)) process.exitCode = 1;
      if (data.nesting === 0 && data.file) {
        // in the shared process each file is a top-level suite named by its path
        const f = entries.has(path.resolve(data.file)) ? data.name : rel(data.file);
        measured[f] = (measured[f] ?? 0) + data.details.duration_ms / 1000;
      }
    };
  stream.on('test:pass', onDone(false));
  stream.on('test:fail', onDone(true));
  stream.compose(new spec()).pipe(process.stdout);
  await new Promise<void>((resolve) => stream.once('close', () => resolve()));
  if (sharedDir) fs.rmSync(sharedDir, { recursive: true, force: true });
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
