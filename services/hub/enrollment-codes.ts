// One-time enrollment codes (docs/fleet.md#enrollment-at-first-boot): the admin issues a short-lived,
// single-use code; a kit flashed before it was known presents it at first boot with its own ed25519
// public key and a signature by that key, and gets broker credentials from the dynamic security client.
// The secret part of a code is stored as its SHA-256 only; wrong secrets count against the code and
// burn it at its limit; the claim is one conditional UPDATE, so of two concurrent or replayed requests
// (on any number of hub workers) one wins and the other is ENROLL_CODE_USED. Times are the database's
// (now()), so hub workers with different clocks agree on expiry.
import { createHash, createPublicKey, randomBytes, timingSafeEqual, verify } from 'node:crypto';
import {
  type CodeEnrollRequest,
  type CodeEnrollResponse,
  ENROLL_CODE_ATTEMPTS_DEFAULT,
  ENROLL_CODE_TTL_DEFAULT_S,
  type EnrollmentCodeRequest,
  enrollSigningMessage,
  splitEnrollCode,
} from '../../core/contracts/enrollment.ts';
import { KitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import type { Queryable } from './db.ts';
import { checkId, type DynsecClient } from './dynsec.ts';

const log = moduleLogger('hub-enroll');

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export interface IssuedCode {
  code: string;
  codeId: string;
  eventIds: string[];
  kitId?: string;
  expiresAt: string;
  maxAttempts: number;
}

/** Issue a code; its secret is in the answer only. Ids are checked as the dynsec client checks them. */
export async function issueEnrollmentCode(
  db: Queryable,
  req: EnrollmentCodeRequest,
  reserved: readonly string[],
): Promise<IssuedCode> {
  const eventIds = [...new Set(req.eventIds.map((e) => checkId('event', e)))];
  const kitId = req.kitId === undefined ? undefined : checkId('kit', req.kitId, reserved);
  const codeId = randomBytes(9).toString('base64url');
  const secret = randomBytes(24).toString('base64url');
  const ttl = req.ttlSeconds ?? ENROLL_CODE_TTL_DEFAULT_S;
  const maxAttempts = req.maxAttempts ?? ENROLL_CODE_ATTEMPTS_DEFAULT;
  const res = await db.query<{ expires_at: Date }>(
    `INSERT INTO enrollment_codes (code_id, secret_sha256, event_ids, kit_id, expires_at, max_attempts)
     VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6) RETURNING expires_at`,
    [codeId, sha256(secret), eventIds, kitId ?? null, ttl, maxAttempts],
  );
  const expiresAt = new Date(res.rows[0]!.expires_at).toISOString();
  log.info({ codeId, kitId, events: eventIds.length, expiresAt }, 'enrollment code issued');
  return {
    code: `pke1.${codeId}.${secret}`,
    codeId,
    eventIds,
    ...(kitId ? { kitId } : {}),
    expiresAt,
    maxAttempts,
  };
}

/** The kit's proof that it holds the key it enrolls with; VALIDATION when it does not verify. */
function checkSignature(codeId: string, body: CodeEnrollRequest): void {
  let ok = false;
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: body.publicKey }, format: 'jwk' });
    ok = verify(
      null,
      enrollSigningMessage(codeId, body.kitId, body.publicKey),
      key,
      Buffer.from(body.signature, 'base64url'),
    );
  } catch {
    ok = false;
  }
  if (!ok) throw new KitError('VALIDATION', 'the signature does not verify with the public key sent');
}

interface CodeRow {
  secret_sha256: Buffer;
  event_ids: string[];
  kit_id: string | null;
  attempts: number;
  max_attempts: number;
  used: boolean;
  expired: boolean;
}

/**
 * Enroll a kit with a code: the checks in the order that tells a replay from a guess, then the claim,
 * then the broker. Nothing is changed by a refused request except a wrong secret's attempt count.
 */
export async function redeemEnrollmentCode(
  db: Queryable,
  dynsec: Pick<DynsecClient, 'addKit' | 'reserved'>,
  body: CodeEnrollRequest,
): Promise<CodeEnrollResponse> {
  const { codeId, secret } = splitEnrollCode(body.code);
  const kitId = checkId('kit', body.kitId, dynsec.reserved);
  checkSignature(codeId, body);
  const found = await db.query<CodeRow>(
    `SELECT secret_sha256, event_ids, kit_id, attempts, max_attempts, used_at IS NOT NULL AS used,
            expires_at <= now() AS expired
       FROM enrollment_codes WHERE code_id = $1`,
    [codeId],
  );
  const row = found.rows[0];
  if (!row) throw new KitError('ENROLL_CODE_INVALID', 'no such enrollment code');
  const stored = Buffer.from(row.secret_sha256);
  const matches = stored.length === 32 && timingSafeEqual(stored, sha256(secret));
  if (row.used) {
    if (matches) throw new KitError('ENROLL_CODE_USED', 'this enrollment code has been used', { codeId });
    throw new KitError('ENROLL_CODE_INVALID', 'wrong enrollment code');
  }
  if (row.attempts >= row.max_attempts)
    throw new KitError('ENROLL_CODE_LOCKED', 'too many wrong attempts: this code is burnt, issue a new one', {
      codeId,
    });
  if (row.expired) throw new KitError('ENROLL_CODE_EXPIRED', 'this enrollment code has expired', { codeId });
  if (!matches) {
    const upd = await db.query<{ attempts: number; max_attempts: number }>(
      `UPDATE enrollment_codes SET attempts = attempts + 1
        WHERE code_id = $1 AND used_at IS NULL RETURNING attempts, max_attempts`,
      [codeId],
    );
    const left = Math.max(0, (upd.rows[0]?.max_attempts ?? 0) - (upd.rows[0]?.attempts ?? 0));
    log.warn({ codeId, attemptsLeft: left }, 'wrong enrollment code secret');
    throw new KitError('ENROLL_CODE_INVALID', 'wrong enrollment code', { attemptsLeft: left });
  }
  if (row.kit_id !== null && row.kit_id !== kitId)
    throw new KitError('FORBIDDEN', `this code enrolls kit ${row.kit_id} only`, { kitId });
  const claim = await db.query<{ event_ids: string[] }>(
    `UPDATE enrollment_codes SET used_at = now(), used_kit_id = $2, used_public_key = $3
      WHERE code_id = $1 AND used_at IS NULL AND attempts < max_attempts AND expires_at > now()
      RETURNING event_ids`,
    [codeId, kitId, body.publicKey],
  );
  const claimed = claim.rows[0];
  // another request claimed it between our read and this update
  if (!claimed) throw new KitError('ENROLL_CODE_USED', 'this enrollment code has been used', { codeId });
  try {
    const kit = await dynsec.addKit(kitId, claimed.event_ids);
    log.info({ codeId, kitId }, 'kit enrolled with a code');
    return { kitId: kit.kitId, username: kit.username, password: kit.password, eventIds: claimed.event_ids };
  } catch (err) {
    // the broker refused (the kit exists: CONFLICT) or is away: the code is the kit's again
    await db
      .query(
        `UPDATE enrollment_codes SET used_at = NULL, used_kit_id = NULL, used_public_key = NULL
          WHERE code_id = $1 AND used_kit_id = $2`,
        [codeId, kitId],
      )
      .catch((e: Error) => log.error({ codeId, err: e.message }, 'could not release an enrollment code'));
    throw err;
  }
}
