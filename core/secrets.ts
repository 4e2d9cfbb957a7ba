// The one loader of secret files (admin tokens, device keys). Each is written through
// core/durable-file.ts (temp, fsync, link or rename, fsync of the directory), mode 0600 in a 0700
// directory, never over one another process created a moment ago (an exclusive link). At every start
// the file is inspected: missing, empty or torn (wrong length, unparsable) is detected and named, and a
// file readable by group or others is refused (SECRET_INSECURE). What happens to a damaged file depends
// on what depends on it: an admin token is replaced (and reported as new); a key that sealed data in the
// store depends on is never replaced (loadDependentKey); the hub's keys refuse to start. A value from
// the environment wins over the file.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileDurable } from './durable-file.ts';
import { KitError } from './errors.ts';
import { ensurePrivateDir } from './file-modes.ts';

export type SecretState = 'ok' | 'missing' | 'empty' | 'torn';

export interface LoadedSecret<T> {
  value: T;
  /** true when this call generated the file */
  created: boolean;
  file: string;
  /** set when a damaged file was found and replaced (it is kept beside, as <file>.damaged-…) */
  replaced?: Exclude<SecretState, 'ok' | 'missing'>;
}

/** Checks the contents of one kind of secret: true when whole. */
export type SecretCheck = (content: Buffer) => boolean;

const KEY_BYTES = 32;
export const isKey32: SecretCheck = (b) => b.length === KEY_BYTES;
/** a bearer token: printable ASCII without spaces, at least 16 characters, optional final newline */
export const isToken: SecretCheck = (b) => /^[\x21-\x7e]{16,}\n?$/.test(b.toString('latin1'));

/** Refuses a secret file that group or others may read or write (SECRET_INSECURE). */
function assertPrivateMode(file: string, st: fs.Stats): void {
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new KitError(
      'SECRET_INSECURE',
      `${file} is readable or writable by group or others (mode ${mode.toString(8).padStart(4, '0')}); ` +
        `the key may have leaked: check who had access, then run chmod 600 ${file}`,
      { file, mode: `0${mode.toString(8)}` },
    );
  }
}

function stateOf(value: Buffer, check: SecretCheck): 'ok' | 'empty' | 'torn' {
  if (value.length === 0 || value.every((b) => b === 0)) return 'empty';
  return check(value) ? 'ok' : 'torn';
}

/** What is on disk at `file`: its contents when whole, else how it is damaged. Loose modes throw. */
export function inspectSecret(
  file: string,
  check: SecretCheck,
): { state: 'ok'; value: Buffer } | { state: Exclude<SecretState, 'ok'> } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'missing' };
    throw err;
  }
  try {
    assertPrivateMode(file, fs.fstatSync(fd));
    const value = fs.readFileSync(fd);
    const state = stateOf(value, check);
    return state === 'ok' ? { state, value } : { state };
  } finally {
    fs.closeSync(fd);
  }
}

function describe(file: string, state: Exclude<SecretState, 'ok'>): string {
  return state === 'missing'
    ? `${file} is missing`
    : state === 'empty'
      ? `${file} is empty (zero bytes or zeros: a write lost to a power cut?)`
      : `${file} is torn (its content is not a whole secret)`;
}

/** Move a damaged secret aside, keeping it for inspection. */
function moveAside(file: string, check: SecretCheck): void {
  const aside = `${file}.damaged-${Date.now()}-${process.pid}`;
  // not fsynced on its own: the new secret's link that follows fsyncs this same directory; a cut before
  // that finds the damaged file in place again, and it is moved aside again
  try {
    fs.renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // another process moved it
    throw err;
  }
  // a concurrent process may have replaced it between our look and our rename: put a whole one back
  const moved = fs.readFileSync(aside);
  if (stateOf(moved, check) === 'ok') {
    writeFileDurable(file, moved, { mode: 0o600, exclusive: true });
    fs.rmSync(aside, { force: true });
  }
}

interface CreateOptions {
  check: SecretCheck;
  /** what to do with an empty or torn file: replace it, or throw (CONFIG_INVALID) */
  damaged: 'replace' | 'throw';
}

