// GET /v1/gateway: the pre-flight checklist validates token exchange with this, a real round trip
// through the payment adapter with its test token.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { PaymentGateway } from '../gateway.ts';

export const gatewayRoutes: FastifyPluginAsyncTypebox<{ gateway: PaymentGateway }> = async (
  app,
  { gateway },
) => {
  app.get('/v1/gateway', async () => {
    const t0 = performance.now();
    let ok = false;
    let error: string | undefined;
    try {
      const r = await gateway.exchange({
        idempotencyKey: `probe:${Date.now()}:${Math.random()}`,
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
    };
  });
};
