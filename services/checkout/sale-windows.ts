// Sale windows (docs/drops.md#sale-windows): a SKU or bundle with a `saleWindow` is sold from
// `startsAt` (inclusive) to `endsAt` (exclusive), judged by the kit's trusted clock
// (core/clock-trust.ts), so every kit of the event opens it at the same absolute instant. Before:
// NOT_ON_SALE_YET with the seconds to go; after: SALE_ENDED; on a clock no source vouched for:
// CLOCK_UNTRUSTED. A bundle line is judged by the bundle's own window (its components' windows do not
// apply: a creator may open a bundle before or after its parts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import { type ClockSources, ClockTrust, systemClockSources } from '../../core/clock-trust.ts';
import type { CheckoutConfigT } from '../../core/config.ts';
import { parseIsoTime } from '../../core/contracts/catalog.ts';
import { KitError } from '../../core/errors.ts';
import { saleStateAt } from '../../core/sale-window.ts';
import type { KitStore, SaleClock, SaleWindow } from '../../core/store/index.ts';
import type { CatalogView, OrderDraft, OrderFeature } from './order-features.ts';
import { adminSecurity, type Credentials } from './routes/staff.ts';
import { ErrorEnvelope, errorResponses } from './schemas.ts';

type LineRef = { sku: string } | { bundle: string };

/**
 * Refuse the first line whose window is not open at `clock` (orders and reservations call this
 * before anything is written). Lines naming an unknown SKU or bundle are left to pricing.
 */
export function assertOnSale(cat: CatalogView, lines: readonly LineRef[], clock: SaleClock): void {
  for (const line of lines) {
    const bundle = 'bundle' in line;
    const id = bundle ? line.bundle : line.sku;
    const window: SaleWindow | undefined = bundle
      ? cat.byBundle.get(id)?.saleWindow
      : cat.bySku.get(id)?.saleWindow;
    if (!window) continue;
    const which = bundle ? { bundle: id } : { sku: id };
    switch (saleStateAt(window, clock.now, clock.trusted)) {
      case 'open':
        continue;
      case 'clock_untrusted':
        throw new KitError(
          'CLOCK_UNTRUSTED',
          `${id} is sold in a time window and this kit's clock is not trusted yet (no NTP, RTC or hub time this boot): staff can vouch for it (POST /v1/clock/trust)`,
          { ...which, startsAt: window.startsAt, endsAt: window.endsAt },
        );
      case 'upcoming': {
        const startsAt = parseIsoTime(window.startsAt);
        const secondsToGo = Math.max(1, Math.ceil((startsAt - clock.now) / 1000));
        throw new KitError(
          'NOT_ON_SALE_YET',
          `${id} goes on sale at ${window.startsAt} (in ${secondsToGo} s)`,
          {
            ...which,
            startsAt: window.startsAt,
            secondsToGo,
          },
        );
      }
      case 'ended':
        throw new KitError('SALE_ENDED', `the sale of ${id} ended at ${window.endsAt}`, {
          ...which,
          endsAt: window.endsAt,
        });
    }
  }
}

/**
 * The next instant (ms) at which some window of the catalog opens or closes after `now`, or undefined:
 * a catalog answer cached before it is stale from then on (routes/catalog.ts).
 */
export function nextWindowBoundary(cat: CatalogView, now: number): number | undefined {
  let next = Number.POSITIVE_INFINITY;
  const consider = (w: SaleWindow | undefined) => {
    if (!w) return;
    for (const t of [parseIsoTime(w.startsAt), parseIsoTime(w.endsAt)]) if (t > now && t < next) next = t;
  };
  for (const i of cat.catalog.items) consider(i.saleWindow);
  for (const b of cat.catalog.bundles) consider(b.saleWindow);
  return Number.isFinite(next) ? next : undefined;
}

