// Environment configuration: one TypeBox schema per process, composed from per-service parts,
// validated once at start. A bad value stops the process with one line per problem.
import os from 'node:os';
import path from 'node:path';
import { type Static, type TObject, type TProperties, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ID_LEVEL } from './contracts/common.ts';
import { DEFAULT_LOCAL_BUS_PREFIX, LOCAL_BUS_PREFIX_PATTERN } from './contracts/local-bus.ts';
import { KitError } from './errors.ts';
import { onBalena } from './secrets.ts';

export const BOARDS = [
  'auto',
  'pi4',
  'pi5',
  'pi-zero-2w',
  'jetson-orin-nano',
  'jetson-orin-nx',
  'sim',
] as const;

/**
 * Marks a variable as a secret: its value is never printed, not in a config error, not in
 * `popkit config` (docs/security.md). Spread into the schema options: `{ ...SECRET, minLength: 16 }`.
 */
export const SECRET = { secret: true } as const;

export function isSecretVar(schema: TObject, key: string): boolean {
  return (schema.properties[key] as { secret?: unknown } | undefined)?.secret === true;
}

/** How a config error shows a value: secrets by length only (a pasted token must not reach the logs). */
export function shownValue(schema: TObject, key: string, raw: string | undefined): string {
  if (raw === undefined) return '(unset)';
  if (isSecretVar(schema, key)) return `(secret, ${raw.length} characters, not shown)`;
  return JSON.stringify(raw);
}

const Port = (def: number, description: string) =>
  Type.Integer({ minimum: 1, maximum: 65535, default: def, description });

/** What every process reads. */
/** POPKIT_HUB_URL: one broker URL, or several separated by commas (no spaces, no empty entries) */
export const HUB_URL_LIST_PATTERN =
  '^(mqtts?|wss?|tcp)://[^,\\s\\x00-\\x1f\\x7f]+(,(mqtts?|wss?|tcp)://[^,\\s\\x00-\\x1f\\x7f]+)*$';

/** The broker URLs of POPKIT_HUB_URL, in the order sync tries them. */
export function hubUrlList(value: string): string[] {
  return value.split(',');
}

export const BaseConfig = Type.Object({
  POPKIT_KIT_ID: Type.Optional(
    Type.String({
      pattern: ID_LEVEL,
      description: "the kit's identity on the hub",
    }),
  ),
  BALENA_DEVICE_UUID: Type.Optional(Type.String()),
  POPKIT_BOARD: Type.Union(
    BOARDS.map((b) => Type.Literal(b)),
    { default: 'auto', description: 'board profile' },
  ),
  POPKIT_DATA_DIR: Type.Optional(Type.String({ minLength: 1, description: 'LMDB, keys, HLS output' })),
  POPKIT_HOST_ROOT: Type.Optional(Type.String({ minLength: 1 })),
  POPKIT_CHROMIUM: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 4096,
      pattern: '^/[^\\u0000]*$',
      description:
        "Chromium that prints the post-event report's PDF (popkit report, the hub); default /usr/bin/chromium",
    }),
  ),
  POPKIT_LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  POPKIT_HUB_URL: Type.Optional(
    Type.String({
      pattern: HUB_URL_LIST_PATTERN,
      maxLength: 4096,
      description:
        "the hub's MQTT URL; or a comma-separated list of the URLs of one clustered broker's nodes (the NATS cluster's MQTT gateways, docs/scaling.md#a-nats-cluster): sync connects to the first and moves to the next one each time a connection fails or drops",
    }),
  ),
  POPKIT_RUNTIME: Type.Optional(
    Type.Union([Type.Literal('dist'), Type.Literal('source')], {
      description:
        'dist: run the compiled dist/ with plain node (npm start, the image); else the TypeScript via tsx',
    }),
  ),
  POPKIT_LOCAL_BUS_URL: Type.Optional(
    Type.String({ pattern: '^(mqtts?|wss?|tcp)://', description: 'MQTT local bus' }),
  ),
  // every process that makes an audience aggregate (checkout, sync's telemetry, the report) uses the same k
  POPKIT_AUDIENCE_MIN_GROUP: Type.Integer({
    minimum: 2,
    maximum: 1000,
    default: 5,
    description: 'k: audience figures leave the kit only as aggregates over at least this many people',
  }),
  POPKIT_LOCAL_BUS_PREFIX: Type.String({
    default: DEFAULT_LOCAL_BUS_PREFIX,
    pattern: LOCAL_BUS_PREFIX_PATTERN,
    description: 'topic prefix of the local bus',
  }),
});

