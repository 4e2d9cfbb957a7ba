// The ledger's database handle: PostgreSQL through `pg` when DATABASE_URL is set, otherwise PGlite
// (PostgreSQL compiled to WASM) in the hub's data dir, so the embedded hub runs the very same SQL.
import fs from 'node:fs';
import pg from 'pg';
import { moduleLogger } from '../../core/logger.ts';

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

export async function openPglite(dir: string, schema: string): Promise<SqlDb> {
  fs.mkdirSync(dir, { recursive: true });
  const { PGlite } = await import('@electric-sql/pglite');
  const db = await PGlite.create(dir);
  await db.exec(
    `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}; SET search_path TO ${quoteIdent(schema)}, public;`,
  );
  // PGlite is one connection: transactions must not interleave, so they queue here
  let chain: Promise<unknown> = Promise.resolve();
  return {
    kind: 'pglite',
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
