// The fleet, admin only: GET /v1/kits, every kit's last status, backlog, stock and health; and
// GET /v1/dead-letters, the entries the hub could not store (reason and the entry as sent).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ID_LEVEL } from '../../../core/contracts/common.ts';
import type { Ledger } from '../ledger.ts';
import { adminGuard } from './admin.ts';

export interface KitRoutesOptions {
  ledger: Pick<Ledger, 'listKits' | 'deadLetters' | 'heldTokenKey'>;
  adminToken: string;
}

const DeadLettersQuery = Type.Object({
  kitId: Type.Optional(Type.String({ pattern: ID_LEVEL })),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
});

export const kitRoutes: FastifyPluginAsyncTypebox<KitRoutesOptions> = async (app, { ledger, adminToken }) => {
  app.get('/v1/kits', { onRequest: adminGuard(adminToken) }, async () => {
    // the fleet view shows the hub's own trouble too: card work waiting for a lost held-token key
    const key = ledger.heldTokenKey;
    return {
      kits: await ledger.listKits(),
      ...(key.state === 'ok'
        ? {}
        : {
            hubProblems: [{ code: key.code, state: key.state, file: key.file, heldTokens: key.heldTokens }],
          }),
    };
  });
  app.get(
    '/v1/dead-letters',
    { onRequest: adminGuard(adminToken), schema: { querystring: DeadLettersQuery } },
    async (req) => ({
      deadLetters: await ledger.deadLetters({
        limit: req.query.limit,
        ...(req.query.kitId ? { kitId: req.query.kitId } : {}),
      }),
    }),
  );
};
