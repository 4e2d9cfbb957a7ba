// The kit's side of enrollment at first boot (docs/fleet.md#enrollment-at-first-boot): a kit flashed
// with only a one-time code and the hub's URL makes its own ed25519 key pair (kept in its data dir, the
// private key never leaves the kit), proves it holds the key, redeems the code, and keeps the broker
// credentials the hub answers durably (core/durable-file.ts: temp, fsync, link, fsync of the directory;
// 0600 in the 0700 keys directory, as core/secrets.ts keeps every secret). Once they are on disk the
// code is never sent again: a reboot reads the file, so a used code is not replayed by its own kit.
import { createPrivateKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import path from 'node:path';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import {
  type CodeEnrollResponse,
  CodeEnrollResponse as CodeEnrollResponseSchema,
  ENROLL_CODE_PATTERN,
  enrollSigningMessage,
  splitEnrollCode,
} from './contracts/enrollment.ts';
import { dataLayout } from './data-dir.ts';
import { writeFileDurable } from './durable-file.ts';
import { KitError, toErrorCode } from './errors.ts';
import { ensurePrivateDir } from './file-modes.ts';
import { inspectSecret, loadOrCreateSecretFile } from './secrets.ts';

export interface KitHubCredentials extends CodeEnrollResponse {
  /** when the hub answered (the kit's clock) */
  enrolledAt: string;
  hubHttpUrl: string;
}

export function enrollmentFiles(dataDir: string): { identityKey: string; credentials: string } {
  const keys = dataLayout(dataDir).keys;
  return {
    identityKey: path.join(keys, 'identity.key'),
    credentials: path.join(keys, 'hub-credentials.json'),
  };
}

const isEd25519Pem = (b: Buffer): boolean => {
  try {
    return createPrivateKey(b).asymmetricKeyType === 'ed25519';
  } catch {
    return false;
  }
};

function parseCredentials(b: Buffer): KitHubCredentials | undefined {
  try {
    const v = JSON.parse(b.toString('utf8')) as Record<string, unknown>;
    const { enrolledAt, hubHttpUrl, ...answer } = v;
    if (typeof enrolledAt !== 'string' || typeof hubHttpUrl !== 'string') return undefined;
    return Value.Check(CodeEnrollResponseSchema, answer) ? (v as unknown as KitHubCredentials) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The kit's identity key pair: made here on first use. A damaged key file is replaced only while the
 * kit has no credentials (nothing the hub knows depends on it yet); after enrollment it is refused.
 */
export function kitIdentity(dataDir: string): { privateKey: KeyObject; publicKey: string; created: boolean } {
  const files = enrollmentFiles(dataDir);
  const enrolled = inspectSecret(files.credentials, () => true).state !== 'missing';
  const loaded = loadOrCreateSecretFile(
    files.identityKey,
    () =>
      Buffer.from(
        generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      ),
    { check: isEd25519Pem, damaged: enrolled ? 'throw' : 'replace' },
  );
  const privateKey = createPrivateKey(loaded.value);
  const jwk = privateKey.export({ format: 'jwk' }) as { x: string };
  return { privateKey, publicKey: jwk.x, created: loaded.created };
}

/** The credentials kept from an earlier enrollment; undefined before; a damaged file is CONFIG_INVALID. */
export function readKitCredentials(dataDir: string): KitHubCredentials | undefined {
  const file = enrollmentFiles(dataDir).credentials;
  const seen = inspectSecret(file, (b) => parseCredentials(b) !== undefined);
  if (seen.state === 'missing') return undefined;
  if (seen.state !== 'ok')
    throw new KitError(
      'CONFIG_INVALID',
      `${file} is ${seen.state}: the broker credentials are lost; revoke the kit at the hub (DELETE /v1/kits/<kitId>/enrollment), remove the file and enroll again with a new code`,
      { file, state: seen.state },
    );
  return parseCredentials(seen.value);
}

/** The hub's HTTP URL the code may be sent to: https, or http to this machine only (tests, `popkit up`). */
function checkHubUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new KitError('CONFIG_INVALID', 'POPKIT_HUB_HTTP_URL is not a URL');
  }
  const local = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local))
    throw new KitError(
      'CONFIG_INVALID',
      'POPKIT_HUB_HTTP_URL must be https (the code and the broker password travel over it)',
    );
  return url;
}

export interface EnrollOptions {
  dataDir: string;
  hubHttpUrl: string;
  code: string;
  kitId: string;
  timeoutMs?: number;
}

/**
 * Credentials for this kit: the kept ones, else enroll with the code and keep the hub's answer.
 * Hub refusals are KitErrors with the hub's code (ENROLL_CODE_USED, ENROLL_CODE_EXPIRED, ...); an
 * unreachable hub is NOT_READY (retry later: the code is consumed only by a successful answer).
 */
