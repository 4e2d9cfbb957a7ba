// The moments of power-cut runs that failed, kept so that every later run tries them first (fast-check
// `examples`) until they are fixed and removed by hand: tests/fixtures/power-cut-kept/<name>.json, a
// JSON array of moments. A failing run adds its moment and says so; commit the file with the fix.
import fs from 'node:fs';
import path from 'node:path';

const DIR = path.join(import.meta.dirname, '../fixtures/power-cut-kept');

export function keptMoments<T>(name: string): T[] {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(DIR, `${name}.json`), 'utf8'));
    return Array.isArray(v) ? (v as T[]) : [];
  } catch {
    return [];
  }
}

/** Keep `moment` (once) for `name`; returns the file it is kept in. */
export function keepMoment<T>(name: string, moment: T): string {
  const file = path.join(DIR, `${name}.json`);
  const kept = keptMoments<T>(name);
  if (!kept.some((k) => JSON.stringify(k) === JSON.stringify(moment))) {
    fs.mkdirSync(DIR, { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify([...kept, moment], null, 2)}\n`);
  }
  return file;
}
