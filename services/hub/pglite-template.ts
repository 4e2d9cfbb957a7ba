// A prebuilt, empty PGlite database (what PostgreSQL's initdb writes, made once by scripts/build.sh) that
// the embedded hub's first start copies instead of running initdb itself: initdb in WASM takes seconds
// and grows the hub's WASM memory to its peak for good (docs/architecture.md#the-embedded-hub).
// The template carries a manifest (the PGlite version that made it, every file's size and SHA-256):
// a template of another PGlite version, a damaged or incomplete one is refused, said in the log, and
// the hub creates its database with initdb as before.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fsyncDir } from '../../core/durable-file.ts';

/** Where scripts/build.sh puts the template: beside this module in dist/ (absent when run from source). */
export const DEFAULT_PGLITE_TEMPLATE = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'pglite-template',
);

export const TEMPLATE_MANIFEST = 'popkit-template.json';

interface Manifest {
  pglite: string;
  files: Array<{ path: string; size: number; sha256: string }>;
}

/** The installed PGlite's version (a template is only good for the PGlite that made it). */
export function pgliteVersion(): string {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  for (let dir = path.dirname(entry); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      const json = JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string; version?: string };
      if (json.name === '@electric-sql/pglite' && json.version) return json.version;
    }
  }
  throw new Error('@electric-sql/pglite: package.json not found');
}

function listFiles(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(root, r));
    else if (e.isFile() && r !== TEMPLATE_MANIFEST) out.push(r);
  }
  return out.sort();
}

const sha256 = (buf: Buffer) => crypto.createHash('sha256').update(buf).digest('hex');

/**
 * Make the template in `out` (replaced): PGlite's initdb in a scratch directory, closed cleanly, then
 * its manifest. Returns the number of files.
 */
export async function makePgliteTemplate(out: string): Promise<number> {
  const { PGlite } = await import('@electric-sql/pglite');
  const scratch = `${out}.making`;
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(scratch, { recursive: true });
  const db = await PGlite.create({ dataDir: scratch });
  await db.close();
  // postmaster.pid of the closed instance, if any, must not travel
  fs.rmSync(path.join(scratch, 'postmaster.pid'), { force: true });
  const files = listFiles(scratch).map((p) => {
    const buf = fs.readFileSync(path.join(scratch, p));
    return { path: p, size: buf.length, sha256: sha256(buf) };
  });
  const manifest: Manifest = { pglite: pgliteVersion(), files };
  fs.writeFileSync(path.join(scratch, TEMPLATE_MANIFEST), `${JSON.stringify(manifest)}\n`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.renameSync(scratch, out);
  return files.length;
}

export type SeedResult = { seeded: true; files: number } | { seeded: false; reason: string };

/**
 * Fill the empty (or absent) `dir` with a checked copy of `template`, durably: every file is checked
 * against the manifest while it is copied into `<dir>.seeding`, synced, and the copy renamed to `dir`
 * (its parent synced), so a power cut leaves either no database or the whole template. Nothing is
 * written to `dir` when the template is refused (the reason is returned).
 */
export function seedFromTemplate(dir: string, template: string): SeedResult {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(template, TEMPLATE_MANIFEST), 'utf8')) as Manifest;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      seeded: false,
      reason:
        code === 'ENOENT' ? `no template at ${template}` : `unreadable manifest: ${(err as Error).message}`,
    };
  }
  if (!Array.isArray(manifest.files) || manifest.files.length === 0)
    return { seeded: false, reason: 'manifest lists no files' };
  const version = pgliteVersion();
  if (manifest.pglite !== version)
    return { seeded: false, reason: `made by PGlite ${manifest.pglite}, this is ${version}` };
  const staging = `${dir}.seeding`;
  fs.rmSync(staging, { recursive: true, force: true });
  const dirs = new Set<string>([staging]);
  try {
    fs.mkdirSync(staging, { recursive: true, mode: 0o700 });
    for (const f of manifest.files) {
      if (typeof f.path !== 'string' || f.path.split('/').some((s) => s === '..' || s === ''))
        throw new Error(`bad path in manifest: ${String(f.path)}`);
      const buf = fs.readFileSync(path.join(template, f.path));
      if (buf.length !== f.size || sha256(buf) !== f.sha256) throw new Error(`${f.path} is damaged`);
      const to = path.join(staging, f.path);
      fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o700 });
      dirs.add(path.dirname(to));
      const fd = fs.openSync(to, 'w', 0o600);
      try {
        fs.writeSync(fd, buf);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    // PostgreSQL's empty directories (pg_notify, pg_tblspc, ...) are not in the file list
    copyEmptyDirs(template, staging, dirs);
    // deepest first, so each directory's entries are durable before its parent's
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) fsyncDir(d);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    const msg = (err as Error).message;
    return { seeded: false, reason: (err as NodeJS.ErrnoException).code ? `unreadable: ${msg}` : msg };
  }
  // only ever an empty directory (openPglite seeds no other): rmdir refuses anything else
  if (fs.existsSync(dir)) fs.rmdirSync(dir);
  fs.renameSync(staging, dir);
  fsyncDir(path.dirname(dir));
  return { seeded: true, files: manifest.files.length };
}

function copyEmptyDirs(from: string, to: string, dirs: Set<string>): void {
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const target = path.join(to, e.name);
    if (!fs.existsSync(target)) fs.mkdirSync(target, { mode: 0o700 });
    dirs.add(target);
    copyEmptyDirs(path.join(from, e.name), target, dirs);
  }
}
