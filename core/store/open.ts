// The kit's one LMDB environment on the data volume, shared by checkout and sync (several processes
// may open it at once). Sub-databases and their value shapes are declared here, once; every read and
// write goes through the domain modules beside this file (catalog, orders, outbox, tokens, risk,
// event, declines), which own their invariants (docs/architecture.md#the-kit-store-lmdb).
//
// Durability: the environment is opened with overlappingSync off, so an awaited write or transaction
// resolves only after its commit is fsynced; concurrent transactions are batched by lmdb-js into one
// commit, which is where the throughput comes from (docs/architecture.md#durability). Inside a
// `transaction()` callback lmdb-js applies each put/remove at once, within the transaction; the
// promise it returns settles with the commit, which the caller awaits through the transaction, so
// those writes are marked `void` (Biome's noFloatingPromises is on).
import fs from 'node:fs';
import path from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import type { SeriesMarkerT, SeriesValuesT } from '../contracts/series.ts';
import { dataLayout } from '../data-dir.ts';
import { ensurePrivateDir, makePrivateFile, PRIVATE_FILE } from '../file-modes.ts';
import type { SealedToken } from '../token-vault.ts';

export interface CatalogItem {
  sku: string;
  name: string;
  priceCents: number;
  currency: string;
  /** limited "hero" drop items are marked so the dashboard can show them */
  hero?: boolean;
  maxPerOrder?: number;
  description?: string;
  imageUrl?: string;
  /** sha256 of each rendition (core/contracts/product-media.ts) */
  image?: { phone: string; screen: string };
  saleWindow?: SaleWindow;
  /** sold to buyers without credentials only against verified payment (docs/security.md#drain-proofing) */
  scarce?: boolean;
}

/** ISO 8601 instants; sales are open from startsAt (inclusive) to endsAt (exclusive). */
export interface SaleWindow {
  startsAt: string;
  endsAt: string;
}

/** A bundle as stored: its components always with quantities (the catalog's `skus` form is converted). */
export interface CatalogBundle {
  id: string;
  name: string;
  components: Array<{ sku: string; qty: number }>;
  priceCents: number;
  saleWindow?: SaleWindow;
  maxPerOrder?: number;
  hero?: boolean;
  scarce?: boolean;
  description?: string;
}

export interface PickupSlot {
  id: string;
  startsAt: string;
  endsAt: string;
  capacity: number;
  label?: string;
}

/** The catalog as stored (stock lives apart, in the stock sub-db). */
export interface StoredCatalog {
  version: number;
  eventId: string;
  currency: string;
  items: CatalogItem[];
  bundles: CatalogBundle[];
  pickupSlots: PickupSlot[];
  /** the creator whose event this is (loyalty pass scope) */
  creatorId?: string;
  /** where it came from: a staff PUT, `popkit catalog load`, or the hub (signed) */
  source: 'local' | 'hub';
  updatedAt: string;
  /** starting stock per SKU as this catalog gave it; a later version of the same event adds the difference */
  startStock: Record<string, number>;
  /** the stock is the event's, shared by its kits: this kit sells what the hub granted it (shared-stock.ts) */
  sharedStock?: boolean;
}

/** `rejected`: the hub could not store the order (dead letter); terminal, shown like a decline */
export type SyncState = 'pending' | 'forwarded' | 'settled' | 'declined' | 'rejected';

export interface OrderLine {
  /** a SKU, or a bundle's id when `components` is set */
  sku: string;
  name: string;
  qty: number;
  unitPriceCents: number;
  lineCents: number;
  /** a bundle line: what ONE bundle holds (stock moves by qty × each component) */
  components?: Array<{ sku: string; qty: number }>;
}

/**
 * `accepted`: sold. `held`: units taken but not yet paid for in a way the kit can trust (a scarce item
 * bought offline without credentials, docs/security.md#drain-proofing); confirmed (→ accepted) by a
 * settled payment or by staff at pickup, or released. `released`: a held order let go (declined,
 * expired or cancelled); its units went back to stock in the same transaction.
 */
export type OrderStatus = 'accepted' | 'held' | 'released';

