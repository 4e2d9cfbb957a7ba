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
