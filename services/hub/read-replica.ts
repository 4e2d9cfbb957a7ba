// The hub's read-only paths on a streaming replica (POPKIT_HUB_READ_DATABASE_URL, docs/scaling.md#a-read-replica):
// a pool of its own on the replica, a sampler that measures how far behind it is, and the rule of which
// server answers a read. While the replica is down (it does not answer, or answered with a connection
// error) or further behind than POPKIT_HUB_READ_MAX_LAG_S, reads go to the primary instead: a warning in
// the log on each change of state, and counted (popkit_hub_reads_total{served_by}). A read never fails
// because of the replica alone.
import pg from 'pg';
import { moduleLogger, redactUrl } from '../../core/logger.ts';
import { type PollLoop, pollLoop } from '../../core/poll-loop.ts';
import type { Queryable } from './db.ts';

const log = moduleLogger('hub-read-replica');

/** how often the replica's lag is measured */
export const REPLICA_SAMPLE_MS = 1000;
/** a connection to the replica is given up after this long (then the read goes to the primary) */
const REPLICA_CONNECT_TIMEOUT_MS = 2000;
/** samples of the primary's WAL position kept to date the replica's (enough for any sane lag bound) */
const HISTORY_MAX = 3600;

export type ReplicaState = 'ok' | 'lagging' | 'down';

export interface ReplicaStatus {
  state: ReplicaState;
  /** seconds the replica's data is behind the primary's (to a sample, REPLICA_SAMPLE_MS); null while down */
  lagS: number | null;
  /** bytes of WAL the primary has written that the replica has not replayed; null while down */
  behindBytes: number | null;
  /** the commit time of the last transaction the replica replayed (pg_last_xact_replay_timestamp) */
  lastReplayAt: string | null;
  /** replay paused on the replica (pg_wal_replay_pause) */
  replayPaused: boolean;
  maxLagS: number;
  /** why it is down */
  error?: string;
}

export interface ReadStats {
  replica: number;
  /** reads the primary answered because the replica was down */
  primaryDown: number;
  /** reads the primary answered because the replica was behind more than the bound */
  primaryLagging: number;
  /** reads the primary answered again because the replica, up, could not finish them (a replay conflict) */
  primaryRetried: number;
}

/**
 * A replica's error that says the replica cannot answer now (its connection, its shutdown, its load, a
 * recovery conflict), not that the statement is wrong: the primary answers such a read instead. A
 * statement error (syntax, a bad parameter) would fail the same on the primary and is thrown.
 */
export function replicaUnavailable(err: unknown): 'down' | 'failed' | false {
  const code = (err as { code?: unknown }).code;
  // no SQLSTATE: a socket error (ECONNREFUSED, ECONNRESET), a connect timeout, a terminated connection
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return 'down';
  // 08: connection exception; 53: insufficient resources (too many connections); 57P: shutting down,
  // cannot connect now
  if (code.startsWith('08') || code.startsWith('53') || code.startsWith('57P')) return 'down';
  // the replica is up but could not finish this one: a conflict with the replay (hot standby), canceled
  if (code === '40001' || code === '57014') return 'failed';
  return false;
}

function errText(err: unknown): string {
  const e = err as { message?: string; code?: string };
  return `${e.code ? `${e.code} ` : ''}${e.message || String(err)}`;
}

export class ReplicaReads implements Queryable {
  readonly stats: ReadStats = { replica: 0, primaryDown: 0, primaryLagging: 0, primaryRetried: 0 };
  private readonly pool: pg.Pool;
  private current: ReplicaStatus;
  /** (time, the primary's WAL position) of recent samples, oldest first */
  private history: { t: number; lsn: bigint }[] = [];
  private loop: PollLoop | undefined;
  /** the first state is logged whatever it is */
  private known = false;

