// Enrollment with a one-time code (docs/fleet.md#enrollment-at-first-boot, docs/contracts.md): the hub's
// admin issues a short-lived, single-use code; a kit flashed before anyone knew it enrolls itself at
// first boot with only that code and the hub's URL, proving it holds the ed25519 key it made itself, and
// gets its broker credentials once. One declaration of the wire shapes for the hub (validation) and the
// kit (it checks the hub's answer before keeping it).
import { type Static, Type } from '@sinclair/typebox';
import { ID_LEVEL } from './common.ts';

/** `pke1.<id>.<secret>`: 9 random bytes of id (the lookup key) and 24 of secret (stored hashed), base64url. */
export const ENROLL_CODE_PATTERN = '^pke1\\.[A-Za-z0-9_-]{12}\\.[A-Za-z0-9_-]{32}$';
export const ENROLL_CODE_TTL_DEFAULT_S = 24 * 3600;
/** a code lives at most a week: long enough to flash a batch and ship it, short enough to be worth little */
export const ENROLL_CODE_TTL_MAX_S = 7 * 24 * 3600;
export const ENROLL_CODE_ATTEMPTS_DEFAULT = 5;
export const ENROLL_CODE_ATTEMPTS_MAX = 20;
export const ENROLL_EVENTS_MAX = 64;

const Id = Type.String({ pattern: ID_LEVEL, maxLength: 64 });

/** POST /v1/kits/enrollment-codes (admin) */
export const EnrollmentCodeRequest = Type.Object(
  {
    eventIds: Type.Array(Id, { minItems: 1, maxItems: ENROLL_EVENTS_MAX, uniqueItems: true }),
    /** the only kit id the code enrolls; unset: the kit's own (POPKIT_KIT_ID, else its balena UUID) */
    kitId: Type.Optional(Id),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: ENROLL_CODE_TTL_MAX_S })),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: ENROLL_CODE_ATTEMPTS_MAX })),
  },
  { additionalProperties: false },
);
export type EnrollmentCodeRequest = Static<typeof EnrollmentCodeRequest>;

export const EnrollmentCodeIssued = Type.Object({
  /** shown in this answer only; the hub keeps a hash of its secret part */
  code: Type.String({ pattern: ENROLL_CODE_PATTERN }),
  codeId: Type.String(),
  eventIds: Type.Array(Id),
  kitId: Type.Optional(Id),
  expiresAt: Type.String(),
  maxAttempts: Type.Integer(),
});

/** POST /v1/kits/enroll/code (the kit; the code is its credential) */
export const CodeEnrollRequest = Type.Object(
  {
    code: Type.String({ pattern: ENROLL_CODE_PATTERN }),
    kitId: Id,
    /** the kit's ed25519 public key, the raw 32 bytes in base64url */
    publicKey: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
    /** ed25519 signature of enrollSigningMessage(...) by that key, base64url */
    signature: Type.String({ pattern: '^[A-Za-z0-9_-]{86}$' }),
  },
  { additionalProperties: false },
);
export type CodeEnrollRequest = Static<typeof CodeEnrollRequest>;

export const CodeEnrollResponse = Type.Object(
  {
    kitId: Id,
    username: Type.String({ minLength: 1, maxLength: 64 }),
    password: Type.String({ minLength: 16, maxLength: 256 }),
    eventIds: Type.Array(Id, { minItems: 1, maxItems: ENROLL_EVENTS_MAX }),
  },
  { additionalProperties: false },
);
export type CodeEnrollResponse = Static<typeof CodeEnrollResponse>;

/** What the kit signs: the code's id (never its secret), the kit id and the key, under a fixed label. */
export function enrollSigningMessage(codeId: string, kitId: string, publicKey: string): Buffer {
  return Buffer.from(`popkit-enroll-v1\n${codeId}\n${kitId}\n${publicKey}`, 'utf8');
}

/** The id and secret parts of a code that matched ENROLL_CODE_PATTERN. */
export function splitEnrollCode(code: string): { codeId: string; secret: string } {
  const [, codeId = '', secret = ''] = code.split('.');
  return { codeId, secret };
}
