// The hub link's MQTT topics and payloads, defined once for the kit (sync) and the hub. Every payload
// is JSON with `v: 1`; a reader validates with the contracts of `wire` below and ignores unknown fields,
// so fields can be added without breaking older peers (docs/contracts.md#hub-link-mqtt).
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { CATALOG_LIMITS, CatalogInput, parseIsoTime } from './catalog.ts';
import {
  CATALOG_VERSION_MAX,
  Cents,
  type Contract,
  Currency,
  contract,
  ID_LEVEL,
  IdLevel,
  IsoTime,
  isSafeText,
  SafeText,
  SignedEnvelope,
  Sku,
} from './common.ts';
import { IdentityKey, LanGrantReport } from './lan-stock.ts';
import { LANE_NAMES } from './lanes.ts';
import { BatterySummaryWire } from './power.ts';
import { StockRelease } from './shared-stock.ts';

export const TOPIC_ROOT = 'popkit/v1';

/**
 * The MQTT version the hub link speaks (POPKIT_SYNC_MQTT_VERSION on a kit, POPKIT_HUB_MQTT_VERSION on a
 * hub worker). 5 is the default (Mosquitto). 3.1.1 is for a region whose broker speaks nothing newer
 * (the NATS server's MQTT gateway): no session expiry interval (the broker keeps a `clean: false`
 * session by its own rule) and no request/response properties, so an online card check carries its
 * reply topic and correlation in its payload (`AuthorizeRequest.reply`, `AuthorizeResponse.correlation`).
 */
export const MQTT_VERSIONS = ['5', '3.1.1'] as const;
export type MqttVersion = (typeof MQTT_VERSIONS)[number];
/** the protocol level of CONNECT (mqtt.js `protocolVersion`): 3.1.1 is level 4 */
export function mqttProtocolLevel(v: MqttVersion): 4 | 5 {
  return v === '3.1.1' ? 4 : 5;
}

export const topics = {
  orders: (kitId: string) => `${TOPIC_ROOT}/kits/${kitId}/orders`,
  telemetry: (kitId: string) => `${TOPIC_ROOT}/kits/${kitId}/telemetry`,
  status: (kitId: string) => `${TOPIC_ROOT}/kits/${kitId}/status`,
  acks: (kitId: string) => `${TOPIC_ROOT}/kits/${kitId}/acks`,
  /** kit → hub: the verdicts (acks with `confirm`) the kit has applied, so the hub stops resending them */
  receipts: (kitId: string) => `${TOPIC_ROOT}/kits/${kitId}/receipts`,
  /** kit → hub: authorize a card token before answering (scarce items online, AuthorizeRequest) */
  authorize: (kitId: string) => `${TOPIC_ROOT}/kits/${kitId}/authorize`,
  /** hub → kit: the answers to its AuthorizeRequests (AuthorizeResponse) */
  authorizations: (kitId: string) => `${TOPIC_ROOT}/kits/${kitId}/authorizations`,
  catalog: (eventId: string) => `${TOPIC_ROOT}/events/${eventId}/catalog`,
  /** hub → kit, retained: the kit's share of an event's stock, signed (SignedAllocation, shared-stock.ts) */
  allocation: (kitId: string, eventId: string) => `${TOPIC_ROOT}/kits/${kitId}/allocations/${eventId}`,
  /** the filter a kit subscribes its allocations with (one retained statement per event) */
  kitAllocations: (kitId: string) => `${TOPIC_ROOT}/kits/${kitId}/allocations/+`,
  /** hub → kits, retained: the hub's X25519 telemetry key, signed with its catalog key (SignedSealKey) */
  sealKey: `${TOPIC_ROOT}/hub/seal-key`,
  /** the filters a hub worker consumes (orders and telemetry shared, status seen by every worker) */
  allOrders: `${TOPIC_ROOT}/kits/+/orders`,
  allTelemetry: `${TOPIC_ROOT}/kits/+/telemetry`,
  allStatus: `${TOPIC_ROOT}/kits/+/status`,
  allReceipts: `${TOPIC_ROOT}/kits/+/receipts`,
  allAuthorize: `${TOPIC_ROOT}/kits/+/authorize`,
  /** hub → operators' subscribers: every alert raised, acknowledged or resolved (AlertMessage, core/contracts/alerts.ts) */
  alerts: `${TOPIC_ROOT}/hub/alerts`,
} as const;

