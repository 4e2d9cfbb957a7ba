// How the hub tells its failures apart. Infrastructure (the database or the gateway away) is waited out:
// the batch is retried with backoff, the exchange deferred. Data (a value the database refuses) is per
// entry and permanent: that entry goes to the dead letters. Anything else is a bug: never retried in a
// loop, so a TypeError cannot spin a worker forever.

/** Socket-level failures of a connection to PostgreSQL (node's error codes). */
const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
]);

/** What node-postgres says when a connection dies or cannot be had (no code on these errors). */
const PG_CONN_MESSAGES = [
  /^Connection terminated/,
  /timeout exceeded when trying to connect/,
  /Client has encountered a connection error/,
  /Connection is closed/,
  /the database system is (starting up|shutting down)/,
];

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * True for the database being away or overloaded: connection errors, SQLSTATE class 08 (connection
 * exception), 53 (insufficient resources), 57P01–57P05 (shutdown, crash, cannot connect now, idle
 * timeouts), and 40001/40P01 (serialization failure, deadlock: retrying is the documented answer).
 */
export function isTransientDbError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && NET_CODES.has(code)) return true;
  const state = sqlState(err);
  if (state)
    return /^(08|53)/.test(state) || /^57P0[1-5]$/.test(state) || state === '40001' || state === '40P01';
  return PG_CONN_MESSAGES.some((re) => re.test(err.message));
}

/** True for a value the database refuses: SQLSTATE class 22 (data exception) or 23 (constraint). */
export function isDataError(err: unknown): boolean {
  const state = sqlState(err);
  return state !== undefined && /^(22|23)/.test(state);
}
