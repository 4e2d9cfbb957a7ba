// The hub's environment (popkit hub). Composed with BaseConfig for POPKIT_DATA_DIR and logging.
import { type Static, Type } from '@sinclair/typebox';
import { HUB_URL_LIST_PATTERN, SECRET } from '../../core/config.ts';
import { MQTT_VERSIONS } from '../../core/contracts/hub-wire.ts';
import { NATS_URL_LIST_PATTERN } from './jetstream-subjects.ts';

export const HubConfig = Type.Object({
  POPKIT_HUB_BROKER_URL: Type.String({
    pattern: HUB_URL_LIST_PATTERN,
    maxLength: 4096,
    default: 'mqtt://127.0.0.1:1883',
    description:
      "the MQTT broker the kits publish to; or a comma-separated list of the URLs of one clustered broker's nodes (a NATS cluster's MQTT gateways): each reconnect goes to the next one",
  }),
  POPKIT_HUB_MQTT_VERSION: Type.Union(
    MQTT_VERSIONS.map((v) => Type.Literal(v)),
    {
      default: '5',
      description:
        "the MQTT version of the worker's broker connections: 5 (Mosquitto) or 3.1.1 for a broker that speaks nothing newer (the NATS server's MQTT gateway). Either way the worker answers an online card check in the form it was asked in (MQTT 5 properties, or the 3.1.1 kits' reply in the payload); a 3.1.1 worker hears no MQTT 5 properties, so its kits must run POPKIT_SYNC_MQTT_VERSION=3.1.1 too (docs/scaling.md#mqtt-311)",
    },
  ),
  POPKIT_HUB_BROKER_USERNAME: Type.Optional(Type.String({ minLength: 1 })),
  POPKIT_HUB_BROKER_PASSWORD: Type.Optional(Type.String({ ...SECRET, minLength: 1 })),
  POPKIT_HUB_BROKER_CA_FILE: Type.Optional(
    Type.String({ minLength: 1, description: 'CA bundle for mqtts://' }),
  ),
  DATABASE_URL: Type.Optional(
    Type.String({
      ...SECRET,
      pattern: '^postgres(ql)?://',
      description: "the hub's PostgreSQL; unset: embedded PGlite",
    }),
  ),
  POPKIT_HUB_READ_DATABASE_URL: Type.Optional(
    Type.String({
      ...SECRET,
      pattern: '^postgres(ql)?://',
      description:
        "a streaming replica of DATABASE_URL that answers the hub's read-only paths (fleet view, orders, reports, series; docs/scaling.md#a-read-replica); unset: the primary answers them",
    }),
  ),
  POPKIT_HUB_READ_MAX_LAG_S: Type.Number({
    minimum: 0.1,
    maximum: 86_400,
    default: 10,
    description:
      'while the read replica is further behind the primary than this (or down), its reads go to the primary (logged, counted in popkit_hub_reads_total)',
  }),
  POPKIT_HUB_PGLITE_TEMPLATE: Type.Optional(
    Type.String({
      maxLength: 4096,
      pattern: '^(none|/[^\\u0000]*)$',
      description:
        "embedded PGlite only: the prebuilt empty database (an absolute path) copied in at the hub's first start instead of running initdb; `none`: always initdb; unset: the one `npm run build` puts in dist/ (docs/architecture.md#the-embedded-hub)",
    }),
  ),
  POPKIT_HUB_DB_SCHEMA: Type.String({
    pattern: '^[a-z_][a-z0-9_]{0,62}$',
    default: 'popkit',
    description: 'PostgreSQL schema of the ledger',
  }),
  POPKIT_HUB_DB_POOL: Type.Integer({ minimum: 1, maximum: 100, default: 4 }),
  POPKIT_HUB_HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8090 }),
  POPKIT_HUB_HTTP_HOST: Type.String({ default: '0.0.0.0' }),
  POPKIT_HUB_DYNSEC_URL: Type.Optional(
    Type.String({
      pattern: '^(mqtts?|wss?|tcp)://',
      description:
        'kit enrollment (POST /v1/kits/enroll): the broker whose dynamic security plugin the hub administers; unset: POPKIT_HUB_BROKER_URL',
    }),
  ),
  POPKIT_HUB_DYNSEC_USERNAME: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z0-9_.-]{1,64}$',
      description:
        'kit enrollment: the dynamic security admin user (mosquitto_ctrl dynsec init); unset: the enrollment routes answer 503',
    }),
  ),
  POPKIT_HUB_DYNSEC_PASSWORD: Type.Optional(
    Type.String({
      ...SECRET,
      minLength: 1,
      description: "kit enrollment: the dynamic security admin's password",
    }),
  ),
  POPKIT_HUB_ADMIN_TOKEN: Type.Optional(
    Type.String({ ...SECRET, minLength: 16, description: 'bearer token for the hub API' }),
  ),
  POPKIT_HUB_WORKER_ID: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z0-9_.-]{1,64}$',
      description: 'stable MQTT client id suffix of this worker',
    }),
  ),
  POPKIT_HUB_SHARED_SUBSCRIPTION: Type.Union(
    [Type.Literal('auto'), Type.Literal('on'), Type.Literal('off')],
    {
      default: 'auto',
      description:
        'auto: probe the broker for $share support (aedes has none); off: plain subscription, one worker',
    },
  ),
  POPKIT_HUB_SHARE_GROUP: Type.String({
    pattern: '^[A-Za-z0-9_-]{1,64}$',
    default: 'popkit-hub',
    description: 'shared-subscription group of the workers of one hub',
  }),
  POPKIT_HUB_INGEST: Type.Union([Type.Literal('mqtt'), Type.Literal('jetstream')], {
    default: 'mqtt',
    description:
      "how the workers receive the kits' batches and card checks: mqtt (a subscription on POPKIT_HUB_BROKER_URL, shared with `$share` where the broker has it) or jetstream (a NATS cluster: batches from a replicated work-queue stream through one durable pull consumer shared by every worker, card checks through a core NATS queue group; acks, catalogs and answers still go out over MQTT; docs/scaling.md#a-nats-cluster)",
  }),
  POPKIT_HUB_NATS_URL: Type.String({
    pattern: NATS_URL_LIST_PATTERN,
    maxLength: 4096,
    default: 'nats://127.0.0.1:4222',
    description:
      "jetstream ingest: the NATS cluster's client URLs, comma-separated (the client moves to another one when its node goes)",
  }),
  POPKIT_HUB_NATS_USER: Type.Optional(
    Type.String({ pattern: '^[^\\s\\u0000]{1,256}$', description: 'jetstream ingest: NATS user' }),
  ),
  POPKIT_HUB_NATS_PASSWORD: Type.Optional(
    Type.String({ ...SECRET, minLength: 1, maxLength: 1024, description: 'jetstream ingest: NATS password' }),
  ),
  POPKIT_HUB_NATS_CA_FILE: Type.Optional(
    Type.String({ minLength: 1, description: 'jetstream ingest: CA bundle for tls:// NATS URLs' }),
  ),
  POPKIT_HUB_JS_STREAM: Type.String({
    pattern: '^[A-Za-z0-9_-]{1,64}$',
    default: 'POPKIT_KITS',
    description:
      "jetstream ingest: the work-queue stream of the kits' orders, telemetry and receipts (created by the first worker if absent)",
  }),
  POPKIT_HUB_JS_CONSUMER: Type.String({
    pattern: '^[A-Za-z0-9_-]{1,64}$',
    default: 'popkit-hub',
    description: 'jetstream ingest: the durable pull consumer every worker of the hub shares',
  }),
  POPKIT_HUB_JS_REPLICAS: Type.Integer({
    minimum: 1,
    maximum: 5,
    default: 3,
    description:
      'jetstream ingest: replicas of the stream and its consumer (3: one node can die with nothing lost; at most the nodes in the cluster)',
  }),
  POPKIT_HUB_JS_ACK_WAIT_S: Type.Integer({
    minimum: 1,
    maximum: 3600,
    default: 30,
    description:
      'jetstream ingest: a message a worker took and did not ack in this long (the worker died) goes to another worker',
  }),
  POPKIT_HUB_JS_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 256,
    default: 4,
    description:
      "jetstream ingest: kits whose messages one worker commits at the same time (one kit's messages one after the other, in order)",
  }),
  POPKIT_HUB_GATEWAY: Type.Union([Type.Literal('sandbox')], {
    default: 'sandbox',
    description: 'payment gateway adapter',
  }),
  POPKIT_HUB_GATEWAY_RETRY_S: Type.Integer({ minimum: 1, default: 30 }),
  POPKIT_HUB_GATEWAY_CHECK_CACHE_S: Type.Integer({
    minimum: 0,
    maximum: 3600,
    default: 30,
    description: 'GET /v1/gateway reuses one answer of the gateway this long (0: ask every time)',
  }),
  POPKIT_HUB_VERDICT_RESEND_S: Type.Integer({
    minimum: 1,
    default: 60,
    description:
      'resend a confirmed verdict (settled/declined after forwarded) not yet receipted by its kit this often',
  }),
  POPKIT_HUB_KIT_BATCH_MAX: Type.Integer({
    minimum: 1,
    maximum: 5000,
    default: 5000,
    description:
      'entries a kit may send in one batch; a bigger batch is dropped unacked (counted quota_entries)',
  }),
  POPKIT_HUB_KIT_RATE_PER_S: Type.Number({
    minimum: 0.1,
    default: 50,
    description:
      'messages per second one kit may send a hub worker, sustained (token bucket); a backlog drains at up to 500 entries a message, so 50 is 25,000 orders/s, above what one worker stores',
  }),
  POPKIT_HUB_KIT_BURST: Type.Integer({
    minimum: 1,
    default: 100,
    description:
      'messages one kit may send a hub worker in a burst above its rate; over it they are dropped unacked (quota_rate)',
  }),
  POPKIT_HUB_GATEWAY_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 256,
    default: 8,
    description: 'token exchanges a hub worker has under way at the gateway at most',
  }),
  POPKIT_GATEWAY_SANDBOX_JOURNAL: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'sandbox gateway only: a file that keeps its charges across restarts (one JSON line per exchange)',
    }),
  ),
  POPKIT_HUB_SANDBOX_CARDS: Type.Union([Type.Literal('any'), Type.Literal('strict')], {
    default: 'any',
    description:
      'sandbox gateway only: strict approves only tokens the sandbox issued (POST /v1/sandbox/tokens), as a real provider does; any approves every token without decline/unavailable in it',
  }),
  POPKIT_HUB_SANDBOX_CARD_KEY: Type.Optional(
    Type.String({
      ...SECRET,
      pattern: '^[0-9a-fA-F]{64}$',
      description:
        "sandbox gateway only: the key its issued tokens are checked with (the same on every worker); unset: one in the hub's data dir",
    }),
  ),
  POPKIT_HUB_AUTHORIZE_RATE_PER_S: Type.Number({
    minimum: 0.1,
    default: 100,
    description:
      'online card checks (kits/{kitId}/authorize) one kit may ask a hub worker per second, sustained; over it the answer is unavailable (the kit falls back to its offline rule)',
  }),
  POPKIT_HUB_AUTHORIZE_BURST: Type.Integer({
    minimum: 1,
    default: 400,
    description: 'online card checks one kit may ask in a burst above that rate (a drop opening)',
  }),
  POPKIT_HUB_AUTHORIZE_ORPHAN_S: Type.Integer({
    minimum: 1,
    default: 900,
    description:
      'an approved online authorization whose order has not reached the ledger after this long is reported (log, GET /v1/authorizations/orphans) for a void',
  }),
  // shared stock across an event's kits (services/hub/shared-stock.ts, docs/shared-stock.md)
  POPKIT_HUB_REBALANCE_S: Type.Integer({
    minimum: 0,
    maximum: 86_400,
    default: 0,
    description:
      'run the shared-stock rebalance rule on every event with allocations this often (seconds); 0: only when the creator asks (POST /v1/events/:eventId/rebalance)',
  }),
  POPKIT_HUB_REBALANCE_BELOW_PERCENT: Type.Integer({
    minimum: 1,
    maximum: 99,
    default: 20,
    description:
      'the timed rebalance gives units to a kit with less than this percentage of its allocation unsold',
  }),
  // alerts (services/hub/alerts.ts, docs/alerts.md)
  POPKIT_HUB_ALERT_INTERVAL_S: Type.Integer({
    minimum: 1,
    maximum: 3600,
    default: 30,
    description:
      'how often the alert evaluator runs (one hub worker at a time evaluates, under a database lock)',
  }),
  POPKIT_HUB_ALERT_SILENT_S: Type.Integer({
    minimum: 1,
    maximum: 86_400,
    default: 300,
    description: 'kit_silent: a kit whose event is live and that has not been heard from for this long',
  }),
  POPKIT_HUB_ALERT_BATTERY_PCT: Type.Number({
    minimum: 0,
    maximum: 100,
    default: 10,
    description:
      "battery_critical: the kit's main battery at or below this charge (a fresh reading), or kitd's power policy at critical",
  }),
  POPKIT_HUB_ALERT_BACKLOG_AGE_S: Type.Integer({
    minimum: 1,
    default: 6 * 3600,
    description:
      "backlog_age: the kit's oldest unsynced order older than this (the kits' POPKIT_RISK_MAX_UNSYNCED_AGE_S, same default)",
  }),
  POPKIT_HUB_ALERT_SPIKE_WINDOW_S: Type.Integer({
    minimum: 1,
    maximum: 86_400,
    default: 300,
    description: 'decline_spike and reject_spike count orders in this trailing window',
  }),
  POPKIT_HUB_ALERT_DECLINES: Type.Integer({
    minimum: 1,
    default: 10,
    description: "decline_spike: this many of a kit's orders declined within the window",
  }),
  POPKIT_HUB_ALERT_REJECTS: Type.Integer({
    minimum: 1,
    default: 5,
    description:
      "reject_spike: this many of a kit's orders rejected by the hub (dead letters) within the window",
  }),
  POPKIT_HUB_ALERT_DROP_WINDOW_S: Type.Integer({
    minimum: 1,
    maximum: 86_400,
    default: 900,
    description:
      "clock_untrusted: a kit's clock untrusted while a sale window of its event opens within this much before or after now",
  }),
  POPKIT_HUB_ALERT_WEBHOOK_URL: Type.Optional(
    Type.String({
      // a secret: receivers (chat webhooks) often carry their credential in the URL
      ...SECRET,
      pattern: '^https?://',
      maxLength: 2048,
      description: 'alerts are POSTed here (signed, retried); unset: MQTT and the API only',
    }),
  ),
  POPKIT_HUB_ALERT_WEBHOOK_SECRET: Type.Optional(
    Type.String({
      ...SECRET,
      minLength: 16,
      maxLength: 512,
      description: 'HMAC-SHA256 key of the webhook signature (X-Popkit-Signature); required with the URL',
    }),
  ),
  POPKIT_HUB_ALERT_WEBHOOK_ATTEMPTS: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: 12,
    description: 'webhook attempts per alert change at most; then it is given up (last error kept)',
  }),
  POPKIT_HUB_ALERT_WEBHOOK_BACKOFF_MS: Type.Integer({
    minimum: 10,
    maximum: 3_600_000,
    default: 5_000,
    description: 'first retry delay of a failed webhook delivery, doubling each attempt up to one hour',
  }),
  POPKIT_HUB_ALERT_WEBHOOK_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 60_000,
    default: 10_000,
    description: 'one webhook attempt waits this long for a 2xx',
  }),
});
export type HubConfigT = Static<typeof HubConfig>;
