// The hub API's one credential: the admin bearer token, compared in constant time.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { KitError } from '../../../core/errors.ts';

/** An onRequest hook refusing (UNAUTHORIZED) any request without `Authorization: Bearer <token>`. */
export function adminGuard(token: string): (req: FastifyRequest) => Promise<void> {
  const expected = Buffer.from(`Bearer ${token}`);
  return async (req) => {
    const got = Buffer.from(req.headers.authorization ?? '');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new KitError('UNAUTHORIZED', 'admin bearer token required');
    }
  };
}