export interface StoredOrder {
  id: string;
  kitId: string;
  eventId: string;
  catalogVersion: number;
  status: OrderStatus;
  syncState: SyncState;
  /** what the buyer pays: the sum of the lines less `discount` */
  totalCents: number;
  currency: string;
  lines: OrderLine[];
  payment: { method: 'cash' } | { method: 'token'; tokenHint: string; expiresAt: string };
  createdAt: string;
  idempotencyKey?: string;
  /** set by sync: when the hub acked the order, and its verdict */
  forwardedAt?: string;
  settledAt?: string;
  declineReason?: string;
  /** the sum of the lines before a discount (set only when there is a discount) */
  subtotalCents?: number;
  /** a loyalty pass applied in the order's own transaction */
  discount?: { passId: string; holder: string; cents: number };
  /** the reservation this order converted */
  reservationId?: string;
  /**
   * a pickup slot taken with the order, its short code, the slot's window as sold (the receipt shows
   * it) and, once handed over, when and by whom (a terminal id or `admin`): core/store/pickup.ts
   */
  pickup?: {
    slotId: string;
    code: string;
    startsAt?: string;
    endsAt?: string;
    pickedUpAt?: string;
    pickedUpBy?: string;
  };
  /** why and until when the order is held (status `held`), or why it was released */
  hold?: { reason: string; until?: string; releasedAt?: string; releaseReason?: string };
  /** the buyer device (signed device token's id) that placed it, for per-device shares */
  deviceId?: string;
  /** the hub authorized the card token before the answer (online path for scarce items) */
  authRef?: string;
}

/** Lanes drain highest priority first (lowest number); within a lane, oldest first (key order). */
export type OutboxKey = [lane: number, id: string];

export interface OutboxEntry {
  /** 'orderEvent': something that happened to an order after it was taken (body: OrderEventBody) */
  /** 'lanGrant': the signed receipt of units received over the LAN (body: LanGrantReportT, core/store/shared-stock.ts) */
  /** 'stockRelease': units released to the hub (body: StockReleaseT, core/store/shared-stock.ts) */
  kind: 'order' | 'orderEvent' | 'stockRelease' | 'lanGrant' | 'stock' | 'status' | 'health' | 'telemetry';
  /** for kind 'order': the order id; sync reads the order and its sealed token when it publishes */
  ref?: string;
  body?: Record<string, unknown>;
  createdAt: number;
  /** amount at risk while unsynced (card-token orders only) */
  riskCents?: number;
}

export interface RiskCounters {
  unsyncedTokenOrders: number;
  unsyncedTokenCents: number;
}

export interface EventState {
  live: boolean;
  eventId: string | null;
  startedAt: string | null;
  stoppedAt: string | null;
}

/** A card payment the hub's gateway declined: the host must collect another way. */
export interface DeclineNotice {
  orderId: string;
  totalCents: number;
  currency: string;
  reason: string | null;
  at: string;
  /** 'rejected': the hub could not store the order (dead letter); absent in notices of older kits */
  state?: 'declined' | 'rejected';
}

/** A staff terminal paired by the admin (core/store/terminals.ts): its bearer token is kept hashed. */
export interface TerminalRecord {
  id: string;
  name: string;
  /** sha256 of the terminal's bearer token, base64url */
  tokenHash: string;
  createdAt: string;
  revokedAt?: string;
}

/** A pairing code the admin asked for, waiting to be redeemed once (kept hashed, with its expiry). */
export interface PairingRecord {
  id: string;
  name: string;
  codeHash: string;
  /** ms since the epoch */
  expiresAt: number;
  /** wrong codes tried while this one waits; it is dropped when none are left */
  attemptsLeft: number;
  createdAt: string;
}

/** A cart hold (core/store/reservations.ts): units taken from stock until converted or expired. */
export interface ReservationRecord {
  id: string;
  eventId: string;
  /** the priced lines as held (bundle lines carry their components) */
  lines: OrderLine[];
  createdAt: string;
  /** ms since the epoch */
  expiresAt: number;
  status: 'held' | 'converted' | 'expired' | 'released';
  orderId?: string;
  endedAt?: string;
  deviceId?: string;
  /** the client address of a buyer's hold (its open holds are capped per address); staff holds have none */
  address?: string;
}

/** A loyalty pass's uses on this kit (core/store/loyalty.ts), by pass id and event. */
export interface LoyaltyUseRecord {
  passId: string;
  uses: number;
  orderIds: string[];
  lastAt: string;
  /** the event the uses count for (a pass allows its uses per event) */
  eventId: string;
  holder: string;
  /** discount given by these uses */
  cents: number;
}

