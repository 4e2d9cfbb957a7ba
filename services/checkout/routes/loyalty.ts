// Loyalty: POST /v1/loyalty/check, what a pass would take off some lines, without ordering (the buyer
// page's preview). Public, rate limited per client address (staff are not); writes nothing.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { KitError } from '../../../core/errors.ts';
import type { LoyaltyFeature } from '../loyalty.ts';
import type { OrderService } from '../orders.ts';
import { priceLines } from '../orders.ts';
import { ErrorEnvelope, errorResponses, LoyaltyCheckBody, LoyaltyCheckOut } from '../schemas.ts';
import { type Credentials, optionalSecurity } from './staff.ts';

export interface LoyaltyRoutesOptions {
  orders: OrderService;
  loyalty: LoyaltyFeature;
  creds: Credentials;
  /** checks per minute per client address without credentials (POPKIT_LOYALTY_CHECK_RATE_PER_MIN) */
  checkRatePerMin: number;
  clock?: () => number;
}

export const loyaltyRoutes: FastifyPluginAsyncTypebox<LoyaltyRoutesOptions> = async (app, opts) => {
  const { orders, loyalty, creds } = opts;
  app.post(
    '/v1/loyalty/check',
    {
      config: { rateLimit: { max: opts.checkRatePerMin, timeWindow: 60_000, allowList: creds.isStaff } },
      schema: {
        body: LoyaltyCheckBody,
        response: {
          200: LoyaltyCheckOut,
          ...errorResponses,
          422: ErrorEnvelope,
          429: ErrorEnvelope,
          503: ErrorEnvelope,
        },
        security: optionalSecurity,
      },
    },
    async (req) => {
      const cat = orders.catalog();
      if (!cat) throw new KitError('NOT_READY', 'no catalog loaded yet');
      const priced = priceLines(cat, req.body.lines);
      const now = opts.clock ? opts.clock() : Date.now();
      const q = loyalty.quote(req.body.pass, cat, priced.lines, now);
      return {
        passId: q.pass.id,
        holder: q.pass.holder,
        tier: q.pass.tier,
        expiresAt: new Date(q.pass.expiresAt * 1000).toISOString(),
        subtotalCents: q.subtotalCents,
        discountCents: q.discountCents,
        totalCents: q.totalCents,
        allowed: q.allowed,
        usesLeft: q.usesLeft,
      };
    },
  );
};