export async function enrollWithCode(
  opts: EnrollOptions,
): Promise<{ credentials: KitHubCredentials; enrolled: boolean }> {
  const kept = readKitCredentials(opts.dataDir);
  if (kept) return { credentials: kept, enrolled: false };
  if (!new RegExp(ENROLL_CODE_PATTERN).test(opts.code))
    throw new KitError('CONFIG_INVALID', 'POPKIT_ENROLL_CODE is not an enrollment code (pke1.<id>.<secret>)');
  const base = checkHubUrl(opts.hubHttpUrl);
  const { privateKey, publicKey } = kitIdentity(opts.dataDir);
  const { codeId } = splitEnrollCode(opts.code);
  const signature = sign(null, enrollSigningMessage(codeId, opts.kitId, publicKey), privateKey).toString(
    'base64url',
  );
  let res: Response;
  try {
    res = await fetch(new URL('/v1/kits/enroll/code', base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code: opts.code, kitId: opts.kitId, publicKey, signature }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
      redirect: 'error',
    });
  } catch (err) {
    throw new KitError('NOT_READY', `the hub did not answer the enrollment: ${(err as Error).message}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (res.status !== 201) {
    const e = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    throw new KitError(
      toErrorCode(e?.code, 'NOT_READY'),
      `the hub refused the enrollment (${res.status}): ${typeof e?.message === 'string' ? e.message.slice(0, 300) : 'no error envelope'}`,
    );
  }
  if (!Value.Check(CodeEnrollResponseSchema, body) || body.kitId !== opts.kitId)
    throw new KitError('NOT_READY', 'the hub answered the enrollment with an unexpected body');
  const credentials: KitHubCredentials = {
    ...body,
    enrolledAt: new Date().toISOString(),
    hubHttpUrl: base.origin,
  };
  const file = enrollmentFiles(opts.dataDir).credentials;
  ensurePrivateDir(path.dirname(file));
  if (!writeFileDurable(file, `${JSON.stringify(credentials)}\n`, { mode: 0o600, exclusive: true })) {
    // another process of this kit enrolled a moment ago: its answer is the one the broker knows
    const theirs = readKitCredentials(opts.dataDir);
    if (theirs) return { credentials: theirs, enrolled: false };
  }
  return { credentials, enrolled: true };
}

/** The variable a kit flashed before it was known carries (a per-device balena variable). */
export const EnrollConfig = Type.Object({
  POPKIT_ENROLL_CODE: Type.Optional(
    Type.String({
      pattern: ENROLL_CODE_PATTERN,
      description:
        'one-time enrollment code (POST /v1/kits/enrollment-codes on the hub): without POPKIT_HUB_USERNAME/PASSWORD, sync enrolls the kit with it at first boot through POPKIT_HUB_HTTP_URL and keeps the credentials in <data>/keys/hub-credentials.json (docs/fleet.md#enrollment-at-first-boot)',
    }),
  ),
});

export interface FirstBootOptions {
  dataDir: string;
  kitId: string;
  hubHttpUrl: string;
  code: string | undefined;
  /** the credentials set by hand (POPKIT_HUB_USERNAME/PASSWORD) win over any kept or enrolled ones */
  username: string | undefined;
  /** waits between tries while the hub is unreachable (first boot in a venue without network) */
  retryMinMs?: number;
  retryMaxMs?: number;
  signal?: AbortSignal;
  onWait?: (err: KitError, waitMs: number) => void;
}

/**
 * The broker credentials sync should use at start: undefined when they are set by hand or there is no
 * code and none kept; else the kept ones, else the ones a first-boot enrollment gets. An unreachable
 * hub is retried with a growing wait (the code is consumed only by an answer the kit receives);
 * a refusal (used, expired, wrong, burnt code) throws its coded error: a new code is needed.
 */
export async function firstBootCredentials(opts: FirstBootOptions): Promise<KitHubCredentials | undefined> {
  if (opts.username) return undefined;
  const kept = readKitCredentials(opts.dataDir);
  if (kept) return kept;
  if (!opts.code) return undefined;
  let wait = opts.retryMinMs ?? 2000;
  for (;;) {
    try {
      return (await enrollWithCode({ ...opts, code: opts.code })).credentials;
    } catch (err) {
      if (!(err instanceof KitError) || err.code !== 'NOT_READY') throw err;
      opts.onWait?.(err, wait);
      const signal = opts.signal;
      if (signal?.aborted) throw new KitError('NOT_READY', 'enrollment stopped before the hub answered');
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          clearTimeout(t);
          reject(new KitError('NOT_READY', 'enrollment stopped before the hub answered'));
        };
        const t = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }, wait);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      wait = Math.min(wait * 2, opts.retryMaxMs ?? 60_000);
    }
  }
}
