// The hub's request validation: bodies are checked strictly (a number where a string id belongs is
// refused, never turned into one), while the querystring, params and headers, which arrive as text,
// are coerced to the schema's types (`?limit=5` is the integer 5). One Ajv instance per policy, both
// with fastify's other defaults (defaults filled in, unknown properties kept so that a schema's
// `additionalProperties: false` refuses them, first error only).

import { Ajv, type Options } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';

const COMMON: Options = { useDefaults: true, removeAdditional: false, allErrors: false, strict: false };

export function hubValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = new Ajv({ ...COMMON, coerceTypes: false });
  const coercing = new Ajv({ ...COMMON, coerceTypes: 'array' });
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object);
}
