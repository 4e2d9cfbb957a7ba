// Pairing staff terminals (docs/security.md#roles-and-credentials): the admin asks for a single-use
// code (POST /v1/terminals/pairings), a terminal redeems it once for its own bearer token
// (POST /v1/terminals/redeem, no credential, rate limited), the admin lists and revokes terminals.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import { SafeText } from '../../../core/contracts/common.ts';
import { KitError } from '../../../core/errors.ts';
import {
  createPairing,
  type KitStore,
  listPairings,
  listTerminals,
  PAIRINGS_PENDING_MAX,
  redeemPairing,
  revokeTerminal,
  type TerminalRecord,
} from '../../../core/store/index.ts';
import { ErrorEnvelope, errorResponses } from '../schemas.ts';
import type { StoreGuard } from '../store-guard.ts';
import { adminSecurity, type Credentials } from './staff.ts';

export interface TerminalRoutesOptions {
  store: KitStore;
  guard: StoreGuard;
  creds: Credentials;
  /** redemptions per minute per client address */
  redeemPerMin: number;
  clock?: () => number;
}

const PairingBody = Type.Optional(
  Type.Object(
    { name: Type.Optional(SafeText({ minLength: 1, maxLength: 64 })) },
    { additionalProperties: false },
  ),
);
const PairingOut = Type.Object({
  id: Type.String(),
  name: Type.String(),
  code: Type.String(),
  expiresAt: Type.String(),
  /** where the dashboard redeems the code: the kit's address + this path (the QR's URL) */
  pairPath: Type.String(),
});
const RedeemBody = Type.Object(
  { code: Type.String({ minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9 -]+$' }) },
  { additionalProperties: false },
);
const TerminalOut = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.String(),
  revokedAt: Type.Optional(Type.String()),
});
const RedeemOut = Type.Object({ id: Type.String(), name: Type.String(), token: Type.String() });
const TerminalList = Type.Object({
  terminals: Type.Array(TerminalOut),
  pairings: Type.Array(Type.Object({ id: Type.String(), name: Type.String(), expiresAt: Type.String() })),
});
const TerminalIdParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{12}$' }) });

const publicTerminal = (t: TerminalRecord): Static<typeof TerminalOut> => ({
  id: t.id,
  name: t.name,
  createdAt: t.createdAt,
  ...(t.revokedAt !== undefined ? { revokedAt: t.revokedAt } : {}),
});

export const terminalRoutes: FastifyPluginAsyncTypebox<TerminalRoutesOptions> = async (app, opts) => {
  const { store, guard, creds } = opts;
  const now = () => (opts.clock ? opts.clock() : Date.now());
  const admin = creds.require('admin');

  app.post(
    '/v1/terminals/pairings',
    {
      onRequest: admin,
      schema: {
        body: PairingBody,
        response: { 201: PairingOut, ...errorResponses, 403: ErrorEnvelope, 429: ErrorEnvelope },
        security: adminSecurity,
      },
    },
    async (req, reply) => {
      guard.assertWritable();
      const p = await createPairing(store, req.body?.name ?? 'terminal', now());
      if (p.kind === 'too-many') {
        throw new KitError(
          'TOO_MANY_REQUESTS',
          `${p.pending} pairing codes are waiting: redeem or let them expire`,
          {
            pending: p.pending,
            max: PAIRINGS_PENDING_MAX,
          },
        );
      }
      return reply.status(201).send({
        id: p.id,
        name: p.name,
        code: p.code,
        expiresAt: new Date(p.expiresAt).toISOString(),
        pairPath: `/#pair=${p.code}`,
      });
    },
  );

  app.post(
    '/v1/terminals/redeem',
    {
      config: { rateLimit: { max: opts.redeemPerMin, timeWindow: 60_000 } },
      schema: { body: RedeemBody, response: { 201: RedeemOut, ...errorResponses, 429: ErrorEnvelope } },
    },
    async (req, reply) => {
      guard.assertWritable();
      const r = await redeemPairing(store, req.body.code, now());
      if (r.kind !== 'paired') {
        throw new KitError(
          'UNAUTHORIZED',
          'pairing code wrong, already used or expired: ask the admin for a new one',
        );
      }
      return reply.status(201).send({ id: r.terminal.id, name: r.terminal.name, token: r.token });
    },
  );

  app.get(
    '/v1/terminals',
    {
      onRequest: admin,
      schema: {
        response: { 200: TerminalList, ...errorResponses, 403: ErrorEnvelope },
        security: adminSecurity,
      },
    },
    async () => ({
      terminals: listTerminals(store).map(publicTerminal),
      pairings: listPairings(store, now()).map((p) => ({
        id: p.id,
        name: p.name,
        expiresAt: new Date(p.expiresAt).toISOString(),
      })),
    }),
  );

  app.delete(
    '/v1/terminals/:id',
    {
      onRequest: admin,
      schema: {
        params: TerminalIdParams,
        response: { 200: TerminalOut, ...errorResponses, 403: ErrorEnvelope },
        security: adminSecurity,
      },
    },
    async (req) => {
      guard.assertWritable();
      const t = await revokeTerminal(store, req.params.id, now());
      if (!t) throw new KitError('NOT_FOUND', `no terminal ${req.params.id}`);
      return publicTerminal(t);
    },
  );
};