/** A buyer device known to this kit (a signed device token's id), for per-device shares. */
export interface DeviceRecord {
  id: string;
  issuedAt: string;
  /**
   * units bought per scarce SKU or bundle id (held and accepted), for one-share-per-device limits;
   * pairs, not an object: LMDB's msgpack turns a `__proto__` key into `__proto_`
   */
  units: Array<[id: string, units: number]>;
  /** held orders placed offline by this device, counted against its allowance */
  heldOrders: number;
  /** the event the counts belong to: a device's shares and allowance start afresh at another event */
  eventId?: string;
  /** scarce card orders accepted offline without a hold (the allowance, POPKIT_BUYER_OFFLINE_ALLOWANCE) */
  allowanceUsed?: number;
  /** held orders of this device still waiting (confirmed or released ones leave this count) */
  heldOpen?: number;
}

/**
 * A viewer of the live stream during one event (services/checkout/audience): `id` is a keyed hash of
 * client address and user agent under the event's rotating key, never the address or agent itself.
 * Kept for the event's retention (POPKIT_AUDIENCE_TTL_H after it ends), then deleted.
 */
export interface ViewerRecord {
  id: string;
  eventId: string;
  /** unix seconds */
  firstSeen: number;
  lastSeen: number;
  /** seconds watched (gaps longer than the leave timeout are not counted) */
  watchSeconds: number;
  /** watching sessions: [join, leave] unix seconds; the open one has leave = lastSeen */
  sessions: Array<[join: number, leave: number]>;
  inVenue: boolean;
  /** when it expires (unix seconds): the event's end plus the retention */
  expiresAt?: number;
}

/** A buyer device's consent to link its viewing to its orders, with the text version it agreed to. */
export interface ConsentRecord {
  deviceId: string;
  granted: boolean;
  textVersion: string;
  at: string;
  /** this device's orders linked to the viewer id (the event's keyed hash) that placed them; withdrawal empties it */
  links: Array<{ viewerId: string; orderId: string; eventId: string }>;
  /** events at which this device bought with consent (new vs returning) */
  events: string[];
  /** the highest loyalty tier it used a pass of, with consent */
  loyaltyTier?: string;
}

/** What identifies the stored catalog version (written with it, read cheaply on every order). */
export interface CatalogStamp {
  eventId: string;
  version: number;
  updatedAt: string;
}

export interface KitStore {
  root: RootDatabase;
  catalog: Database<StoredCatalog, string>;
  stock: Database<number, string>;
  orders: Database<StoredOrder, string>;
  idempotency: Database<{ orderId: string; bodyHash: string }, string>;
  outbox: Database<OutboxEntry, OutboxKey>;
  tokens: Database<SealedToken, string>;
  /** token orders still unsynced, keyed by order id (sorted by time): the oldest is the first key */
  riskq: Database<{ cents: number; at: number }, string>;
  meta: Database<unknown, string>;
  /** paired staff terminals by id */
  terminals: Database<TerminalRecord, string>;
  /** pending pairing codes by pairing id */
  pairings: Database<PairingRecord, string>;
  /** cart holds by id (core/store/reservations.ts) */
  reservations: Database<ReservationRecord, string>;
  /** expiry index: [expiresAt, reservation or held-order id] → kind, swept in key order */
  expiries: Database<'reservation' | 'hold', [number, string]>;
  /** orders taken per pickup slot id (core/store/pickup.ts) */
  slotCounts: Database<number, string>;
  /** pickup code → order id */
  pickupCodes: Database<string, string>;
  /** loyalty pass uses on this kit by pass id (core/store/loyalty.ts) */
  loyaltyUses: Database<LoyaltyUseRecord, string>;
  /** buyer devices by device id (core/store/devices.ts) */
  devices: Database<DeviceRecord, string>;
  /** per-second series (core/contracts/series.ts), keyed by unix second */
  series: Database<SeriesValuesT, number>;
  /** series markers keyed by [unix second, sequence] */
  markers: Database<SeriesMarkerT, [number, number]>;
  /** viewers of the live stream by keyed-hash id (ephemeral, services/checkout/audience) */
  viewers: Database<ViewerRecord, string>;
  /** buyer devices' consent by device id */
  consents: Database<ConsentRecord, string>;
  /** the LMDB data file (lmdb-js keeps its lock file beside it) */
  file: string;
  close(): Promise<void>;
}

