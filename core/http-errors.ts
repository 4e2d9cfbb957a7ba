// The one fastify error plugin, for the kit's API and the hub's: every error becomes the error
// envelope `{ error: { code, message, details? } }` with the status of the one error table
// (core/errors.ts). Validation, body-size, content-type and JSON errors of fastify itself are mapped
// here too, and an unknown route is a coded 404. Nothing reaches a client as a stack trace.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ERROR_STATUS, type ErrorCode, isKitError } from './errors.ts';

export interface MappedError {
  status: number;
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/** Every error a route can produce, mapped once to a status, a code of the table and a message. */
export function mapError(err: unknown): MappedError {
  if (isKitError(err)) {
    return {
      status: err.status,
      code: err.code,
      message: err.message,
      ...(err.details ? { details: err.details } : {}),
    };
  }
  const e = err as FastifyError & { validation?: unknown; validationContext?: string };
  if (e.validation) {
    return { status: 400, code: 'VALIDATION', message: `${e.validationContext ?? 'request'}: ${e.message}` };
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: 'BODY_TOO_LARGE', message: 'request body over the limit' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'send application/json' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, code: 'BAD_REQUEST', message: 'empty JSON body' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, code: 'BAD_REQUEST', message: 'malformed JSON body' };
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) return { status, code: 'BODY_TOO_LARGE', message: 'request body over the limit' };
  if (status === 415) return { status, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'send application/json' };
  if (status === 404) return { status, code: 'NOT_FOUND', message: e.message || 'not found' };
  if (status === 405)
    return { status, code: 'METHOD_NOT_ALLOWED', message: e.message || 'method not allowed' };
  if (status >= 400 && status < 500)
    return { status, code: 'BAD_REQUEST', message: e.message || 'bad request' };
  return { status: 500, code: 'INTERNAL', message: 'internal error' };
}

export function envelope(m: Pick<MappedError, 'code' | 'message' | 'details'>) {
  return { error: { code: m.code, message: m.message, ...(m.details ? { details: m.details } : {}) } };
}

export interface ErrorPluginOptions {
  /** turn a raw error into a coded one first (checkout: an LMDB commit that failed for space → STORE_FULL) */
  translate?: (err: unknown) => unknown;
  /** told of every mapped error (metrics); 5xx other than `quiet5xx` are also logged as errors */
  onError?: (req: FastifyRequest, mapped: MappedError, err: unknown) => void;
  /** 5xx codes that are expected states, not faults, and are not logged as errors */
  quiet5xx?: readonly ErrorCode[];
}

/** Register on the root instance: the handlers apply to every route of the app (fastify-plugin). */
export const errorEnvelopePlugin = fp<ErrorPluginOptions>(
  async (app, opts) => {
    const quiet = new Set<ErrorCode>(opts.quiet5xx ?? []);
    app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
      const translated = opts.translate ? opts.translate(err) : err;
      const mapped = mapError(translated);
      if (mapped.status >= 500 && !quiet.has(mapped.code)) req.log.error({ err }, 'unhandled error');
      opts.onError?.(req, mapped, err);
      return reply.status(mapped.status).send(envelope(mapped));
    });
    app.setNotFoundHandler((req, reply) =>
      reply
        .status(ERROR_STATUS.NOT_FOUND)
        .send(envelope({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` })),
    );
  },
  { name: 'popkit-error-envelope', fastify: '5.x' },
);
