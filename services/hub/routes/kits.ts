// The fleet, admin only: GET /v1/kits, every kit's last status, backlog, stock and health.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Ledger } from '../ledger.ts';
import { adminGuard } from './admin.ts';

export interface KitRoutesOptions {
  ledger: Pick<Ledger, 'listKits'>;
  adminToken: string;
}

export const kitRoutes: FastifyPluginAsyncTypebox<KitRoutesOptions> = async (app, { ledger, adminToken }) => {
  app.get('/v1/kits', { onRequest: adminGuard(adminToken) }, async () => ({ kits: await ledger.listKits() }));
};