/** How the kit's services run (`popkit up`, and the compose variant of a device type: docs/fleet.md). */
export const KIT_MODES = ['split', 'combined'] as const;
export type KitMode = (typeof KIT_MODES)[number];
export const KitModeConfig = Type.Object({
  POPKIT_KIT_MODE: Type.Optional(
    Type.Union(
      KIT_MODES.map((m) => Type.Literal(m)),
      {
        description:
          "split: checkout, sync and kitd each a process (a container on a board); combined: one process with each a worker thread, restarted alone when it fails (`popkit kit`), for boards of 512 MB such as the Pi Zero 2 W. Default: the board profile's (combined on the Pi Zero 2 W, split elsewhere). Media is always a process of its own",
      },
    ),
  ),
  POPKIT_KIT_WORKER_HEAP_MB: Type.Optional(
    Type.Integer({
      minimum: 16,
      maximum: 4096,
      description:
        "combined mode: the old-generation heap limit of each part's worker thread (MB); a part that outgrows it ends and is restarted alone. Unset: V8's default",
    }),
  ),
  POPKIT_KIT_WORKER_YOUNG_MB: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 256,
      description:
        "combined mode: the young-generation size of each part's worker thread (MB; V8's resourceLimits.maxYoungGenerationSizeMb): smaller holds less memory between collections and collects more often. Unset: V8's default",
    }),
  ),
});

/** Private, unique-local and link-local ranges: a phone on the venue's Wi-Fi. */
export const AUDIENCE_VENUE_NETS_DEFAULT =
  '10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,fc00::/7,fe80::/10';

