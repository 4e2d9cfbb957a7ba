// Coded errors shared by every process, and their mapping to HTTP status in one place: the one error
// table. `ErrorCode` is closed: a code that is not in the table does not compile
// (docs/contracts.md#error-envelope-and-codes).

export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  VALIDATION: 400,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNKNOWN_SKU: 400,
  SOLD_OUT: 409,
  IDEMPOTENCY_MISMATCH: 409,
  CONFLICT: 409,
  EVENT_STATE: 409,
  RISK_LIMIT: 422,
  TOKEN_EXPIRED: 422,
  TOKEN_INVALID: 422,
  LOCKED: 423,
  TOO_MANY_REQUESTS: 429,
  NOT_READY: 503,
  STORE_FULL: 507,
  CONFIG_INVALID: 500,
  // secrets on disk (core/secrets.ts): a key file others may read; card sales without the token key
  SECRET_INSECURE: 500,
  CARD_UNAVAILABLE: 503,
  INTERNAL: 500,
  // hardware faults: never HTTP-facing as 500s, surfaced as status
  HW_I2C_NACK: 502,
  HW_SERIAL_CLOSED: 502,
  HW_STALE: 502,
  HW_MODBUS_EXCEPTION: 502,
  HW_GPIO_UNSUPPORTED: 503,
  HW_UNAVAILABLE: 503,
  BROKER_UNAVAILABLE: 503,
  MEDIA_UNAVAILABLE: 503,
  // hub link and hub (issue 3)
  GATEWAY_UNAVAILABLE: 503,
  CATALOG_MALFORMED: 400,
  CATALOG_FORGED: 400,
  CATALOG_WRONG_EVENT: 400,
  CATALOG_STALE: 409,
  CATALOG_UNVERIFIABLE: 400,
  // a signed catalog of an event the kit left, or not above one it already accepted (a replay)
  CATALOG_REPLAY: 409,
  // shared stock across an event's kits (docs/shared-stock.md): the hub's signed allocation statements
  ALLOCATION_MALFORMED: 400,
  ALLOCATION_FORGED: 400,
  ALLOCATION_WRONG_KIT: 400,
  ALLOCATION_STALE: 409,
  // the creator asked for more units than the event's stock leaves unallocated
  ALLOCATION_OVER_STOCK: 409,
  // a catalog whose stock of a SKU is below what the event's kits already hold of it
  STOCK_BELOW_ALLOCATED: 409,
  // units moved between an event's kits over the venue LAN (docs/shared-stock.md#lan-transfers)
  LAN_MALFORMED: 400,
  LAN_FORGED: 403,
  LAN_UNKNOWN_PEER: 403,
  LAN_WRONG_KIT: 400,
  LAN_NOT_SHARED: 409,
  // drops (docs/drops.md): sale windows and trusted time, admission, reservations, pickup, loyalty
  NOT_ON_SALE_YET: 409,
  SALE_ENDED: 410,
  CLOCK_UNTRUSTED: 503,
  ADMISSION_FULL: 503,
  RESERVATION_EXPIRED: 410,
  RESERVATION_MISMATCH: 409,
  RESERVATION_USED: 409,
  SLOT_FULL: 409,
  ALREADY_PICKED_UP: 409,
  NOT_PAID: 409,
  PASS_INVALID: 400,
  PASS_FORGED: 400,
  PASS_EXPIRED: 422,
  PASS_OUT_OF_SCOPE: 422,
  PASS_USED: 409,
  // drain-proofing (docs/security.md#drain-proofing): buyer devices and card checks before the answer
  DEVICE_INVALID: 400,
  DEVICE_SHARE_TAKEN: 409,
  // power cuts (docs/power-cuts.md): the device key is lost while buyer device tokens depend on it
  DEVICE_KEY_LOST: 503,
  PAYMENT_DECLINED: 402,
  // kitd (firmware/)
  LIFECYCLE_TRANSITION: 409,
  SUPERVISOR_UNAVAILABLE: 503,
  SUPERVISOR_AUTH: 502,
  SUPERVISOR_ERROR: 502,
  // product media (docs/contracts.md#product-media): hub uploads, the kit's cache
  IMAGE_INVALID: 422,
  IMAGE_TOO_LARGE: 413,
  IMAGE_NOT_FOUND: 404,
  MEDIA_NOT_CACHED: 404,
  MEDIA_HASH_MISMATCH: 502,
  RANGE_NOT_SATISFIABLE: 416,
  // enrollment with a one-time code (docs/fleet.md#enrollment-at-first-boot): unknown or wrong code,
  // a replay of a used one, past its expiry, or burnt by too many wrong attempts
  ENROLL_CODE_INVALID: 401,
  ENROLL_CODE_USED: 409,
  ENROLL_CODE_EXPIRED: 410,
  ENROLL_CODE_LOCKED: 429,
  // the hub's held-token key is missing, empty or torn while held tokens in the ledger depend on it
  HELD_TOKEN_KEY_LOST: 503,
  // sealed telemetry (core/telemetry-seal.ts): envelopes the hub cannot open, seal keys kits refuse
  SEAL_MALFORMED: 400,
  SEAL_UNKNOWN_KEY: 400,
  SEAL_OPEN_FAILED: 400,
  SEAL_KEY_MALFORMED: 400,
  SEAL_KEY_FORGED: 400,
  // a sealed telemetry batch that opens but is not a SeriesBatch of the kit whose topic carried it
  SERIES_BATCH_INVALID: 400,
  // hub ingest (dead-letter reasons): a kit's report of a LAN stock transfer that does not verify
  // (services/hub/shared-stock.ts, docs/shared-stock.md#lan-transfers-the-hubs-side)
  LAN_REPORT_MALFORMED: 400,
  LAN_REPORT_FORGED: 400,
  LAN_REPORT_UNKNOWN_KIT: 400,
  LAN_REPORT_MISMATCH: 400,
  LAN_REPORT_CONFLICT: 409,
  // the post-event report's PDF: no Chromium to print it with (docs/report.md)
  PDF_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_STATUS, code);
}

/** A code that arrived from elsewhere (another process's envelope): itself when known, else `fallback`. */
export function toErrorCode(code: unknown, fallback: ErrorCode): ErrorCode {
  return isErrorCode(code) ? code : fallback;
}

export class KitError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'KitError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toEnvelope(): { error: { code: string; message: string; details?: Record<string, unknown> } } {
    return {
      error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) },
    };
  }
}

export function isKitError(err: unknown): err is KitError {
  return err instanceof KitError;
}
