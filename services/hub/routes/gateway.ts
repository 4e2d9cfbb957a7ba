// GET /v1/gateway (admin): the pre-flight checklist validates token exchange with this, a real round
// trip through the payment adapter with its test token. The answer is cached (30 s) and concurrent
// requests share one call, so the endpoint cannot be used to hammer the provider.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { PaymentGateway } from '../gateway.ts';
import { adminGuard } from './admin.ts';

export interface GatewayCheck {
  name: string;
  sandbox: boolean;
  ok: boolean;
  latencyMs: number;
  error?: string;
  /** when the gateway was asked (ISO); later answers within the cache period repeat it */
  checkedAt: string;
}

export interface GatewayRoutesOptions {
  gateway: PaymentGateway;
  adminToken: string;
  /** how long one answer is reused (default 30 s) */
  cacheMs?: number;
  /** the clock (tests) */
  now?: () => number;
}

export const GATEWAY_CHECK_CACHE_MS = 30_000;

async function check(gateway: PaymentGateway, now: number): Promise<GatewayCheck> {
  const t0 = performance.now();
  let ok = false;
  let error: string | undefined;
  try {
    const r = await gateway.exchange({
      idempotencyKey: `probe:${now}:${Math.random()}`,
      token: gateway.testToken,
      amountCents: 0,
      currency: 'EUR',
    });
    ok = r.outcome === 'approved';
    if (!ok) error = 'test token was declined';
  } catch (err) {
    error = (err as Error).message;
  }
  return {
    name: gateway.name,
    sandbox: gateway.sandbox,
    ok,
    latencyMs: Math.round((performance.now() - t0) * 100) / 100,
    ...(error ? { error } : {}),
    checkedAt: new Date(now).toISOString(),
  };
}

export const gatewayRoutes: FastifyPluginAsyncTypebox<GatewayRoutesOptions> = async (app, opts) => {
  const { gateway } = opts;
  const cacheMs = opts.cacheMs ?? GATEWAY_CHECK_CACHE_MS;
  const now = opts.now ?? Date.now;
  let last: { at: number; answer: Promise<GatewayCheck> } | undefined;

  app.get('/v1/gateway', { onRequest: adminGuard(opts.adminToken) }, async () => {
    const t = now();
    // a call in flight counts as fresh: concurrent requests wait for the same answer
    if (!last || t - last.at >= cacheMs || t < last.at) last = { at: t, answer: check(gateway, t) };
    return last.answer;
  });
};