/** Keys of the meta sub-db; each belongs to one domain module. */
export const META = {
  idHighWater: 'ids.highWater',
  risk: 'risk.counters',
  event: 'event.state',
  catalogVersion: 'catalog.version',
  declines: 'declines.recent',
  stockSnapshot: 'sync.stock.lastSnapshot',
  /** prefix: + event id, the highest hub catalog version accepted for it (catalog-epoch.ts) */
  hubCatalogHigh: 'catalog.hubHigh/',
  /** the newest signed hub catalog's issue time and when it arrived (core/store/clock.ts): the time floor */
  hubTimeFloor: 'clock.hubFloor',
  /** what made this boot's clock trusted, and its wall-to-monotonic offset then (core/store/clock.ts) */
  clockTrust: 'clock.trust',
  /** the live event's viewer key (core/store/audience.ts): overwritten at rotation, removed when none is live */
  audienceKey: 'audience.key',
  /** prefix: + event id, this kit's share of the event's stock as the hub last stated it (shared-stock.ts) */
  sharedStock: 'stock.shared/',
} as const;

export function openKitStore(dataDir: string): KitStore {
  // orders and sealed tokens are the kit's alone: 0700 data dir, 0600 store and lock (core/file-modes.ts)
  ensurePrivateDir(dataDir);
  const file = dataLayout(dataDir).store;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const root = open({
    path: file,
    maxDbs: 32,
    overlappingSync: false,
    // lmdb-js grows the map on demand; start where a busy event day fits without remapping
    mapSize: 64 * 1024 * 1024,
    // readers in other processes (sync, status) must see commits without reopening
    cache: false,
    // lmdb-js creates the data and lock files 0664 unless told (not in its typings)
    ...({ permissionsMode: PRIVATE_FILE } as object),
  });
  // a store created before this rule keeps its old modes until tightened here
  makePrivateFile(file);
  makePrivateFile(`${file}-lock`);
  return {
    root,
    file,
    catalog: root.openDB<StoredCatalog, string>({ name: 'catalog' }),
    stock: root.openDB<number, string>({ name: 'stock' }),
    orders: root.openDB<StoredOrder, string>({ name: 'orders' }),
    idempotency: root.openDB<{ orderId: string; bodyHash: string }, string>({ name: 'idempotency' }),
    outbox: root.openDB<OutboxEntry, OutboxKey>({ name: 'outbox' }),
    tokens: root.openDB<SealedToken, string>({ name: 'tokens' }),
    riskq: root.openDB<{ cents: number; at: number }, string>({ name: 'riskq' }),
    meta: root.openDB<unknown, string>({ name: 'meta' }),
    terminals: root.openDB<TerminalRecord, string>({ name: 'terminals' }),
    pairings: root.openDB<PairingRecord, string>({ name: 'pairings' }),
    reservations: root.openDB<ReservationRecord, string>({ name: 'reservations' }),
    expiries: root.openDB<'reservation' | 'hold', [number, string]>({ name: 'expiries' }),
    slotCounts: root.openDB<number, string>({ name: 'slotCounts' }),
    pickupCodes: root.openDB<string, string>({ name: 'pickupCodes' }),
    loyaltyUses: root.openDB<LoyaltyUseRecord, string>({ name: 'loyaltyUses' }),
    devices: root.openDB<DeviceRecord, string>({ name: 'devices' }),
    // a second's values share their key names through msgpackr's shared structures (stored in the
    // db once): ~140 bytes a second instead of ~820, 72 h of seconds in ~37 MB
    series: root.openDB<SeriesValuesT, number>({
      name: 'series',
      sharedStructuresKey: Symbol.for('structures'),
    }),
    markers: root.openDB<SeriesMarkerT, [number, number]>({ name: 'markers' }),
    viewers: root.openDB<ViewerRecord, string>({ name: 'viewers' }),
    consents: root.openDB<ConsentRecord, string>({ name: 'consents' }),
    close: () => root.close(),
  };
}

/**
 * The root's commit thenable, for observing a failed batch's own promise: lmdb-js rejects it too and
 * nothing else awaits it (see services/checkout/store-guard.ts).
 */
export function commitWatch(store: KitStore): { committed: PromiseLike<unknown> } {
  return store.root;
}
