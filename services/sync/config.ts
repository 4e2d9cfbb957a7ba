// Sync's environment (popkit sync). Composed with BaseConfig (POPKIT_KIT_ID, POPKIT_DATA_DIR, POPKIT_HUB_URL).
import { type Static, type TInteger, Type } from '@sinclair/typebox';
import { CheckoutConfig, SECRET } from '../../core/config.ts';
import { ID_LEVEL } from '../../core/contracts/common.ts';
import { MQTT_VERSIONS } from '../../core/contracts/hub-wire.ts';
import { BIND_LINK_MODES } from '../../core/uplinks.ts';
import { LAN_STOCK_MODES } from './lan-stock.ts';

const Int = (def: number, min: number, description: string): TInteger =>
  Type.Integer({ minimum: min, default: def, description });

export const SyncConfig = Type.Object({
  POPKIT_HUB_USERNAME: Type.Optional(
    Type.String({ minLength: 1, description: 'broker user (default: kit id)' }),
  ),
  POPKIT_HUB_PASSWORD: Type.Optional(
    Type.String({ ...SECRET, minLength: 1, description: "the kit's broker password" }),
  ),
  POPKIT_HUB_CA_FILE: Type.Optional(Type.String({ minLength: 1, description: 'CA bundle for mqtts://' })),
  POPKIT_HUB_ALLOW_PLAINTEXT: Type.Boolean({
    default: false,
    description:
      'accept a plaintext hub URL (mqtt://, ws://, tcp://) to another machine; card tokens then cross the network in the clear',
  }),
  POPKIT_SYNC_MQTT_VERSION: Type.Union(
    MQTT_VERSIONS.map((v) => Type.Literal(v)),
    {
      default: '5',
      description:
        "the MQTT version of the hub link: 5 (Mosquitto; session expiry, request/response properties) or 3.1.1 for a broker that speaks nothing newer (the NATS server's MQTT gateway): the same persistent session (clean: false, client id popkit-sync-<kit id>) kept by the broker's own rule, and an online card check's reply topic and correlation carried in its payload (docs/scaling.md#mqtt-311)",
    },
  ),
  POPKIT_HUB_PUBLIC_KEY: Type.Optional(
    Type.String({ minLength: 40, description: "the hub's ed25519 catalog key: PEM or base64 SPKI DER" }),
  ),
  POPKIT_HUB_PUBLIC_KEY_FILE: Type.Optional(
    Type.String({ minLength: 1, description: 'file holding that key' }),
  ),
  POPKIT_EVENT_ID: Type.Optional(
    Type.String({
      pattern: ID_LEVEL,
      description:
        "the event whose catalog this kit takes from the hub (the live event's id wins; unset: the loaded catalog's event)",
    }),
  ),
  POPKIT_TOKEN_KEY: Type.Optional(
    Type.String({
      ...SECRET,
      pattern: '^[0-9a-fA-F]{64}$',
      description: 'AES-256 device key for payment tokens',
    }),
  ),
  // a metered primary link (kitd's links view, services/sync/metered.ts): what travels on it (#17)
  POPKIT_SYNC_METERED: Type.Union([Type.Literal('essential'), Type.Literal('all')], {
    default: 'essential',
    description:
      "while kitd says the kit's primary link is metered: essential sends only the orders (with their payment tokens) and stock lanes, and holds health, telemetry, the sealed series and product images until an unmetered link is primary; all sends everything on any link",
  }),
  // redundant uplinks (services/sync/uplinks.ts, #17): the hub connection bound to one of kitd's links
  POPKIT_SYNC_BIND_LINKS: Type.Union(
    BIND_LINK_MODES.map((m) => Type.Literal(m)),
    {
      default: 'auto',
      description:
        "auto: while kitd lists the kit's links from NetworkManager, sync's hub connection goes out over one link at a time (socat, SO_BINDTODEVICE), an unmetered link first; a connection that fails or drops, or a link kitd no longer lists as connected, moves it to the next link, and it moves back once a better link is connected again. A hub on this machine, a ws:// URL or no links known: plain connections. off: plain connections always (the kernel's routing picks the link)",
    },
  ),
  POPKIT_SYNC_KEEPALIVE_S: Type.Integer({
    minimum: 5,
    maximum: 3600,
    default: 60,
    description:
      'MQTT keepalive of the hub link: a connection silent for 1.5× this is taken as dead (a link whose carrier stays up while its path is gone), and sync moves on',
  }),
  // units moved between an event's kits over the venue LAN while the hub is out of reach (lan-stock.ts, #17)
  POPKIT_LAN_STOCK: Type.Union(
    LAN_STOCK_MODES.map((m) => Type.Literal(m)),
    {
      default: 'auto',
      description:
        "auto: while the event's stock is shared among its kits, sync listens for the other kits on POPKIT_LAN_STOCK_PORT, announces itself and finds them over multicast DNS (_popkit-stock._tcp), and while the hub has been out of reach for POPKIT_LAN_STOCK_AFTER_S asks the kit with the most unsold units for some of a SKU that runs low; every request and receipt is signed with the kit's identity key and checked against the hub's signed list of the event's kits. off: none of it",
    },
  ),
  POPKIT_LAN_STOCK_HOST: Type.String({
    minLength: 1,
    maxLength: 64,
    pattern: '^[0-9A-Fa-f:.]+$',
    default: '0.0.0.0',
    description: 'the address the LAN stock listener binds (an IP address)',
  }),
  POPKIT_LAN_STOCK_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 8472,
    description: 'the LAN stock listener port (0: any free port, announced over multicast DNS as it is)',
  }),
  POPKIT_LAN_STOCK_AFTER_S: Type.Integer({
    minimum: 0,
    maximum: 86_400,
    default: 30,
    description: 'ask the other kits for units only once the hub has been out of reach this long',
  }),
  POPKIT_LAN_STOCK_BELOW_PERCENT: Type.Integer({
    minimum: 1,
    maximum: 99,
    default: 20,
    description:
      'a SKU runs low when less than this percentage of the units the kit holds is unsold; it then asks for half the difference to the kit with the most',
  }),
  POPKIT_LAN_STOCK_PEERS: Type.Optional(
    Type.String({
      maxLength: 4096,
      pattern: '^https?://[^,\\s\\x00-\\x1f\\x7f]+(,https?://[^,\\s\\x00-\\x1f\\x7f]+)*$',
      description:
        "the other kits' LAN stock listeners, as http://address:port separated by commas, asked besides those found over multicast DNS (for a venue network that drops multicast)",
    }),
  ),
  POPKIT_SYNC_BATCH_MAX: Int(500, 1, 'entries per MQTT message at most'),
  POPKIT_SYNC_BATCH_BYTES: Int(256 * 1024, 4096, 'bytes per MQTT message at most'),
  POPKIT_SYNC_WINDOW: Int(8, 1, 'messages awaiting their ack at once'),
  POPKIT_SYNC_ACK_TIMEOUT_MS: Int(15_000, 100, 'resend entries whose ack has not come after this'),
  POPKIT_SYNC_POLL_MS: Int(100, 10, 'outbox poll interval while idle'),
  POPKIT_SYNC_BACKOFF_MIN_MS: Int(500, 10, 'first reconnect delay'),
  POPKIT_SYNC_BACKOFF_MAX_MS: Int(30_000, 100, 'longest reconnect delay'),
  POPKIT_SYNC_STOCK_INTERVAL_MS: Int(5_000, 100, 'how often stock is compared and a snapshot queued'),
  POPKIT_SYNC_HEALTH_INTERVAL_MS: Int(30_000, 100, 'how often a health entry is queued'),
  POPKIT_SYNC_TELEMETRY_INTERVAL_MS: Int(60_000, 100, 'how often a telemetry entry is queued'),
  // checkout first (docs/scaling.md#checkout-first): while orders arrive, sync keeps its LMDB
  // transactions and batches small
  POPKIT_SYNC_BUSY_HOLD_MS: Int(
    500,
    0,
    'checkout counts as busy for this long after its last order (0: sync never yields to checkout)',
  ),
  POPKIT_SYNC_BUSY_BATCH_MAX: Int(100, 1, 'entries per MQTT message at most while checkout is busy'),
  POPKIT_SYNC_BUSY_WINDOW: Int(2, 1, 'messages awaiting their ack at once while checkout is busy'),
  POPKIT_SYNC_BUSY_ACK_TXN: Int(100, 1, 'acks applied per LMDB transaction at most while checkout is busy'),
  POPKIT_SYNC_BUSY_YIELD_MS: Int(100, 0, 'pause between two ack transactions while checkout is busy'),
  // the same variable as checkout's (one definition): sync's lanes give way above it (core/priorities.ts)
  POPKIT_STORE_RESERVE_MB: {
    ...CheckoutConfig.properties.POPKIT_STORE_RESERVE_MB,
    description:
      "checkout's reserve (same default); telemetry stops below 4×, health and stock below 2× it (core/priorities.ts)",
  },
  POPKIT_SYNC_TTL_STOCK_S: Int(7 * 24 * 3600, 1, 'stock snapshots older than this are dropped'),
  POPKIT_SYNC_TTL_HEALTH_S: Int(3600, 1, 'health entries older than this are dropped'),
  POPKIT_SYNC_TTL_TELEMETRY_S: Int(24 * 3600, 1, 'telemetry older than this is dropped'),
  POPKIT_SYNC_QUOTA_STOCK_KB: Int(1024, 1, 'disk quota of the stock lane'),
  POPKIT_SYNC_QUOTA_HEALTH_KB: Int(2048, 1, 'disk quota of the health lane'),
  POPKIT_SYNC_QUOTA_TELEMETRY_KB: Int(8192, 1, 'disk quota of the telemetry lane (oldest dropped first)'),
  // live series to the hub, sealed (services/sync/series-ship.ts, docs/contracts.md#sealed-telemetry)
  POPKIT_SYNC_SERIES: Type.Boolean({
    default: true,
    description:
      "send the kit's per-second series, markers and audience aggregate to the hub, sealed to its telemetry key (0: not at all)",
  }),
  POPKIT_SYNC_SERIES_INTERVAL_MS: Int(
    10_000,
    100,
    'how often due seconds are sealed and queued on the telemetry lane',
  ),
  POPKIT_SYNC_SERIES_SETTLE_S: Int(10, 0, 'a second ships once it is this old (the recorder has written it)'),
  // POPKIT_AUDIENCE_MIN_GROUP (k) is in BaseConfig: checkout, sync and the report use one k
  // product images from the hub (services/sync/media-fetch.ts, docs/architecture.md#product-media)
  POPKIT_HUB_HTTP_URL: Type.String({
    pattern: '^https?://',
    default: 'http://127.0.0.1:8090',
    description:
      "the hub's HTTP API (the same variable kitd reads): sync fetches product images from its /v1/images",
  }),
  POPKIT_MEDIA_CACHE_MB: Int(
    256,
    0,
    'disk budget of the product images sync keeps in <data>/product-media (0: fetch none)',
  ),
  POPKIT_MEDIA_FETCH_INTERVAL_MS: Int(
    5_000,
    100,
    'how often sync looks for catalog images not yet on disk (one at a time, never while checkout is busy)',
  ),
});
export type SyncConfigT = Static<typeof SyncConfig>;
