// Staff endpoints' one credential: the admin bearer token, compared in constant time.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { KitError } from '../../../core/errors.ts';

/** An onRequest hook refusing (UNAUTHORIZED) a request without `Authorization: Bearer <admin token>`. */
export function staffOnly(adminToken: string): (req: FastifyRequest) => Promise<void> {
  const tokenBuf = Buffer.from(adminToken);
  return async (req) => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const given = Buffer.from(m?.[1] ?? '');
    if (!m || given.length !== tokenBuf.length || !timingSafeEqual(given, tokenBuf)) {
      throw new KitError('UNAUTHORIZED', 'staff endpoint: send Authorization: Bearer <POPKIT_ADMIN_TOKEN>');
    }
  };
}

export const staffSecurity = [{ admin: [] }];
