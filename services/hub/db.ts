// The ledger's database handle: PostgreSQL through `pg` when DATABASE_URL is set, otherwise PGlite
// (PostgreSQL compiled to WASM) in the hub's data dir, so the embedded hub runs the very same SQL.
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import pg from 'pg';
import { fsyncDir, mkdirDurable, writeFileDurable } from '../../core/durable-file.ts';
import { moduleLogger } from '../../core/logger.ts';
import { DEFAULT_PGLITE_TEMPLATE, seedFromTemplate } from './pglite-template.ts';

const log = moduleLogger('hub-db');

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
  /** several statements, no parameters (migrations) */
  exec(sql: string): Promise<void>;
}

export interface SqlDb extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** run `fn` in one transaction: committed when it resolves, rolled back when it throws */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

function quoteIdent(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad schema name ${name}`);
  return `"${name}"`;
}

export async function openPostgres(url: string, schema: string, poolSize: number): Promise<SqlDb> {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // every connection sees the ledger's schema first, so the SQL needs no schema prefix
    options: `-c search_path=${schema},public`,
    connectionTimeoutMillis: 10_000,
  });
  // an idle client's error (server restart) must not crash the hub; the next query reconnects
  pool.on('error', (err) => log.warn({ err: err.message }, 'postgres pool client error'));
  const boot = await pool.connect();
  try {
    await boot.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  } catch (err) {
    // two workers creating the schema at the same moment: the loser sees a unique violation
    if ((err as { code?: string }).code !== '23505') throw err;
  } finally {
    boot.release();
  }
  return {
    kind: 'postgres',
    query: (text, params) => pool.query(text, params as unknown[]) as never,
    exec: async (sql) => {
      await pool.query(sql);
    },
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const out = await fn({
          query: (t, p) => client.query(t, p as unknown[]) as never,
          exec: async (sql) => {
            await client.query(sql);
          },
        });
        await client.query('COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/**
 * How PGlite's files reach the disk. 'power-cut' (the hub's): PostgreSQL runs with fsync on and syncs
 * its WAL with fsync(), which DurableNodeFS passes to the real file, so a commit PGlite reports is on
 * the disk before the hub acks it. 'process-crash': PGlite's stock setup (PostgreSQL started with
 * `-F`, fsync off, and its Node filesystem has no fsync at all): a killed process loses nothing, a
 * power cut loses recent commits and can leave the directory unopenable (docs/power-cuts.md). Kept
 * for the same-run comparison of bench/pglite-durability.ts.
 */
export type PgliteDurability = 'power-cut' | 'process-crash';

/** written (durably) once the directory is a whole, synced database: see openPglite */
export const PGLITE_READY_MARKER = '.popkit-pglite-ready';

// Emscripten's Node filesystem (NODEFS) gives PGlite's PostgreSQL no fsync: its stream operations
// lack one, so fsync() returns success having done nothing. This one adds it, on the real descriptor.
async function durableNodeFs(dir: string) {
  const { NodeFS } = await import('@electric-sql/pglite/nodefs');
  type Init = InstanceType<typeof NodeFS>['init'];
  class DurableNodeFS extends NodeFS {
    override async init(...args: Parameters<Init>): ReturnType<Init> {
      const out = await super.init(...args);
      const patch = (mod: { NODEFS: { stream_ops: Record<string, unknown> } }) => {
        mod.NODEFS.stream_ops['fsync'] = (stream: { nfd: number }) => {
          fs.fsyncSync(stream.nfd);
          return 0;
        };
      };
      const preRun = [...(out.emscriptenOpts.preRun ?? []), patch as never];
      return { emscriptenOpts: { ...out.emscriptenOpts, preRun } };
    }
  }
  return new DurableNodeFS(dir);
}

/** fsync every file and directory under `dir` (what PostgreSQL's initdb wrote without any sync). */
function syncTree(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += syncTree(p);
    else if (e.isFile()) {
      const fd = fs.openSync(p, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      n++;
    }
  }
  fsyncDir(dir);
  return n;
}

/**
 * PostgreSQL's shared buffers in PGlite's WASM memory. initdb's postgresql.conf says 128MB, all of it
 * in a WASM memory that never shrinks (a hub process of ~350 MB at rest); the embedded hub's ledger of
 * one kit fits in far less, and a page not in them is one read from the OS's page cache.
 */
export const PGLITE_SHARED_BUFFERS = '16MB';

/**
 * PGlite's PostgreSQL (9 MB of WASM) compiled by V8's baseline compiler only: the optimizing tier's
 * second copy of the code is ~60 MB more resident in the hub for no gain the ledger's bench can see
 * (bench/pglite-durability.ts, bench/startup.ts). Set before the first module is compiled; it touches
 * only WebAssembly, which in the hub is PGlite alone.
 */
function baselineWasmOnly(): void {
  v8.setFlagsFromString('--liftoff-only');
}

async function createPglite(dir: string, durability: PgliteDurability) {
  baselineWasmOnly();
  const { PGlite } = await import('@electric-sql/pglite');
  const memory = ['-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`];
  if (durability === 'process-crash')
    return PGlite.create({ dataDir: dir, startParams: [...PGlite.defaultStartParams, ...memory] });
  const startParams = [
    // `-F` is PGlite's fsync=off; without it commits wait for their WAL to be synced
    ...PGlite.defaultStartParams.filter((p) => p !== '-F'),
    // fdatasync is a no-op in PGlite's WASM runtime; fsync reaches DurableNodeFS
    '-c',
    'wal_sync_method=fsync',
    ...memory,
  ];
  return PGlite.create({ dataDir: dir, fs: await durableNodeFs(dir), startParams });
}

