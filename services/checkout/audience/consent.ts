// A buyer's consent to link their viewing to their orders (#12, docs/security.md#audience). The buyer
// page asks once and sends the answer with its device token (`x-popkit-device`, services/checkout/
// devices.ts); the kit records it with the time and the version of the text shown. With consent, an
// order that device places links the viewer id of that request (keyed hash of its address and user
// agent under the event's key) to the order, inside the order's own transaction; without it nothing
// is linked. Withdrawal (DELETE, or POST granted:false) deletes the links at once.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import { KitError } from '../../../core/errors.ts';
import {
  type ConsentRecord,
  type KitStore,
  linkOrderInTxn,
  readConsent,
  recordConsent,
} from '../../../core/store/index.ts';
import type { DeviceTokens } from '../devices.ts';
import type { InTxnStep, OrderDraft, OrderFeature } from '../order-features.ts';
import { ErrorEnvelope, errorResponses } from '../schemas.ts';
import type { StoreGuard } from '../store-guard.ts';
import type { ViewerTracker } from './tracker.ts';

/** The version of the consent text the buyer page shows (the page carries the same string). */
export const CONSENT_TEXT_VERSION = 'audience-2026-12';
export const TEXT_VERSION_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$';

export const ConsentIn = Type.Object(
  {
    granted: Type.Boolean(),
    /** the version of the text the buyer was shown */
    textVersion: Type.String({ minLength: 1, maxLength: 32, pattern: TEXT_VERSION_PATTERN }),
  },
  { additionalProperties: false },
);
export type ConsentInT = Static<typeof ConsentIn>;

/** The device's own answer; no viewer or order ids (neither its own nor anyone else's). */
export const ConsentOut = Type.Object({
  /** null: never answered on this kit */
  granted: Type.Union([Type.Boolean(), Type.Null()]),
  textVersion: Type.Union([Type.String(), Type.Null()]),
  at: Type.Union([Type.String(), Type.Null()]),
  /** orders of this device linked to its viewing (0 after a withdrawal) */
  linkedOrders: Type.Integer({ minimum: 0 }),
  /** the text version the page shows now (a different answered version: ask again) */
  currentTextVersion: Type.String(),
});
export type ConsentOutT = Static<typeof ConsentOut>;

export function consentView(rec: ConsentRecord | undefined): ConsentOutT {
  return {
    granted: rec ? rec.granted : null,
    textVersion: rec?.textVersion ?? null,
    at: rec?.at ?? null,
    linkedOrders: rec?.links.length ?? 0,
    currentTextVersion: CONSENT_TEXT_VERSION,
  };
}

const linkTier = new WeakMap<OrderDraft, string>();

/**
 * The order pipeline's audience step: with the placing device's consent granted, the order's own
 * transaction links it to the viewer id of that request (no extra commit). Runs after drain-proofing,
 * which verified the device token (`d.extra.deviceId`).
 */
export class AudienceFeature implements OrderFeature {
  readonly name = 'audience';
  constructor(
    private readonly store: KitStore,
    private readonly tracker: Pick<ViewerTracker, 'idOf' | 'eventId'>,
    /** the loyalty tier of a pass the order used (the loyalty feature knows it) */
    private readonly tierOf: (d: OrderDraft) => string | undefined = () => undefined,
  ) {}

  adjust(d: OrderDraft): void {
    const tier = this.tierOf(d);
    if (tier) linkTier.set(d, tier);
  }

  commit(d: OrderDraft): InTxnStep | undefined {
    const deviceId = d.extra.deviceId;
    if (!deviceId) return undefined;
    // a read outside the transaction only to skip the step for the many without consent
    if (!readConsent(this.store, deviceId)?.granted) return undefined;
    const eventId = d.cat.catalog.eventId;
    // the viewer id exists only while this event is live (the key is the event's)
    const viewerId =
      this.tracker.eventId() === eventId ? this.tracker.idOf(d.caller.ip, d.caller.userAgent) : undefined;
    const loyaltyTier = linkTier.get(d);
    return {
      write: (order) =>
        linkOrderInTxn(this.store, deviceId, { viewerId, orderId: order.id, eventId, loyaltyTier }),
    };
  }
}

export interface ConsentRoutesOptions {
  store: KitStore;
  guard: StoreGuard;
  devices: DeviceTokens;
  /** POPKIT_CONSENT_RATE_PER_MIN */
  ratePerMin: number;
  clock?: () => number;
}

const DeviceHeader = Type.Object({ 'x-popkit-device': Type.Optional(Type.String({ maxLength: 200 })) });

export const consentRoutes: FastifyPluginAsyncTypebox<ConsentRoutesOptions> = async (app, opts) => {
  const { store, guard, devices } = opts;
  const now = () => (opts.clock ? opts.clock() : Date.now());
  const deviceOf = (header: string | undefined): string => {
    if (header === undefined)
      throw new KitError(
        'DEVICE_INVALID',
        'send the buyer page device token in x-popkit-device (POST /v1/devices)',
      );
    return devices.verify(header);
  };
  const rateLimit = { max: opts.ratePerMin, timeWindow: 60_000 };
  const responses = { 200: ConsentOut, ...errorResponses, 429: ErrorEnvelope, 507: ErrorEnvelope };

  app.post(
    '/v1/consent',
    {
      config: { rateLimit },
      schema: { headers: DeviceHeader, body: ConsentIn, response: responses },
    },
    async (req) => {
      const deviceId = deviceOf(req.headers['x-popkit-device']);
      guard.assertWritable();
      const rec = await recordConsent(store, deviceId, {
        granted: req.body.granted,
        textVersion: req.body.textVersion,
        at: new Date(now()).toISOString(),
      });
      return consentView(rec);
    },
  );

  app.get(
    '/v1/consent',
    {
      config: { rateLimit: { ...rateLimit, max: rateLimit.max * 4 } },
      schema: { headers: DeviceHeader, response: responses },
    },
    async (req) => consentView(readConsent(store, deviceOf(req.headers['x-popkit-device']))),
  );

  app.delete(
    '/v1/consent',
    {
      config: { rateLimit },
      schema: { headers: DeviceHeader, response: responses },
    },
    async (req) => {
      const deviceId = deviceOf(req.headers['x-popkit-device']);
      const prev = readConsent(store, deviceId);
      if (!prev) return consentView(undefined);
      // no store-full check: a withdrawal deletes, and must never wait for space
      const rec = await recordConsent(store, deviceId, {
        granted: false,
        textVersion: prev.textVersion,
        at: new Date(now()).toISOString(),
      });
      return consentView(rec);
    },
  );
};