/** What checkout reads (popkit checkout, popkit up). */
export const CheckoutConfig = Type.Object({
  POPKIT_HTTP_PORT: Port(8080, 'checkout API and dashboard'),
  POPKIT_HTTP_HOST: Type.String({ default: '0.0.0.0' }),
  POPKIT_ADMIN_TOKEN: Type.Optional(
    Type.String({ ...SECRET, minLength: 16, description: 'bearer token for staff endpoints' }),
  ),
  POPKIT_TOKEN_KEY: Type.Optional(
    Type.String({
      ...SECRET,
      pattern: '^[0-9a-fA-F]{64}$',
      description: 'AES-256 device key for payment tokens, 64 hex chars',
    }),
  ),
  POPKIT_TOKEN_TTL_S: Type.Integer({
    minimum: 60,
    default: 24 * 3600,
    description: 'payment token lifetime',
  }),
  POPKIT_RISK_MAX_ORDER_CENTS: Type.Integer({ minimum: 0, default: 50_000 }),
  POPKIT_RISK_MAX_UNSYNCED_CENTS: Type.Integer({ minimum: 0, default: 500_000 }),
  POPKIT_RISK_MAX_UNSYNCED_ORDERS: Type.Integer({ minimum: 0, default: 2_000 }),
  POPKIT_RISK_MAX_UNSYNCED_AGE_S: Type.Integer({ minimum: 0, default: 6 * 3600 }),
  POPKIT_BUYER_RATE_PER_MIN: Type.Integer({
    minimum: 1,
    default: 60,
    description:
      'orders per minute per client address without credentials (buyers share the venue NAT: keep it generous)',
  }),
  POPKIT_BUYER_MAX_ORDER_CENTS: Type.Integer({
    minimum: 0,
    default: 20_000,
    description: 'largest order a buyer without credentials may place (card only)',
  }),
  POPKIT_CASH_MAX_ORDER_CENTS: Type.Integer({
    minimum: 0,
    default: 100_000,
    description: 'largest cash order (any role)',
  }),
  // admission and sale windows (docs/drops.md)
  POPKIT_HTTP_BACKLOG: Type.Integer({
    minimum: 16,
    maximum: 65_535,
    default: 4096,
    description:
      'connections the kernel queues for checkout before it accepts them (capped by net.core.somaxconn): a drop opens thousands in a second',
  }),
  POPKIT_ADMISSION_CONCURRENCY: Type.Integer({
    minimum: 0,
    maximum: 10_000,
    default: 64,
    description:
      'orders and reservations processed at once; the rest wait in arrival order (0: admission off, every request goes straight in)',
  }),
  POPKIT_ADMISSION_QUEUE_MAX: Type.Integer({
    minimum: 0,
    maximum: 1_000_000,
    default: 10_000,
    description: 'requests waiting for admission at most; one more gets 503 ADMISSION_FULL with Retry-After',
  }),
  POPKIT_ADMISSION_MAX_WAIT_MS: Type.Integer({
    minimum: 1,
    maximum: 600_000,
    default: 5_000,
    description: 'longest wait in the admission line before 503 ADMISSION_FULL (nothing written)',
  }),
  // trusted time
  POPKIT_CLOCK_TRUST: Type.Union([Type.Literal('sources'), Type.Literal('assume')], {
    default: 'sources',
    description:
      'sources: time-boxed sales need a clock NTP, an RTC, the hub or staff vouched for this boot; assume: trust the wall clock as is (development and CI only)',
  }),
  POPKIT_CLOCK_JUMP_TOLERANCE_MS: Type.Integer({
    minimum: 100,
    maximum: 3_600_000,
    default: 2_000,
    description: 'a wall-clock move against the monotonic clock beyond this drops the clock trust',
  }),
  POPKIT_CLOCK_HUB_AGREE_S: Type.Integer({
    minimum: 1,
    maximum: 86_400,
    default: 120,
    description:
      "a hub catalog whose signed issue time is within this of its arrival vouches for the kit's clock",
  }),
  POPKIT_CLOCK_NTP_POLL_S: Type.Integer({
    minimum: 1,
    maximum: 3_600,
    default: 15,
    description: "how often checkout reads the host's NTP sync state",
  }),
  // reservations
  POPKIT_RESERVATION_TTL_S: Type.Integer({
    minimum: 10,
    maximum: 3600,
    default: 120,
    description: 'how long a reservation (cart hold) keeps its units before they return to stock',
  }),
  POPKIT_RESERVATION_MAX_PER_ADDRESS: Type.Integer({
    minimum: 1,
    default: 50,
    description:
      'reservations one client address without credentials may hold at once (the venue NAT is shared: keep it generous)',
  }),
  // loyalty
  POPKIT_HUB_PUBLIC_KEY: Type.Optional(
    Type.String({
      minLength: 40,
      description:
        "the hub's ed25519 key (the one sync verifies catalogs with): checkout verifies loyalty passes with it",
    }),
  ),
  POPKIT_HUB_PUBLIC_KEY_FILE: Type.Optional(
    Type.String({ minLength: 1, description: 'file holding that key' }),
  ),
  POPKIT_LOYALTY_KIT_USES_MAX: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 100,
      description:
        "uses of one loyalty pass per event on this kit at most, when lower than the pass's own (docs/drops.md#loyalty)",
    }),
  ),
  POPKIT_LOYALTY_CHECK_RATE_PER_MIN: Type.Integer({
    minimum: 1,
    default: 30,
    description: 'loyalty pass previews per minute per client address without credentials',
  }),
  // drain-proofing: devices, online authorization, offline allowance (docs/security.md)
  POPKIT_DEVICE_ISSUE_PER_MIN: Type.Integer({
    minimum: 1,
    default: 6,
    description:
      'buyer device tokens issued per minute per client address (each phone needs one, once; a script minting devices multiplies its shares)',
  }),
  POPKIT_DEVICE_ORDERS_PER_MIN: Type.Integer({
    minimum: 1,
    default: 10,
    description: 'orders per minute per buyer device (beside the per-address limit)',
  }),
  POPKIT_BUYER_OFFLINE_ALLOWANCE: Type.Integer({
    minimum: 0,
    default: 1,
    description:
      'scarce card orders per buyer device per event accepted offline without a hold (the rest are held until paid)',
  }),
  POPKIT_HOLD_TTL_S: Type.Integer({
    minimum: 60,
    default: 3600,
    description:
      'how long a held order waits for payment without a pickup slot (else: to the end of its slot)',
  }),
  POPKIT_AUTH_BUDGET_MS: Type.Integer({
    minimum: 50,
    maximum: 10_000,
    default: 800,
    description:
      'latency budget of the online card authorization through the hub, before the offline rule applies',
  }),
  // audience (services/checkout/audience, docs/security.md#audience)
  POPKIT_AUDIENCE_LEAVE_S: Type.Integer({
    minimum: 5,
    maximum: 600,
    default: 30,
    description:
      'a viewer stops watching when no playlist, segment or part request of theirs came for this long (above 3 target durations: an LL-HLS blocking reload is held that long)',
  }),
  POPKIT_AUDIENCE_VENUE_NETS: Type.String({
    default: AUDIENCE_VENUE_NETS_DEFAULT,
    maxLength: 2000,
    pattern: '^[0-9A-Fa-f:./]+(,[0-9A-Fa-f:./]+)*$',
    description: 'client address ranges (CIDR, comma-separated) counted as in the venue; the rest is remote',
  }),
  POPKIT_AUDIENCE_KEY_MAX_H: Type.Integer({
    minimum: 1,
    maximum: 168,
    default: 24,
    description:
      'the viewer key (an HMAC key per event) is replaced at each event start or switch and after this many hours at the latest',
  }),
  POPKIT_AUDIENCE_TTL_H: Type.Integer({
    minimum: 1,
    maximum: 8760,
    default: 72,
    description: "viewer records and their consent links are deleted this long after their event's end",
  }),
  POPKIT_CONSENT_RATE_PER_MIN: Type.Integer({
    minimum: 1,
    default: 30,
    description: 'consent answers (POST/DELETE /v1/consent) per minute per client address',
  }),
  POPKIT_STORE_RESERVE_MB: Type.Integer({
    minimum: 0,
    default: 16,
    description: 'free space kept on the data volume; orders get 507 STORE_FULL below it',
  }),
  // live series (docs/architecture.md#live-series)
  POPKIT_SERIES: Type.Integer({
    minimum: 0,
    maximum: 1,
    default: 1,
    description: 'record the per-second series (GET /v1/series, the dashboard chart): 1 on, 0 off',
  }),
  POPKIT_SERIES_RETENTION_H: Type.Integer({
    minimum: 1,
    maximum: 24 * 90,
    default: 72,
    description: 'hours of per-second series and markers kept in the kit store; older seconds are swept',
  }),
  // power cuts (docs/power-cuts.md)
  POPKIT_DEVICE_KEY_LOST: Type.Union([Type.Literal('refuse'), Type.Literal('replace')], {
    default: 'refuse',
    description:
      "keys/device.key missing, empty or torn while buyer devices are recorded: refuse device tokens (DEVICE_KEY_LOST) until it is restored, or replace it (phones' old tokens then fail and the buyer page takes new ones; shares bought under old tokens are not counted for the new ones)",
  }),
  POPKIT_TOKEN_KEY_LOST: Type.Union([Type.Literal('refuse'), Type.Literal('replace')], {
    default: 'refuse',
    description:
      'keys/token.key missing, empty or torn while sealed card tokens exist: refuse card sales (CARD_UNAVAILABLE) until it is restored, or replace it (card sales resume; the card orders sealed under the lost key cannot be charged: sync sends them as invalid tokens and they show as declined, collect another way)',
  }),
});

