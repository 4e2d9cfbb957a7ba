// The event's live state, staff only: POST /v1/event/start and /v1/event/stop.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { EventStateSchema } from '../../../core/contracts/kit-status.ts';
import { type EventState, type KitStore, setEventState } from '../../../core/store/index.ts';
import type { OrderService } from '../orders.ts';
import { EventStartBody, errorResponses } from '../schemas.ts';
import type { StoreGuard } from '../store-guard.ts';
import { adminSecurity, type Credentials } from './staff.ts';

export interface EventRoutesOptions {
  store: KitStore;
  orders: OrderService;
  guard: StoreGuard;
  creds: Credentials;
}

export const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (app, opts) => {
  const { store, orders, guard } = opts;
  const staff = opts.creds.require('admin');
  const setEvent = async (live: boolean, eventId?: string): Promise<EventState> => {
    guard.assertWritable();
    return setEventState(store, live, eventId, orders.catalog()?.catalog.eventId ?? null);
  };
  const response = { 200: EventStateSchema, ...errorResponses };

  app.post(
    '/v1/event/start',
    { onRequest: staff, schema: { body: EventStartBody, response, security: adminSecurity } },
    async (req) => setEvent(true, req.body?.eventId),
  );
  app.post('/v1/event/stop', { onRequest: staff, schema: { response, security: adminSecurity } }, async () =>
    setEvent(false),
  );
};