/** Read `file`, or create it with `make()` (binary contents), per `opts`. */
export function loadOrCreateSecretFile(
  file: string,
  make: () => Buffer,
  opts: CreateOptions = { check: (b) => b.length > 0, damaged: 'throw' },
): LoadedSecret<Buffer> {
  ensurePrivateDir(path.dirname(file));
  let replaced: LoadedSecret<Buffer>['replaced'];
  for (let attempt = 0; attempt < 5; attempt++) {
    const seen = inspectSecret(file, opts.check);
    if (seen.state === 'ok')
      return { value: seen.value, created: false, file, ...(replaced ? { replaced } : {}) };
    if (seen.state !== 'missing') {
      if (opts.damaged === 'throw') {
        throw new KitError(
          'CONFIG_INVALID',
          `${describe(file, seen.state)}; it is not replaced because data depends on it: restore it from a backup (docs/security.md#secrets-and-keys-on-disk)`,
          { file, state: seen.state },
        );
      }
      replaced = seen.state;
      moveAside(file, opts.check);
      continue;
    }
    const value = make();
    if (writeFileDurable(file, value, { mode: 0o600, exclusive: true })) {
      return { value, created: true, file, ...(replaced ? { replaced } : {}) };
    }
    // another process created it a moment ago: use theirs
  }
  throw new KitError('CONFIG_INVALID', `${file} keeps changing under us; is another process rewriting it?`, {
    file,
  });
}

/** A bearer token: `fromEnv` when set, else the token in `file`, generated on first use; a damaged one is replaced. */
export function loadOrCreateToken(file: string, fromEnv?: string): LoadedSecret<string> {
  if (fromEnv) return { value: fromEnv, created: false, file };
  const loaded = loadOrCreateSecretFile(
    file,
    () => Buffer.from(`${randomBytes(24).toString('base64url')}\n`),
    {
      check: isToken,
      damaged: 'replace',
    },
  );
  return { ...loaded, value: loaded.value.toString('utf8').trim() };
}

/** A 32-byte key: `hexFromEnv` when set, else the key in `file`, generated on first use; a damaged one throws. */
export function loadOrCreateKey(file: string, hexFromEnv?: string): LoadedSecret<Buffer> {
  if (hexFromEnv) return { value: Buffer.from(hexFromEnv, 'hex'), created: false, file };
  return loadOrCreateSecretFile(file, () => randomBytes(KEY_BYTES), { check: isKey32, damaged: 'throw' });
}

/** A key sealed data depends on, as found at start. */
export type DependentKey =
  | { state: 'ok'; value: Buffer; created: boolean; replaced?: 'empty' | 'torn' }
  | { state: Exclude<SecretState, 'ok'>; file: string; message: string };

/** What depends on a key and what the kit refuses while it is lost: the words of the damage message. */
export interface KeyDependents {
  /** e.g. 'sealed payment tokens' */
  what: string;
  /** e.g. 'card sales are refused, cash sales continue' */
  refused: string;
}

const TOKEN_KEY_DEPENDENTS: KeyDependents = {
  what: 'sealed payment tokens',
  refused: 'card sales are refused, cash sales continue',
};

/**
 * A 32-byte key that data may depend on (the device's token key: sealed payment tokens in LMDB; the
 * buyer device key: device tokens on buyers' phones). Missing, empty or torn while `hasDependents()`
 * says data depends on it: the file is left as it is and the damage returned (the caller refuses what
 * needs the key); with nothing depending on it, it is generated or replaced (`created`, `replaced`).
 */
export function loadDependentKey(
  file: string,
  hexFromEnv: string | undefined,
  hasDependents: () => boolean,
  dependents: KeyDependents = TOKEN_KEY_DEPENDENTS,
): DependentKey {
  if (hexFromEnv) return { state: 'ok', value: Buffer.from(hexFromEnv, 'hex'), created: false };
  const seen = inspectSecret(file, isKey32);
  if (seen.state === 'ok') return { state: 'ok', value: seen.value, created: false };
  if (hasDependents()) {
    return {
      state: seen.state,
      file,
      message: `${describe(file, seen.state)} and ${dependents.what} depend on it: ${dependents.refused}; restore the key (docs/power-cuts.md#when-a-key-is-lost-or-torn)`,
    };
  }
  const loaded = loadOrCreateSecretFile(file, () => randomBytes(KEY_BYTES), {
    check: isKey32,
    damaged: 'replace',
  });
  return {
    state: 'ok',
    value: loaded.value,
    created: loaded.created,
    ...(loaded.replaced ? { replaced: loaded.replaced } : {}),
  };
}

/** A token for a client (kitd, the CLI): `fromEnv`, else the file's, else undefined; never creates one. */
export function readToken(file: string, fromEnv?: string): string | undefined {
  if (fromEnv) return fromEnv;
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** On balena, whose cloud keeps every line a container prints (BALENA, BALENA_DEVICE_UUID). */
export function onBalena(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env['BALENA'] || env['BALENA_DEVICE_UUID']);
}

/** The line announcing a generated admin token: the token once, or under balena only its file's path. */
export function announceAdminToken(
  token: string,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  return onBalena(env)
    ? `admin token generated, kept in ${file} (not printed: balena keeps this log in its cloud; read the file on the device)`
    : `admin token (shown once, kept in ${file}): ${token}`;
}