/** `popkit/v1/kits/{kitId}/{leaf}` → kitId, or undefined when the topic is not of that shape. */
export function kitIdFromTopic(topic: string): { kitId: string; leaf: string } | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5 || parts[0] !== 'popkit' || parts[1] !== 'v1' || parts[2] !== 'kits')
    return undefined;
  const kitId = parts[3];
  const leaf = parts[4];
  if (!kitId || !leaf) return undefined;
  return { kitId, leaf };
}

const KitId = IdLevel;
const EntryId = Type.String({ minLength: 1, maxLength: 64 });

/** Bounds of an order on the wire: what a kit can sell, with room; beyond them the hub dead-letters it. */
export const WIRE_ORDER_LIMITS = {
  lines: 1000,
  qty: CATALOG_LIMITS.stock,
  /** whole cents the hub's bigint and a JS number both hold exactly */
  cents: Number.MAX_SAFE_INTEGER,
} as const;
const BigCents = Type.Integer({ minimum: 0, maximum: WIRE_ORDER_LIMITS.cents });

export const WireOrderLine = Type.Object({
  sku: Sku,
  name: SafeText({ minLength: 1, maxLength: CATALOG_LIMITS.nameLength }),
  qty: Type.Integer({ minimum: 1, maximum: WIRE_ORDER_LIMITS.qty }),
  unitPriceCents: Cents,
  lineCents: BigCents,
  /** a bundle line (`sku` is the bundle's id): what one bundle holds */
  components: Type.Optional(
    Type.Array(
      Type.Object({ sku: Sku, qty: Type.Integer({ minimum: 1, maximum: CATALOG_LIMITS.maxPerOrder }) }),
      { minItems: 1, maxItems: CATALOG_LIMITS.skusPerBundle },
    ),
  ),
});

/** The order as the hub receives it: the kit's stored order without local-only fields. */
export const WireOrder = Type.Object({
  id: EntryId,
  kitId: KitId,
  eventId: IdLevel,
  catalogVersion: Type.Integer({ minimum: 0, maximum: CATALOG_VERSION_MAX }),
  totalCents: BigCents,
  currency: Currency,
  lines: Type.Array(WireOrderLine, { minItems: 1, maxItems: WIRE_ORDER_LIMITS.lines }),
  payment: Type.Union([
    Type.Object({ method: Type.Literal('cash') }),
    Type.Object({
      method: Type.Literal('token'),
      tokenHint: SafeText({ maxLength: 64 }),
      /** the hub authorized this token before the kit answered (AuthorizeResponse.ref): capture, do not charge again */
      authRef: Type.Optional(SafeText({ minLength: 1, maxLength: 128 })),
    }),
  ]),
  createdAt: IsoTime,
  /** absent: `accepted` (older kits); `held`: not paid in a way the kit trusts yet (docs/security.md) */
  status: Type.Optional(
    Type.Union([Type.Literal('accepted'), Type.Literal('held'), Type.Literal('released')]),
  ),
  /** with a discount: the sum of the lines, and `totalCents` = subtotal − discount.cents */
  subtotalCents: Type.Optional(BigCents),
  discount: Type.Optional(
    Type.Object({
      passId: SafeText({ minLength: 1, maxLength: 64 }),
      holder: SafeText({ minLength: 1, maxLength: 64 }),
      cents: BigCents,
    }),
  ),
  reservationId: Type.Optional(EntryId),
  pickup: Type.Optional(
    Type.Object({
      slotId: SafeText({ minLength: 1, maxLength: 64 }),
      code: SafeText({ minLength: 1, maxLength: 16 }),
    }),
  ),
  deviceId: Type.Optional(SafeText({ minLength: 1, maxLength: 64 })),
});
export type WireOrderT = Static<typeof WireOrder>;

export const OrderEntry = Type.Object({
  lane: Type.Literal('orders'),
  id: EntryId,
  order: WireOrder,
  /** the plaintext payment token, decrypted by sync at publish time; only on the (TLS) hub link */
  token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  /** why a token order carries no token: the kit could not open it */
  tokenError: Type.Optional(
    Type.Union([Type.Literal('expired'), Type.Literal('invalid'), Type.Literal('missing')]),
  ),
});

/** What happened to an order after it was taken (the kit's OrderEventBody, core/store/outbox.ts). */
export const OrderEvent = Type.Object({
  type: Type.Union([Type.Literal('picked_up'), Type.Literal('confirmed'), Type.Literal('released')]),
  orderId: EntryId,
  at: IsoTime,
  by: Type.Optional(SafeText({ maxLength: 64 })),
  reason: Type.Optional(SafeText({ maxLength: 300 })),
});
export type OrderEventT = Static<typeof OrderEvent>;

