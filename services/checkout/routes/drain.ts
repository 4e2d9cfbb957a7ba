// Drain-proofing routes (docs/security.md#drain-proofing): buyer device tokens, staff confirm and
// release of held orders, and the drop report.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { KitError } from '../../../core/errors.ts';
import { deviceCount } from '../../../core/store/devices.ts';
import { confirmHeldOrder, dropReport, releaseHeldOrder } from '../../../core/store/hold-ops.ts';
import type { KitStore, StoredOrder } from '../../../core/store/index.ts';
import type { DeviceTokens } from '../devices.ts';
import { scarceSkus } from '../drain.ts';
import { publicOrder } from '../order-view.ts';
import type { OrderService } from '../orders.ts';
import {
  ConfirmHeldBody,
  DeviceIn,
  DeviceOut,
  DropReportOut,
  ErrorEnvelope,
  errorResponses,
  OrderIdParams,
  OrderOut,
  ReleaseHeldBody,
} from '../schemas.ts';
import type { StoreGuard } from '../store-guard.ts';
import { type Credentials, terminalSecurity } from './staff.ts';

export interface DrainRoutesOptions {
  store: KitStore;
  orders: OrderService;
  guard: StoreGuard;
  creds: Credentials;
  devices: DeviceTokens;
  /** POPKIT_DEVICE_ISSUE_PER_MIN: device tokens per minute per client address */
  deviceIssuePerMin: number;
  clock?: () => number;
}

export const drainRoutes: FastifyPluginAsyncTypebox<DrainRoutesOptions> = async (app, opts) => {
  const { store, orders, guard, creds, devices } = opts;
  const now = () => (opts.clock ? opts.clock() : Date.now());
  const staff = creds.require('terminal');
  const settled = (out: StoredOrder | KitError) => {
    if (out instanceof KitError) throw out;
    orders.stockEpoch++;
    return publicOrder(out);
  };

  app.post(
    '/v1/devices',
    {
      // a script could mint devices to multiply its shares: few per address (docs/security.md)
      config: { rateLimit: { max: opts.deviceIssuePerMin, timeWindow: 60_000 } },
      schema: {
        body: DeviceIn,
        response: { 201: DeviceOut, ...errorResponses, 429: ErrorEnvelope, 507: ErrorEnvelope },
      },
    },
    async (_req, reply) => {
      guard.assertWritable();
      const issued = await devices.issue(now());
      return reply.status(201).send({ device: issued.token, id: issued.id, issuedAt: issued.issuedAt });
    },
  );

  app.post(
    '/v1/orders/:id/confirm',
    {
      onRequest: staff,
      schema: {
        params: OrderIdParams,
        body: ConfirmHeldBody,
        response: { 200: OrderOut, ...errorResponses, 403: ErrorEnvelope, 507: ErrorEnvelope },
        security: terminalSecurity,
      },
    },
    async (req) => {
      guard.assertWritable();
      const by = creds.role(req);
      return settled(
        await confirmHeldOrder(store, req.params.id, { paidWith: req.body.paidWith, by, now: now() }),
      );
    },
  );

  app.post(
    '/v1/orders/:id/release',
    {
      onRequest: staff,
      schema: {
        params: OrderIdParams,
        body: ReleaseHeldBody,
        response: { 200: OrderOut, ...errorResponses, 403: ErrorEnvelope, 507: ErrorEnvelope },
        security: terminalSecurity,
      },
    },
    async (req) => {
      guard.assertWritable();
      const by = creds.role(req);
      const reason = req.body?.reason ?? 'released by staff';
      return settled(await releaseHeldOrder(store, req.params.id, { reason, by, now: now() }));
    },
  );

  app.get(
    '/v1/drops/report',
    {
      onRequest: staff,
      schema: {
        response: { 200: DropReportOut, ...errorResponses, 403: ErrorEnvelope },
        security: terminalSecurity,
      },
    },
    async () => {
      const cat = orders.catalog();
      if (!cat) throw new KitError('NOT_FOUND', 'no catalog loaded yet');
      const skus = dropReport(store, cat.catalog, scarceSkus(cat));
      return {
        eventId: cat.catalog.eventId,
        at: new Date(now()).toISOString(),
        balanced: skus.every((s) => s.balanced),
        skus,
        devicesIssued: deviceCount(store),
      };
    },
  );
};
