// Who is asking (docs/security.md#roles-and-credentials): the admin bearer token (catalog and event
// control, pairing, and everything a terminal may), a paired staff terminal's token (cash and card
// orders, status, metrics) or nobody (a buyer: card orders only, rate limited and capped). A credential
// that is sent but not valid (wrong, revoked) is refused, never taken for a buyer.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { KitError } from '../../../core/errors.ts';
import { type KitStore, terminalForToken } from '../../../core/store/index.ts';

export type Role = 'admin' | 'terminal' | 'buyer';

const RANK: Record<Role, number> = { buyer: 0, terminal: 1, admin: 2 };

export class Credentials {
  private readonly adminBuf: Buffer;
  private readonly seen = new WeakMap<FastifyRequest, Role>();

  constructor(
    adminToken: string,
    private readonly store: KitStore,
  ) {
    this.adminBuf = Buffer.from(adminToken);
  }

  /** The caller's role; UNAUTHORIZED for a credential that is malformed, unknown or revoked. */
  role(req: FastifyRequest): Role {
    const cached = this.seen.get(req);
    if (cached) return cached;
    const role = this.resolve(req.headers.authorization);
    this.seen.set(req, role);
    return role;
  }

  private resolve(header: string | undefined): Role {
    if (header === undefined) return 'buyer';
    const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
    if (!m?.[1]) {
      throw new KitError('UNAUTHORIZED', 'send Authorization: Bearer <admin or terminal token>');
    }
    const given = Buffer.from(m[1]);
    if (given.length === this.adminBuf.length && timingSafeEqual(given, this.adminBuf)) return 'admin';
    if (terminalForToken(this.store, m[1])) return 'terminal';
    throw new KitError(
      'UNAUTHORIZED',
      'unknown or revoked token: pair this terminal again (popkit terminal pair)',
    );
  }

  /**
   * A rate limit's allowList: staff (a valid terminal or admin token) are not limited; a credential
   * that is not valid is refused by the handler, and counts against the buyer limit meanwhile.
   */
  readonly isStaff = (req: FastifyRequest): boolean => {
    try {
      return this.role(req) !== 'buyer';
    } catch {
      return false;
    }
  };

  /** An onRequest hook: UNAUTHORIZED without a valid credential, FORBIDDEN when the role is below `min`. */
  require(min: 'admin' | 'terminal'): (req: FastifyRequest) => Promise<void> {
    return async (req) => {
      const role = this.role(req);
      if (role === 'buyer') {
        throw new KitError(
          'UNAUTHORIZED',
          min === 'admin'
            ? 'staff endpoint: send Authorization: Bearer <POPKIT_ADMIN_TOKEN>'
            : 'send Authorization: Bearer <terminal or admin token> (popkit terminal pair)',
          { required: min },
        );
      }
      if (RANK[role] < RANK[min]) {
        throw new KitError('FORBIDDEN', `this endpoint needs the ${min} token`, { required: min, role });
      }
    };
  }
}

/** OpenAPI security requirements per route (components.securitySchemes in routes/docs.ts). */
type Security = Array<Record<string, string[]>>;
export const adminSecurity: Security = [{ admin: [] }];
export const terminalSecurity: Security = [{ terminal: [] }, { admin: [] }];
/** no credential needed (a buyer), or either token for more */
export const optionalSecurity: Security = [{}, { terminal: [] }, { admin: [] }];