/** On the orders lane, behind its order: entry id `<orderId>~<type>`. */
export const OrderEventEntry = Type.Object({
  lane: Type.Literal('orders'),
  id: EntryId,
  event: OrderEvent,
});

/** On the orders lane: units this kit released for a transfer (docs/shared-stock.md); entry id = release id. */
export const ReleaseEntry = Type.Object({
  lane: Type.Literal('orders'),
  id: EntryId,
  release: StockRelease,
});

/**
 * On the orders lane: the giver's signed receipt of units this kit received over the venue LAN while
 * the uplink was down (lan-stock.ts); entry id = the transfer's id. The hub records it once.
 */
export const LanGrantEntry = Type.Object({
  lane: Type.Literal('orders'),
  id: EntryId,
  lanGrant: LanGrantReport,
});

export const StockEntry = Type.Object({
  lane: Type.Literal('stock'),
  id: EntryId,
  at: Type.Integer({ minimum: 0 }),
  /** a full snapshot (sku → units left): later snapshots supersede earlier ones */
  stock: Type.Record(Type.String(), Type.Integer()),
});

export const HealthEntry = Type.Object({
  lane: Type.Literal('health'),
  id: EntryId,
  at: Type.Integer({ minimum: 0 }),
  body: Type.Record(Type.String(), Type.Unknown()),
});

export const TelemetryEntry = Type.Object({
  lane: Type.Literal('telemetry'),
  id: EntryId,
  at: Type.Integer({ minimum: 0 }),
  body: Type.Record(Type.String(), Type.Unknown()),
});

export const BatchEntry = Type.Union([
  OrderEntry,
  OrderEventEntry,
  ReleaseEntry,
  LanGrantEntry,
  StockEntry,
  HealthEntry,
  TelemetryEntry,
]);
export type BatchEntryT = Static<typeof BatchEntry>;

/**
 * Kit → hub on `kits/{kitId}/orders` (lanes orders, stock) and `kits/{kitId}/telemetry` (health,
 * telemetry). The envelope is checked as a whole; each entry on its own (`entryProblems`), so one bad
 * entry is dead-lettered by the hub instead of failing the batch and blocking the kit behind it.
 */
export const Batch = Type.Object({
  v: Type.Literal(1),
  kitId: KitId,
  sentAt: Type.Integer({ minimum: 0 }),
  entries: Type.Array(Type.Unknown(), { minItems: 1, maxItems: 5000 }),
});
export type BatchT = Static<typeof Batch>;

const batchEntry = contract(BatchEntry);
/** per lane, so that a refusal names the field at fault rather than "Expected union value" */
const orderEventEntry = contract(OrderEventEntry);
const releaseEntry = contract(ReleaseEntry);
const lanGrantEntry = contract(LanGrantEntry);
const entryByLane: Record<string, Contract<TSchema>> = {
  orders: contract(OrderEntry),
  stock: contract(StockEntry),
  health: contract(HealthEntry),
  telemetry: contract(TelemetryEntry),
};

/**
 * What is wrong with one batch entry sent on `kitId`'s topic: its shape (BatchEntry), and for an order
 * what a schema cannot say: it names the same kit and id as its entry, `lineCents = qty × unitPriceCents`,
 * the total is the sum of its lines, `createdAt` is a real ISO time. Empty when the entry is sound.
 */
export function entryProblems(entry: unknown, kitId: string): string[] {
  if (!batchEntry.check(entry)) {
    const lane = (entry as { lane?: unknown } | null)?.lane;
    const has = (k: string) => lane === 'orders' && typeof entry === 'object' && entry !== null && k in entry;
    const byLane = has('event')
      ? orderEventEntry
      : has('release')
        ? releaseEntry
        : has('lanGrant')
          ? lanGrantEntry
          : typeof lane === 'string' && Object.hasOwn(entryByLane, lane)
            ? entryByLane[lane]
            : undefined;
    return (byLane ?? batchEntry).errors(entry, 3);
  }
  if (entry.lane !== 'orders') return [];
  if ('release' in entry) return entry.id === entry.release.id ? [] : ['/id: differs from the release id'];
  // the receipt's id is inside its signed payload: the hub checks it when it verifies the receipt
  if ('lanGrant' in entry) return entry.id.startsWith('l-') ? [] : ['/id: not a LAN transfer id (l-…)'];
  if ('event' in entry) {
    const e = entry.event;
    const out: string[] = [];
    if (entry.id !== `${e.orderId}~${e.type}`) out.push('/id: not <orderId>~<type>');
    if (Number.isNaN(parseIsoTime(e.at))) out.push('/event/at: not an ISO time');
    return out;
  }
  const o = entry.order;
  const out: string[] = [];
  if (o.kitId !== kitId) out.push(`/order/kitId: kit_mismatch (sent on ${kitId}'s topic)`);
  if (o.id !== entry.id) out.push('/order/id: differs from the entry id');
  let sum = 0;
  o.lines.forEach((l, i) => {
    if (l.lineCents !== l.qty * l.unitPriceCents)
      out.push(`/order/lines/${i}/lineCents: not qty × unitPriceCents`);
    sum += l.lineCents;
  });
  if (o.discount || o.subtotalCents !== undefined) {
    if (o.subtotalCents !== sum) out.push('/order/subtotalCents: not the sum of its lines');
    if (o.totalCents !== sum - (o.discount?.cents ?? 0))
      out.push('/order/totalCents: not subtotalCents less the discount');
  } else if (sum !== o.totalCents) out.push('/order/totalCents: not the sum of its lines');
  const t = Date.parse(o.createdAt);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(o.createdAt) || Number.isNaN(t))
    out.push('/order/createdAt: not an ISO time');
  return out;
}

