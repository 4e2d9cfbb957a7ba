// The fleet's alerts, admin only (docs/alerts.md): GET /v1/alerts lists them newest first, filtered by
// state, kit, event and kind (strict: an unknown filter is refused); POST /v1/alerts/:id/ack records the
// person who acknowledged one, once (a second ack is 409 CONFLICT naming who did).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { AckBody, AlertParams, AlertsQuery } from '../../../core/contracts/alerts.ts';
import type { HubAlerts } from '../alerts.ts';
import { adminGuard } from './admin.ts';

export interface AlertRoutesOptions {
  alerts: Pick<HubAlerts, 'list' | 'ack'>;
  adminToken: string;
}

export const alertRoutes: FastifyPluginAsyncTypebox<AlertRoutesOptions> = async (
  app,
  { alerts, adminToken },
) => {
  app.get(
    '/v1/alerts',
    { onRequest: adminGuard(adminToken), schema: { querystring: AlertsQuery } },
    async (req) => ({ alerts: await alerts.list(req.query) }),
  );
  app.post(
    '/v1/alerts/:id/ack',
    {
      onRequest: adminGuard(adminToken),
      schema: { params: AlertParams, body: AckBody },
      bodyLimit: 4 * 1024,
    },
    async (req) => ({ alert: await alerts.ack(req.params.id, req.body.by) }),
  );
};
