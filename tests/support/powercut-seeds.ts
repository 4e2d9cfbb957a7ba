// The power-cut tests' memory of failures (tests/e2e/power-cut-seeds.json, committed): every moment
// that once failed is replayed first, on every run, before fast-check tries new ones. When a run fails
// on a developer's machine, the failing moment and its seed are appended there, so that committing the
// file keeps the case forever. Not under CI (CI set): a CI checkout is thrown away, and its log shows
// the seed and moment anyway.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SEEDS_FILE = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'e2e',
  'power-cut-seeds.json',
);

export interface KeptFailure<M> {
  /** the test (a key of the file) */
  test: string;
  /** fast-check's seed of the run that failed (replay: POPKIT_POWERCUT_SEED) */
  seed: number;
  /** the moment that failed, replayed as it is */
  moment: M;
  /** the first line of what went wrong, for the reader of the file */
  error: string;
  at: string;
}

function readAll(): KeptFailure<unknown>[] {
  try {
    const parsed = JSON.parse(fs.readFileSync(SEEDS_FILE, 'utf8')) as { failures?: unknown };
    return Array.isArray(parsed.failures) ? (parsed.failures as KeptFailure<unknown>[]) : [];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`${SEEDS_FILE} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The moments of `test` that once failed, oldest first. */
export function keptMoments<M>(test: string): M[] {
  return readAll()
    .filter((f) => f.test === test)
    .map((f) => f.moment as M);
}

/** Append a failure (once per moment); a no-op under CI. */
export function keepFailure<M>(test: string, seed: number, moment: M, err: unknown): void {
  if (process.env['CI']) return;
  const all = readAll();
  const key = JSON.stringify(moment);
  if (all.some((f) => f.test === test && JSON.stringify(f.moment) === key)) return;
  const error =
    String((err as Error)?.message ?? err)
      .split('\n')[0]
      ?.slice(0, 300) ?? '';
  all.push({ test, seed, moment, error, at: new Date().toISOString() });
  // a test fixture in the source tree, not kit state: a plain write is enough
  fs.writeFileSync(SEEDS_FILE, `${JSON.stringify({ failures: all }, null, 2)}\n`);
}

/** POPKIT_POWERCUT_RUNS new random moments per test (default `fallback`); kept ones come on top. */
export function powercutRuns(fallback: number): number {
  const n = Number(process.env['POPKIT_POWERCUT_RUNS'] ?? fallback);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
}

/** The run's seed: POPKIT_POWERCUT_SEED to replay one, else a new one. */
export function powercutSeed(): number {
  return Number(process.env['POPKIT_POWERCUT_SEED'] ?? Date.now() % 2 ** 31);
}
