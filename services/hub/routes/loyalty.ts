// Loyalty passes, admin only (docs/drops.md#loyalty): POST /v1/loyalty/passes issues a signed pass (the
// text a phone shows as a QR); GET /v1/loyalty/double-uses lists passes redeemed more often than they
// allow, across kits that could not see each other's uses.
import type { KeyObject } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { IssuedPass, IssuePassBody } from '../../../core/contracts/loyalty.ts';
import type { LoyaltyBook } from '../loyalty.ts';
import { adminGuard } from './admin.ts';

const DoubleUsesQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
});

export interface LoyaltyRoutesOptions {
  loyalty: LoyaltyBook;
  adminToken: string;
  signingKey: KeyObject;
}

export const loyaltyRoutes: FastifyPluginAsyncTypebox<LoyaltyRoutesOptions> = async (app, opts) => {
  const guard = adminGuard(opts.adminToken);
  app.post(
    '/v1/loyalty/passes',
    { onRequest: guard, schema: { body: IssuePassBody, response: { 201: IssuedPass } } },
    async (req, reply) => reply.status(201).send(await opts.loyalty.issue(opts.signingKey, req.body)),
  );
  app.get(
    '/v1/loyalty/double-uses',
    { onRequest: guard, schema: { querystring: DoubleUsesQuery } },
    async (req) => {
      const doubleUses = await opts.loyalty.doubleUses(req.query.limit);
      return { count: doubleUses.length, doubleUses };
    },
  );
};