/** A reason fit for an ack and a log line: safe text, at most 300 characters. */
export function safeReason(parts: string[]): string {
  const text = parts.join('; ').slice(0, 300);
  return [...text].map((c) => (isSafeText(c) ? c : '?')).join('');
}

export const AckState = Type.Union([
  Type.Literal('forwarded'),
  Type.Literal('settled'),
  Type.Literal('declined'),
  Type.Literal('stored'),
  /** terminal: the hub cannot store this order (its reason says why); it sits in the hub's dead letters */
  Type.Literal('rejected'),
]);
export type AckStateT = Static<typeof AckState>;

/** Hub → kit on `kits/{kitId}/acks`, sent only after the hub's transaction committed. */
export const Ack = Type.Object({
  v: Type.Literal(1),
  kitId: KitId,
  acks: Type.Array(
    Type.Object({
      lane: Type.Union(LANE_NAMES.map((l) => Type.Literal(l))),
      id: EntryId,
      state: AckState,
      reason: Type.Optional(Type.String({ maxLength: 500 })),
      /**
       * a verdict the hub keeps resending until the kit names it in a receipt (one that came after a
       * `forwarded` ack, when the kit no longer resends the order itself)
       */
      confirm: Type.Optional(Type.Boolean()),
    }),
  ),
});
export type AckT = Static<typeof Ack>;

/** Kit → hub on `kits/{kitId}/receipts`: these confirmed verdicts are applied on the kit, stop resending. */
export const Receipt = Type.Object({
  v: Type.Literal(1),
  kitId: KitId,
  orders: Type.Array(EntryId, { minItems: 1, maxItems: 5000 }),
});
export type ReceiptT = Static<typeof Receipt>;

/** Kit → hub on `kits/{kitId}/status`, retained; the last will says `online: false`. */
export const KitStatus = Type.Object({
  v: Type.Literal(1),
  kitId: KitId,
  online: Type.Boolean(),
  at: Type.Integer({ minimum: 0 }),
  eventId: Type.Optional(Type.String()),
  backlog: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }))),
  oldestAgeMs: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }))),
  lastAckAt: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  catalogVersion: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  state: Type.Optional(Type.String()),
  battery: Type.Optional(BatterySummaryWire),
  /** the kit's identity public key (its LAN transfers are signed with it); the hub lists it to the event's kits */
  identityKey: Type.Optional(IdentityKey),
  /**
   * the kit's clock trust as checkout last recorded it this boot (core/store/clock.ts clockTrustNow):
   * the hub alerts when it is untrusted while a sale window of the kit's event opens; absent: older kit
   */
  clock: Type.Optional(
    Type.Object({
      trusted: Type.Boolean(),
      source: Type.Optional(SafeText({ maxLength: 16 })),
      reason: Type.Optional(SafeText({ maxLength: 32 })),
    }),
  ),
});
export type KitStatusT = Static<typeof KitStatus>;

/** The catalog carried inside a signed catalog message: the one catalog schema (catalog.ts). */
export const WireCatalog = CatalogInput;
export type WireCatalogT = Static<typeof WireCatalog>;

/**
 * Hub → kits on `events/{eventId}/catalog`, retained. The signature covers the exact bytes of
 * `payload` (a JSON string), so no canonical-JSON step is needed on either side.
 */
export const SignedCatalog = SignedEnvelope(4_000_000);
export type SignedCatalogT = Static<typeof SignedCatalog>;

