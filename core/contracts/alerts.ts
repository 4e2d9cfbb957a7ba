// The hub's alerts (docs/alerts.md, docs/contracts.md#hub-alerts): conditions of the fleet a creator or
// operator acts on, raised by the hub's evaluator (services/hub/alerts.ts), one open alert per condition,
// resolved when the condition clears, acknowledged by a person. Delivered as AlertMessage on the MQTT
// topic `topics.alerts` (core/contracts/hub-wire.ts) and POSTed to the operator's webhook, signed.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type Static, Type } from '@sinclair/typebox';
import { contract, ID_LEVEL, IsoTime, Nullable, SafeText } from './common.ts';

/**
 * - kit_silent: a kit whose event is live has not been heard from for POPKIT_HUB_ALERT_SILENT_S
 * - battery_critical: kitd's power policy says critical, or the battery is at or below the threshold
 * - backlog_age: the kit's oldest unsynced order is older than the unsynced-age limit
 * - decline_spike / reject_spike: declined orders / orders the hub rejected (dead letters) in a window
 * - clock_untrusted: the kit's clock is not trusted while a sale window of its event opens
 */
export const ALERT_KINDS = [
  'kit_silent',
  'battery_critical',
  'backlog_age',
  'decline_spike',
  'reject_spike',
  'clock_untrusted',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export const ALERT_STATES = ['open', 'acked', 'resolved'] as const;
export type AlertState = (typeof ALERT_STATES)[number];

export const AlertKindSchema = Type.Union(ALERT_KINDS.map((k) => Type.Literal(k)));
export const AlertStateSchema = Type.Union(ALERT_STATES.map((s) => Type.Literal(s)));

/** Who acknowledged an alert: a person's name, plain text. */
export const AckBy = SafeText({ minLength: 1, maxLength: 80 });

export const Alert = Type.Object({
  /** the hub's id (decimal string of a bigserial) */
  id: Type.String({ pattern: '^[1-9][0-9]{0,18}$' }),
  kind: AlertKindSchema,
  kitId: Type.String({ pattern: ID_LEVEL }),
  eventId: Nullable(Type.String({ pattern: ID_LEVEL })),
  state: AlertStateSchema,
  raisedAt: IsoTime,
  ackedAt: Nullable(IsoTime),
  ackedBy: Nullable(Type.String({ maxLength: 80 })),
  resolvedAt: Nullable(IsoTime),
  /** what the condition measured when raised (kind-specific: ages, counts, thresholds) */
  detail: Type.Record(Type.String(), Type.Unknown()),
});
export type AlertT = Static<typeof Alert>;

/** What happened to the alert: raised, acknowledged by a person, resolved (the condition cleared). */
export const ALERT_CHANGES = ['raised', 'acked', 'resolved'] as const;
export type AlertChange = (typeof ALERT_CHANGES)[number];

/** Hub → subscribers on `popkit/v1/hub/alerts` (QoS 1), and the body of every webhook POST. */
export const AlertMessage = Type.Object({
  v: Type.Literal(1),
  change: Type.Union(ALERT_CHANGES.map((c) => Type.Literal(c))),
  /** when the hub recorded the change */
  at: IsoTime,
  alert: Alert,
});
export type AlertMessageT = Static<typeof AlertMessage>;

/** GET /v1/alerts querystring (strict: unknown keys refused). */
export const AlertsQuery = Type.Object(
  {
    state: Type.Optional(AlertStateSchema),
    kitId: Type.Optional(Type.String({ pattern: ID_LEVEL, maxLength: 64 })),
    eventId: Type.Optional(Type.String({ pattern: ID_LEVEL, maxLength: 64 })),
    kind: Type.Optional(AlertKindSchema),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  },
  { additionalProperties: false },
);
export type AlertsQueryT = Static<typeof AlertsQuery>;

/** POST /v1/alerts/:id/ack body. */
export const AckBody = Type.Object({ by: AckBy }, { additionalProperties: false });
export type AckBodyT = Static<typeof AckBody>;

export const AlertParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,17}$' }) });

/**
 * The webhook's signature headers: `X-Popkit-Signature: v1=<hex>` is HMAC-SHA256 with the shared
 * secret over `<X-Popkit-Timestamp>.<raw body>`; the timestamp is unix seconds at the attempt (a
 * receiver refuses old ones: replays); `X-Popkit-Delivery` is the same on every attempt of one
 * delivery (a receiver drops a repeat).
 */
export const ALERT_WEBHOOK_HEADERS = {
  signature: 'x-popkit-signature',
  timestamp: 'x-popkit-timestamp',
  delivery: 'x-popkit-delivery',
  change: 'x-popkit-alert-change',
} as const;

export const alertWire = { message: contract(AlertMessage), alert: contract(Alert) };

/** The webhook signature: `v1=` + hex HMAC-SHA256(secret, `${timestamp}.${body}`). */
export function alertSignature(secret: string, timestamp: string, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** A receiver's check, in constant time: the signature matches this body and timestamp. */
export function alertSignatureValid(secret: string, timestamp: string, body: string, got: string): boolean {
  const want = Buffer.from(alertSignature(secret, timestamp, body));
  const have = Buffer.from(got);
  return want.length === have.length && timingSafeEqual(want, have);
}