/** The kit's clock trust as the configuration sets it (main.ts); `sources`: tests inject clocks. */
export function clockTrustFromConfig(
  store: KitStore,
  cfg: Pick<
    CheckoutConfigT,
    | 'POPKIT_CLOCK_TRUST'
    | 'POPKIT_CLOCK_JUMP_TOLERANCE_MS'
    | 'POPKIT_CLOCK_HUB_AGREE_S'
    | 'POPKIT_CLOCK_NTP_POLL_S'
  >,
  env: NodeJS.ProcessEnv = process.env,
  sources: ClockSources = systemClockSources(env),
): ClockTrust {
  return new ClockTrust(store, sources, {
    jumpToleranceMs: cfg.POPKIT_CLOCK_JUMP_TOLERANCE_MS,
    hubAgreeMs: cfg.POPKIT_CLOCK_HUB_AGREE_S * 1000,
    ntpPollMs: cfg.POPKIT_CLOCK_NTP_POLL_S * 1000,
    assume: cfg.POPKIT_CLOCK_TRUST === 'assume',
  });
}

/** The order pipeline's sale-window step (order-features.ts), first among the features. */
export function saleWindowFeature(opts: { saleClock: () => SaleClock; trust?: ClockTrust }): OrderFeature {
  return {
    name: 'sale-windows',
    admit(d: OrderDraft) {
      assertOnSale(d.cat, d.body.lines, opts.saleClock());
    },
    status() {
      return opts.trust ? { clock: opts.trust.view() } : {};
    },
  };
}

// ---- POST /v1/clock/trust: staff vouch for the clock (this boot only) ----

/** `{}`, or `{"expectNow": ISO}`: what the staff member's own reference (phone, watch) reads */
export const ClockTrustBody = Type.Object(
  { expectNow: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })) },
  { additionalProperties: false },
);
export type ClockTrustBodyT = Static<typeof ClockTrustBody>;

const ClockTrustOut = Type.Object({
  trusted: Type.Boolean(),
  source: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  now: Type.String(),
  since: Type.Union([Type.String(), Type.Null()]),
  hubFloor: Type.Union([Type.String(), Type.Null()]),
  jumpMs: Type.Optional(Type.Number()),
  sources: Type.Object({
    ntp: Type.Union([Type.Boolean(), Type.Null()]),
    rtc: Type.Boolean(),
    hub: Type.Boolean(),
    override: Type.Boolean(),
  }),
});

/** How far the staff's reference may be from the kit's clock for an override (ms). */
export const OVERRIDE_MAX_SKEW_MS = 60_000;

export interface ClockRoutesOptions {
  trust: ClockTrust;
  creds: Credentials;
  /** told when the trust changes (the catalog cache) */
  onChange?: () => void;
}

export const clockRoutes: FastifyPluginAsyncTypebox<ClockRoutesOptions> = async (app, opts) => {
  const { trust, creds } = opts;
  app.get(
    '/v1/clock',
    { onRequest: creds.require('terminal'), schema: { response: { 200: ClockTrustOut, ...errorResponses } } },
    async () => trust.view(),
  );
  app.post(
    '/v1/clock/trust',
    {
      onRequest: creds.require('admin'),
      schema: {
        body: ClockTrustBody,
        response: { 200: ClockTrustOut, ...errorResponses, 503: ErrorEnvelope },
        security: adminSecurity,
      },
    },
    async (req) => {
      const expect = req.body.expectNow;
      if (expect !== undefined) {
        const t = parseIsoTime(expect);
        if (Number.isNaN(t))
          throw new KitError('VALIDATION', 'expectNow is not an ISO 8601 time with a zone', {
            field: 'expectNow',
          });
        const kitNow = trust.judge().now;
        if (Math.abs(t - kitNow) > OVERRIDE_MAX_SKEW_MS)
          throw new KitError(
            'CONFLICT',
            `the kit's clock reads ${new Date(kitNow).toISOString()}, ${Math.round((kitNow - t) / 1000)} s off your ${expect}: set the clock, do not vouch for it`,
            { kitNow: new Date(kitNow).toISOString(), expectNow: expect, maxSkewMs: OVERRIDE_MAX_SKEW_MS },
          );
      }
      const j = await trust.override('admin');
      opts.onChange?.();
      return trust.view(j);
    },
  );
};
