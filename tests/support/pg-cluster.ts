// A PostgreSQL primary and its streaming replica of a test's own: two clusters in one temp dir
// (initdb, pg_basebackup -R, pg_ctl) on claimed free ports, so a test can pause the replica's replay,
// stop and restart it without touching the shared server on 5432. PostgreSQL refuses to run as root:
// when the test runs as root (CI, .ci/run), the clusters belong to the `postgres` user and every
// PostgreSQL program runs through runuser. Binaries: POPKIT_TEST_PG_BIN, else the newest
// /usr/lib/postgresql/<version>/bin (Debian's layout), else the PATH.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startOnFreePort } from './ports.ts';
import { makeTempDir } from './tmp.ts';

const run = promisify(execFile);

function pgBin(): string {
  const env = process.env['POPKIT_TEST_PG_BIN'];
  if (env) return env;
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((v) => /^\d+$/.test(v) && fs.existsSync(path.join(root, v, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  return versions[0] ? path.join(root, versions[0], 'bin') : '';
}

const BIN = pgBin();
const AS_ROOT = process.getuid?.() === 0;

/** Run one PostgreSQL program (as `postgres` when we are root); its output, or an error with it. */
async function pgRun(prog: string, args: string[], cwd: string): Promise<string> {
  const exe = BIN ? path.join(BIN, prog) : prog;
  const [cmd, argv] = AS_ROOT ? ['runuser', ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
  try {
    const { stdout, stderr } = await run(cmd, argv, { cwd, timeout: 120_000 });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${prog} ${args.join(' ')}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/**
 * Run a program as the clusters' owner (the `postgres` user when we are root) with more environment,
 * PostgreSQL's programs first on its PATH: a script meant for the postgres image, for instance.
 */
export async function runAsClusterOwner(
  file: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<string> {
  const PATH = `${BIN ? `${BIN}:` : ''}${process.env['PATH'] ?? '/usr/bin:/bin'}`;
  const vars = Object.entries({ ...env, PATH }).map(([k, v]) => `${k}=${v}`);
  const [cmd, argv] = AS_ROOT
    ? ['runuser', ['-u', 'postgres', '--', 'env', ...vars, file, ...args]]
    : ['env', [...vars, file, ...args]];
  try {
    const { stdout, stderr } = await run(cmd, argv, { cwd, timeout: 120_000 });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

function ownedByPostgres(dir: string): void {
  if (!AS_ROOT) return;
  const ids = fs.readFileSync('/etc/passwd', 'utf8').match(/^postgres:[^:]*:(\d+):(\d+):/m);
  if (!ids) throw new Error('running as root and there is no postgres user to run PostgreSQL as');
  fs.chownSync(dir, Number(ids[1]), Number(ids[2]));
}

export interface PgNode {
  dir: string;
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust) */
  url: string;
  start(): Promise<void>;
  /** pg_ctl stop -m fast: its connections are ended, new ones refused */
  stop(): Promise<void>;
  /** one SQL statement on a connection of its own */
  sql<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
}

export interface PgReplicaPair {
  primary: PgNode;
  replica: PgNode;
  /** pg_wal_replay_pause() on the replica, returned once replay has actually stopped */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** both clusters stopped, their directory removed */
  close(): Promise<void>;
}

function node(dir: string, port: number, sockets: string): PgNode {
  const log = `${dir}.log`;
  let up = false;
  const self: PgNode = {
    dir,
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      const opts = `-c port=${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${sockets} -c fsync=off`;
      try {
        await pgRun('pg_ctl', ['-D', dir, '-l', log, '-w', '-t', '60', '-o', opts, 'start'], sockets);
      } catch (err) {
        // the server's own words (a port taken: "Address already in use") are in its log
        const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
        throw new Error(`${(err as Error).message}\n${text}`);
      }
      up = true;
    },
    async stop() {
      if (!up) return;
      await pgRun('pg_ctl', ['-D', dir, '-m', 'fast', '-w', '-t', '60', 'stop'], sockets);
      up = false;
    },
    async sql<R>(text: string, params?: unknown[]) {
      const c = new pg.Client({ connectionString: self.url });
      await c.connect();
      try {
        return (await c.query(text, params)).rows as R[];
      } finally {
        await c.end();
      }
    },
  };
  return self;
}

/** A fresh primary (initdb, trust on loopback) and a replica streaming from it (pg_basebackup -R). */
export async function pgReplicaPair(): Promise<PgReplicaPair> {
  const base = makeTempDir('pgpair-');
  ownedByPostgres(base);
  await pgRun(
    'initdb',
    [
      '-D',
      path.join(base, 'primary'),
      '-A',
      'trust',
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ],
    base,
  );
  const primary = await startOnFreePort(async (port) => {
    const n = node(path.join(base, 'primary'), port, base);
    await n.start();
    return n;
  });
  const nodes = [primary];
  const close = async () => {
    for (const n of nodes.reverse()) await n.stop().catch(() => undefined);
    fs.rmSync(base, { recursive: true, force: true });
  };
  try {
    // -R: standby.signal and primary_conninfo; -X stream: the WAL of the copy comes along
    await pgRun(
      'pg_basebackup',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(primary.port),
        '-U',
        'postgres',
        '-D',
        path.join(base, 'replica'),
        '-R',
        '-X',
        'stream',
        '-c',
        'fast',
        '--no-sync',
      ],
      base,
    );
    const replica = await startOnFreePort(async (port) => {
      const n = node(path.join(base, 'replica'), port, base);
      await n.start();
      return n;
    });
    nodes.push(replica);
    return {
      primary,
      replica,
      async pauseReplay() {
        await replica.sql('SELECT pg_wal_replay_pause()');
        for (let i = 0; i < 600; i++) {
          const [r] = await replica.sql<{ s: string }>('SELECT pg_get_wal_replay_pause_state() AS s');
          if (r?.s === 'paused') return;
          await new Promise((res) => setTimeout(res, 50));
        }
        throw new Error('the replica did not pause its replay within 30 s');
      },
      async resumeReplay() {
        await replica.sql('SELECT pg_wal_replay_resume()');
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