  constructor(
    private readonly primary: Queryable,
    private readonly opts: { url: string; schema: string; poolSize: number; maxLagS: number },
  ) {
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize,
      options: `-c search_path=${opts.schema},public`,
      connectionTimeoutMillis: REPLICA_CONNECT_TIMEOUT_MS,
    });
    // an idle client's error (the replica restarting) must not crash the hub
    this.pool.on('error', (err) => this.markDown(err));
    this.current = {
      state: 'down',
      lagS: null,
      behindBytes: null,
      lastReplayAt: null,
      replayPaused: false,
      maxLagS: opts.maxLagS,
      error: 'not sampled yet',
    };
  }

  /** Measure once (the hub starts with the replica's state known), then every REPLICA_SAMPLE_MS. */
  async start(): Promise<void> {
    await this.sample();
    this.loop = pollLoop(REPLICA_SAMPLE_MS, () => this.sample(), { unref: true });
  }

  status(): ReplicaStatus {
    return { ...this.current };
  }

  async query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: R[] }> {
    const state = this.current.state;
    if (state === 'ok') {
      try {
        const res = await this.pool.query(text, params);
        this.stats.replica++;
        return res as unknown as { rows: R[] };
      } catch (err) {
        const why = replicaUnavailable(err);
        if (!why) throw err;
        if (why === 'failed') {
          this.stats.primaryRetried++;
          log.debug({ err: errText(err) }, 'a read the replica could not finish: answered by the primary');
          return this.primary.query<R>(text, params);
        }
        this.markDown(err);
      }
    }
    if (this.current.state === 'lagging') this.stats.primaryLagging++;
    else this.stats.primaryDown++;
    return this.primary.query<R>(text, params);
  }

  /** The read pool runs no scripts: migrations and writes belong to the primary. */
  async exec(): Promise<void> {
    throw new Error('the read replica runs reads only');
  }

  /**
   * One measurement: the primary's WAL position first, then what the replica has replayed. The replica's
   * lag is the age of the oldest sample of the primary it has not replayed yet (0 when it has replayed
   * what the primary had at this sample), so an idle primary never looks like a lagging replica.
   */
  async sample(): Promise<void> {
    const now = Date.now();
    let primaryLsn: bigint;
    try {
      const p = await this.primary.query<{ lsn: string }>(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS lsn",
      );
      primaryLsn = BigInt(p.rows[0]?.lsn ?? '0');
    } catch (err) {
      // the primary itself is down: /healthz says so; the replica's state is left as it was
      log.debug({ err: errText(err) }, 'replica lag not sampled: the primary does not answer');
      return;
    }
    this.history.push({ t: now, lsn: primaryLsn });
    if (this.history.length > HISTORY_MAX) this.history.shift();
    let r: { standby: boolean; replayed: string | null; replay_at: Date | null; paused: boolean | null };
    try {
      const res = await this.pool.query<typeof r>(
        `SELECT pg_is_in_recovery() AS standby,
           pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::text AS replayed,
           pg_last_xact_replay_timestamp() AS replay_at,
           CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS paused`,
      );
      r = res.rows[0]!;
    } catch (err) {
      this.markDown(err);
      return;
    }
    // not a standby (a promoted replica, or a pooler in front of the primary): it is up to date
    const replayed = r.standby && r.replayed !== null ? BigInt(r.replayed) : primaryLsn;
    const behind = primaryLsn > replayed ? primaryLsn - replayed : 0n;
    let lagMs = 0;
    if (behind > 0n) {
      const oldestUnreplayed = this.history.find((h) => h.lsn > replayed);
      lagMs = now - (oldestUnreplayed?.t ?? now);
    }
    // samples the replica has replayed past are of no more use, but the newest one stays
    while (this.history.length > 1 && this.history[0]!.lsn <= replayed) this.history.shift();
    const lagS = lagMs / 1000;
    const next: ReplicaStatus = {
      state: lagS > this.opts.maxLagS ? 'lagging' : 'ok',
      lagS,
      behindBytes: Number(behind),
      lastReplayAt: r.replay_at ? new Date(r.replay_at).toISOString() : null,
      replayPaused: r.paused === true,
      maxLagS: this.opts.maxLagS,
    };
    this.transition(next);
  }

  private markDown(err: unknown): void {
    this.transition({
      state: 'down',
      lagS: null,
      behindBytes: null,
      lastReplayAt: this.current.lastReplayAt,
      replayPaused: false,
      maxLagS: this.opts.maxLagS,
      error: errText(err),
    });
  }

  private transition(next: ReplicaStatus): void {
    const was = this.current.state;
    this.current = next;
    if (was === next.state && this.known) return;
    this.known = true;
    const replica = redactUrl(this.opts.url);
    if (next.state === 'ok') log.info({ replica, was, lagS: next.lagS }, 'read replica serving the reads');
    else if (next.state === 'lagging')
      log.warn(
        { replica, lagS: next.lagS, maxLagS: next.maxLagS, replayPaused: next.replayPaused },
        'read replica behind POPKIT_HUB_READ_MAX_LAG_S: reads go to the primary',
      );
    else log.warn({ replica, err: next.error }, 'read replica down: reads go to the primary');
  }

  async close(): Promise<void> {
    this.loop?.stop();
    await this.pool.end().catch(() => undefined);
  }
}
