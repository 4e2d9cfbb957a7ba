// Building blocks of every contract in core/contracts/: the shared scalar shapes (ids that double as
// MQTT topic levels, SKUs, currencies, amounts) and `contract()`, which compiles a TypeBox schema once
// and gives both ends the same check, parse and error listing (docs/contracts.md).
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/** Kit and event ids double as MQTT topic levels: no wildcards, no slashes, at most 64 characters. */
export const ID_LEVEL = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
export const IdLevel = Type.String({ pattern: ID_LEVEL });

export const SKU_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]*$';
export const Sku = Type.String({ minLength: 1, maxLength: 64, pattern: SKU_PATTERN });
export const Currency = Type.String({ pattern: '^[A-Z]{3}$' });
export const Cents = Type.Integer({ minimum: 0, maximum: 100_000_000 });
/** An ISO 8601 timestamp as written by `Date.prototype.toISOString()`. */
export const IsoTime = Type.String({ minLength: 1, maxLength: 40 });

/**
 * Text a person or a program typed, safe to store, log, index and show: no C0 control character
 * (NUL included), no DEL and no lone UTF-16 surrogate. PostgreSQL refuses NUL in text (22P05) and a
 * lone surrogate is not valid UTF-8 anywhere, so either would poison every copy downstream. The
 * pattern works the same with and without the regex `u` flag (Ajv compiles with it, TypeBox without):
 * with it, a pair is one code point outside the refused class; without, the second branch takes it.
 */
export const SAFE_TEXT_PATTERN =
  '^(?:[^\\u0000-\\u001f\\u007f\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])*$';
/** Like SAFE_TEXT_PATTERN, but tab, line feed and carriage return are allowed (long descriptions). */
export const SAFE_MULTILINE_PATTERN =
  '^(?:[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])*$';
const SAFE_TEXT_RE = new RegExp(SAFE_TEXT_PATTERN);

/** One-line text (a name, a reason): `SafeText({ minLength: 1, maxLength: 200 })`. */
export const SafeText = (opts: { minLength?: number; maxLength: number; description?: string }) =>
  Type.String({ ...opts, pattern: SAFE_TEXT_PATTERN });
/** Text that may span lines (a description). */
export const SafeMultiline = (opts: { minLength?: number; maxLength: number; description?: string }) =>
  Type.String({ ...opts, pattern: SAFE_MULTILINE_PATTERN });

/** true when `s` has no control character and no lone surrogate (the check of SafeText, for code). */
export function isSafeText(s: string): boolean {
  return SAFE_TEXT_RE.test(s);
}

/** PostgreSQL's `integer`, which the hub stores catalog versions in: the bound every end applies. */
export const CATALOG_VERSION_MAX = 2_147_483_647;

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export interface Contract<T extends TSchema> {
  readonly schema: T;
  /** true when `value` has this shape */
  check(value: unknown): value is Static<T>;
  /** the first few problems, `path: message`, for a log line or an error message */
  errors(value: unknown, max?: number): string[];
  /** JSON bytes → value of this shape, or undefined when either the JSON or the shape is wrong */
  parse(raw: Buffer | string): Static<T> | undefined;
}

/** Compile `schema` once; both ends of a seam use the returned checker. */
export function contract<T extends TSchema>(schema: T): Contract<T> {
  const compiled = TypeCompiler.Compile(schema);
  const check = (value: unknown): value is Static<T> => compiled.Check(value);
  return {
    schema,
    check,
    errors(value, max = 5) {
      const out: string[] = [];
      for (const e of compiled.Errors(value)) {
        out.push(`${e.path || '/'}: ${e.message}`);
        if (out.length >= max) break;
      }
      return out;
    },
    parse(raw) {
      let value: unknown;
      try {
        value = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
      } catch {
        return undefined;
      }
      return check(value) ? value : undefined;
    },
  };
}

/**
 * A hub-signed message (catalog, seal key, allocation statement): the payload's exact bytes and their
 * ed25519 signature with the hub's catalog key (core/catalog-signing.ts); each payload's `use` or shape
 * keeps one kind from being taken for another. `maxPayload` bounds the payload's length per kind.
 */
export const SignedEnvelope = (maxPayload: number) =>
  Type.Object({
    v: Type.Literal(1),
    alg: Type.Literal('ed25519'),
    payload: Type.String({ minLength: 2, maxLength: maxPayload }),
    sig: Type.String({ minLength: 1, maxLength: 200 }),
  });