export const CatalogPayload = Type.Object({
  v: Type.Literal(1),
  eventId: Type.String({ pattern: ID_LEVEL }),
  version: Type.Integer({ minimum: 1, maximum: CATALOG_VERSION_MAX }),
  issuedAt: Type.String(),
  catalog: WireCatalog,
});
export type CatalogPayloadT = Static<typeof CatalogPayload>;

/** an AuthorizeRequest's id, and its correlation: one topic level, no control character, ≤ 64 */
const RequestId = Type.String({ minLength: 1, maxLength: 64, pattern: ID_LEVEL });

/**
 * MQTT 3.1.1 (no response topic, no correlation data): where and how the answer to an AuthorizeRequest
 * goes, carried inside the request. `topic` must be the asking kit's own `kits/{kitId}/authorizations`
 * (the hub refuses any other, as it refuses another MQTT 5 response topic); `correlation` comes back in
 * the answer's `correlation` (the kit sets its request id). Nothing else is allowed in it.
 */
export const AuthorizeReply = Type.Object(
  {
    topic: Type.String({ minLength: 1, maxLength: 256 }),
    correlation: RequestId,
  },
  { additionalProperties: false },
);
export type AuthorizeReplyT = Static<typeof AuthorizeReply>;

/**
 * Kit → hub on `kits/{kitId}/authorize`. MQTT 5: request/response, the kit sets the response topic
 * `kits/{kitId}/authorizations` and correlation data (its `requestId`). MQTT 3.1.1: the same two travel
 * in `reply` (AuthorizeReply), and a request carrying both forms is refused. The hub authorizes the
 * token through its gateway and answers within the kit's budget or not at all; the kit falls back to
 * its offline rule.
 */
export const AuthorizeRequest = Type.Object({
  v: Type.Literal(1),
  kitId: KitId,
  /** unique per request; the answer carries it back */
  requestId: RequestId,
  /** the order id the kit will store if approved (the hub captures against it when the order arrives) */
  orderId: EntryId,
  token: Type.String({ minLength: 1, maxLength: 4096 }),
  amountCents: BigCents,
  currency: Currency,
  /** epoch ms after which the kit no longer waits: the hub drops a request it sees too late */
  deadline: Type.Integer({ minimum: 0 }),
  /** MQTT 3.1.1 only: the response topic and correlation (absent over MQTT 5) */
  reply: Type.Optional(AuthorizeReply),
});
export type AuthorizeRequestT = Static<typeof AuthorizeRequest>;

export const AuthorizeResponse = Type.Object({
  v: Type.Literal(1),
  requestId: RequestId,
  verdict: Type.Union([Type.Literal('approved'), Type.Literal('declined'), Type.Literal('unavailable')]),
  /** the gateway's reference for an approved authorization */
  ref: Type.Optional(SafeText({ minLength: 1, maxLength: 128 })),
  reason: Type.Optional(SafeText({ maxLength: 300 })),
  /** the request's `reply.correlation`, when it came over MQTT 3.1.1 (MQTT 5: the correlation data) */
  correlation: Type.Optional(RequestId),
});
export type AuthorizeResponseT = Static<typeof AuthorizeResponse>;

/**
 * Hub → kits on `hub/seal-key`, retained: the X25519 key telemetry is sealed to (core/telemetry-seal.ts),
 * signed with the hub's ed25519 catalog key over the exact bytes of `payload`, as catalogs are. The
 * payload's `use` keeps a signed seal key and a signed catalog from ever being taken for each other.
 */
export const SignedSealKey = SignedEnvelope(2000);
export type SignedSealKeyT = Static<typeof SignedSealKey>;

export const SealKeyPayload = Type.Object(
  {
    v: Type.Literal(1),
    use: Type.Literal('telemetry-seal'),
    alg: Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$' }),
    kid: Type.String({ pattern: '^[0-9a-f]{16}$' }),
    /** the raw 32-byte X25519 public key, base64url */
    publicKey: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
    issuedAt: IsoTime,
  },
  { additionalProperties: false },
);
export type SealKeyPayloadT = Static<typeof SealKeyPayload>;

/** The checkers both ends use: `wire.batch.parse(bytes)`, `wire.signedCatalog.errors(value)` (common.ts). */
export const wire = {
  batch: contract(Batch),
  batchEntry,
  ack: contract(Ack),
  receipt: contract(Receipt),
  kitStatus: contract(KitStatus),
  signedCatalog: contract(SignedCatalog),
  catalogPayload: contract(CatalogPayload),
  authorizeRequest: contract(AuthorizeRequest),
  authorizeResponse: contract(AuthorizeResponse),
  signedSealKey: contract(SignedSealKey),
  sealKeyPayload: contract(SealKeyPayload),
};