/** How the directory came to hold a database in this open: see openPglite. */
export type PgliteOrigin = 'existing' | 'template' | 'initdb';

export interface PgliteOptions {
  durability?: PgliteDurability;
  /**
   * A prebuilt empty database (services/hub/pglite-template.ts) copied into an empty `dir` instead of
   * running initdb; default: the one scripts/build.sh puts in dist/. null: always initdb.
   */
  template?: string | null;
}

function isEmptyDir(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

/**
 * Open PGlite in `dir`. On a first start into an empty directory, the prebuilt template (when there is
 * a good one: see PgliteOptions.template) is copied in, durably, and opened; without one, PostgreSQL's
 * initdb creates the database (seconds slower; the reason is logged). With 'power-cut' durability, the
 * first start (initdb syncs nothing here) is made durable file by file and then marked ready
 * (PGLITE_READY_MARKER, written durably). A directory without the marker that does not open is a first
 * start cut short: nothing in it was ever acknowledged, so it is moved aside (kept,
 * `<dir>.incomplete-<time>`) and created anew with initdb. A marked directory that does not open is
 * never touched: the error propagates.
 */
export async function openPglite(
  dir: string,
  schema: string,
  opts: PgliteOptions = {},
): Promise<SqlDb & { readonly origin: PgliteOrigin }> {
  const durability = opts.durability ?? 'power-cut';
  const template = opts.template === undefined ? DEFAULT_PGLITE_TEMPLATE : opts.template;
  let origin: PgliteOrigin = 'existing';
  if (isEmptyDir(dir)) {
    origin = 'initdb';
    if (template) {
      // the directories above it durable first: the copy is renamed into place beside it
      mkdirDurable(path.dirname(dir));
      const seed = seedFromTemplate(dir, template);
      if (seed.seeded) {
        origin = 'template';
        log.info({ dir, template, files: seed.files }, 'hub database created from the prebuilt template');
      } else {
        log.info(
          { dir, template, reason: seed.reason },
          'prebuilt hub database template not used: creating the database with initdb (slower first start)',
        );
      }
    }
  }
  mkdirDurable(dir);
  const marker = path.join(dir, PGLITE_READY_MARKER);
  let db: Awaited<ReturnType<typeof createPglite>>;
  if (durability === 'power-cut' && !fs.existsSync(marker)) {
    try {
      db = await createPglite(dir, durability);
    } catch (err) {
      origin = 'initdb';
      const aside = `${dir}.incomplete-${Date.now()}`;
      log.warn(
        { dir, aside, err: (err as Error).message },
        'the hub database never finished its first start (a power cut?): kept aside, created anew',
      );
      fs.renameSync(dir, aside);
      fsyncDir(path.dirname(dir));
      mkdirDurable(dir);
      db = await createPglite(dir, durability);
    }
    const files = syncTree(dir);
    writeFileDurable(marker, `${new Date().toISOString()}\n`);
    log.info({ dir, files }, 'hub database synced to disk and marked ready');
  } else {
    db = await createPglite(dir, durability);
  }
  await db.exec(
    `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}; SET search_path TO ${quoteIdent(schema)}, public;`,
  );
  // PGlite is one connection: transactions must not interleave, so they queue here
  let chain: Promise<unknown> = Promise.resolve();
  return {
    kind: 'pglite',
    origin,
    query: (text, params) => db.query(text, params) as never,
    exec: async (sql) => {
      await db.exec(sql);
    },
    transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const run = chain.then(() =>
        db.transaction((tx) =>
          fn({
            query: (t, p) => tx.query(t, p) as never,
            exec: async (sql) => {
              await tx.exec(sql);
            },
          }),
        ),
      );
      chain = run.catch(() => undefined);
      return run;
    },
    close: () => db.close(),
  };
}
