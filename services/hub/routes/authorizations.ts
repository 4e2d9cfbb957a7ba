// The online card check's HTTP side (docs/security.md#online-authorization):
// - GET /v1/authorizations/orphans (admin): approved authorizations whose order never reached the
//   ledger (void them at the provider);
// - the SANDBOX card form, only while the gateway is the sandbox: GET /v1/sandbox/card-form (a page a
//   buyer's page can open or embed) and POST /v1/sandbox/tokens, which issues tokens the strict sandbox
//   approves, as a real provider's card form tokenizes a card. Nothing here moves money.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { HubAuthorize } from '../authorize.ts';
import { type PaymentGateway, SANDBOX_CARD_KINDS, SandboxGateway } from '../gateway.ts';
import { adminGuard } from './admin.ts';

export interface AuthorizationRoutesOptions {
  authorize: Pick<HubAuthorize, 'orphans'>;
  gateway: PaymentGateway;
  adminToken: string;
  /** an approved authorization is an orphan after this long without its order */
  orphanMs: number;
}

const OrphansQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  /** default: POPKIT_HUB_AUTHORIZE_ORPHAN_S */
  olderThanS: Type.Optional(Type.Integer({ minimum: 0, maximum: 366 * 24 * 3600 })),
});

/** `ok`, `decline`, `decline_<reason>` or `unavailable` (what the sandbox does with the token) */
export const SandboxTokenBody = Type.Object(
  { kind: Type.Optional(Type.String({ maxLength: 100, pattern: SANDBOX_CARD_KINDS.source })) },
  { additionalProperties: false },
);

const CARD_FORM = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SANDBOX card form (no money moves)</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head>
<body style="font-family:sans-serif;max-width:28rem;margin:2rem auto">
<h1>Sandbox card</h1>
<p><strong>SANDBOX: no money moves.</strong> This stands in for a payment provider's card form: it
hands your page a token the sandbox gateway approves.</p>
<form id="f"><label>Card <select id="kind">
<option value="ok">approves</option><option value="decline_insufficient_funds">is declined</option>
</select></label> <button>Get a token</button></form>
<output id="out"></output>
<script>
document.getElementById('f').addEventListener('submit', async (e) => {
  e.preventDefault();
  const res = await fetch('/v1/sandbox/tokens', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ kind: document.getElementById('kind').value }) });
  const body = await res.json();
  document.getElementById('out').textContent = body.token ?? body.message;
  if (body.token && window.parent !== window) window.parent.postMessage({ sandboxToken: body.token }, '*');
});
</script></body></html>`;

export const authorizationRoutes: FastifyPluginAsyncTypebox<AuthorizationRoutesOptions> = async (
  app,
  opts,
) => {
  app.get(
    '/v1/authorizations/orphans',
    { onRequest: adminGuard(opts.adminToken), schema: { querystring: OrphansQuery } },
    async (req) => {
      const olderThanMs = req.query.olderThanS !== undefined ? req.query.olderThanS * 1000 : opts.orphanMs;
      return { orphans: await opts.authorize.orphans(olderThanMs, req.query.limit) };
    },
  );
  const gateway = opts.gateway;
  // a real provider's adapter has no card form here: its own page tokenizes cards
  if (!(gateway instanceof SandboxGateway)) return;
  app.get('/v1/sandbox/card-form', async (_req, reply) =>
    reply.type('text/html; charset=utf-8').send(CARD_FORM),
  );
  app.post('/v1/sandbox/tokens', { schema: { body: SandboxTokenBody } }, async (req) => ({
    sandbox: true,
    token: gateway.issueToken(req.body?.kind ?? 'ok'),
  }));
};