export type BaseConfigT = Static<typeof BaseConfig>;
export type CheckoutConfigT = Static<typeof CheckoutConfig>;

export class ConfigError extends KitError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n${problems.join('\n')}`);
    this.problems = problems;
  }
}

export function composeConfig<A extends TProperties, B extends TProperties>(a: TObject<A>, b: TObject<B>) {
  return Type.Object({ ...a.properties, ...b.properties });
}

/** an integer variable's text: digits, an optional minus sign, nothing else */
const INTEGER_TEXT = /^-?[0-9]{1,16}$/;
/** a number variable's text: a plain decimal (no exponent, no hex, no `Infinity`) */
const NUMBER_TEXT = /^-?[0-9]{1,16}(\.[0-9]{1,16})?$/;

/**
 * Validate the process environment against `schema`. Unknown variables are ignored (the environment
 * carries much else); known ones are converted from strings, defaulted and checked.
 */
export function loadConfig<T extends TObject>(schema: T, env: NodeJS.ProcessEnv = process.env): Static<T> {
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const raw = env[key];
    if (raw !== undefined && raw !== '') picked[key] = raw;
  }
  const problems: string[] = [];
  // TypeBox's Convert reads a number out of anything numeric-looking ('2.5' became 2, '1e400' became 1):
  // a number variable is written as one, whole for an integer, or it is refused here, by name
  for (const [key, raw] of Object.entries(picked)) {
    const type = (schema.properties[key] as { type?: unknown } | undefined)?.type;
    const wrong =
      type === 'integer'
        ? !INTEGER_TEXT.test(raw as string) || !Number.isSafeInteger(Number(raw))
        : type === 'number' && (!NUMBER_TEXT.test(raw as string) || !Number.isFinite(Number(raw)));
    if (wrong) {
      problems.push(
        `${key}=${shownValue(schema, key, env[key])}: Expected ${type === 'integer' ? 'a whole number' : 'a number'}`,
      );
      delete picked[key];
    }
  }
  const converted = Value.Convert(schema, Value.Default(schema, picked)) as Record<string, unknown>;
  for (const err of Value.Errors(schema, converted)) {
    const key = err.path.replace(/^\//, '');
    const desc = (schema.properties[key] as { description?: string } | undefined)?.description;
    problems.push(`${key}=${shownValue(schema, key, env[key])}: ${err.message}${desc ? ` (${desc})` : ''}`);
  }
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  return converted as Static<T>;
}

/** POPKIT_KIT_ID, else BALENA_DEVICE_UUID, else the host name (docs/contracts.md#environment). */
export function resolveKitId(cfg: BaseConfigT): string {
  const raw = cfg.POPKIT_KIT_ID ?? cfg.BALENA_DEVICE_UUID ?? os.hostname();
  return raw.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64) || 'kit';
}

/** `/data` on a board (balena mounts the data volume there), `./.popkit` in a checkout. */
export function resolveDataDir(cfg: BaseConfigT, cwd = process.cwd()): string {
  if (cfg.POPKIT_DATA_DIR) return path.resolve(cwd, cfg.POPKIT_DATA_DIR);
  if (onBalena()) return '/data';
  return path.resolve(cwd, '.popkit');
}
