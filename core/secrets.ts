// The one loader of secret files (admin tokens, device keys): read the file if it is there, else
// generate it, mode 0600 in a 0700 directory, without ever overwriting one another process created a
// moment ago (O_EXCL). A value from the environment wins over the file.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { KitError } from './errors.ts';

export interface LoadedSecret<T> {
  value: T;
  /** true when this call generated the file */
  created: boolean;
  file: string;
}

/** Read `file`, or create it with `make()`; binary contents. */
export function loadOrCreateSecretFile(file: string, make: () => Buffer): LoadedSecret<Buffer> {
  try {
    return { value: fs.readFileSync(file), created: false, file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const value = make();
  try {
    fs.writeFileSync(file, value, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      return { value: fs.readFileSync(file), created: false, file };
    }
    throw err;
  }
  return { value, created: true, file };
}

/** A bearer token: `fromEnv` when set, else the token in `file`, generated on first use. */
export function loadOrCreateToken(file: string, fromEnv?: string): LoadedSecret<string> {
  if (fromEnv) return { value: fromEnv, created: false, file };
  const loaded = loadOrCreateSecretFile(file, () =>
    Buffer.from(`${randomBytes(24).toString('base64url')}\n`),
  );
  const value = loaded.value.toString('utf8').trim();
  if (!value) throw new KitError('CONFIG_INVALID', `${file} is empty: delete it to generate a new token`);
  return { ...loaded, value };
}

/** A 32-byte key: `hexFromEnv` when set, else the key in `file`, generated on first use. */
export function loadOrCreateKey(file: string, hexFromEnv?: string): LoadedSecret<Buffer> {
  if (hexFromEnv) return { value: Buffer.from(hexFromEnv, 'hex'), created: false, file };
  const loaded = loadOrCreateSecretFile(file, () => randomBytes(32));
  if (loaded.value.length !== 32) throw new KitError('CONFIG_INVALID', `${file} is not a 32-byte key`);
  return loaded;
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
