// The order pipeline's extension points (docs/drops.md#the-order-pipeline). Taking an order runs, in
// this order: the idempotency replay, each feature's `admit` (sale windows, reservations: refuse
// before pricing), pricing (SKU and bundle lines), each feature's `adjust` (a loyalty discount), the
// caps and the offline order limit, each feature's `settle` (how a card payment is trusted: online
// authorization through the hub, or a hold), then ONE LMDB transaction in which the stock move and
// every feature's `commit` step check and write together, and, once that commit is durable, each
// feature's `committed`. A feature refuses by throwing a KitError (before the transaction) or by
// returning one from its step's `check` (inside it); either way nothing is written.
import type { Registry } from 'prom-client';
import type {
  CatalogBundle,
  CatalogItem,
  OrderLine,
  StoredCatalog,
  StoredOrder,
} from '../../core/store/index.ts';
import type { InTxnStep } from '../../core/store/orders.ts';
import type { Role } from './routes/staff.ts';
import type { OrderBodyT } from './schemas.ts';

/** Who places the order, as the route saw it. */
export interface Caller {
  role: Role;
  /** the client address (rate limits per address) */
  ip: string;
  /** the raw `x-popkit-device` header, when sent (verified by the drain-proofing feature) */
  deviceToken?: string;
  /** the `user-agent` header (audience: with consent, the order links the viewer id of address + agent) */
  userAgent?: string;
}

export interface CatalogView {
  stamp: string;
  catalog: StoredCatalog;
  bySku: Map<string, CatalogItem>;
  byBundle: Map<string, CatalogBundle>;
}

export interface OrderDraft {
  readonly body: OrderBodyT;
  readonly caller: Caller;
  readonly cat: CatalogView;
  /** the instant the order is taken at (the service's clock) */
  readonly now: number;
  /** the id the order will have (drawn first, so an authorization can name it; a refusal leaves a gap) */
  readonly orderId: string;
  /** priced lines (after pricing) */
  lines: OrderLine[];
  /** the sum of the lines */
  subtotalCents: number;
  /** what the buyer pays: subtotal less discounts (features that discount lower it) */
  totalCents: number;
  /** fields of the stored order a feature sets: status, hold, pickup, discount, reservationId, … */
  extra: Partial<StoredOrder>;
  /** set by a feature whose reservation already holds the units: the commit takes no stock */
  stockHeld: boolean;
  /**
   * false when the card payment is not counted against the offline risk budget (a held order the
   * buyer has not paid for yet, or one the hub authorized before the answer)
   */
  riskBudget: boolean;
}

export interface OrderFeature {
  readonly name: string;
  admit?(d: OrderDraft): void | Promise<void>;
  adjust?(d: OrderDraft): void | Promise<void>;
  settle?(d: OrderDraft): void | Promise<void>;
  commit?(d: OrderDraft): InTxnStep | undefined;
  committed?(order: StoredOrder, d: OrderDraft): void;
  /** its part of `/v1/status.drops` (declared in core/contracts/kit-status.ts DropsStatus) */
  status?(): Record<string, unknown>;
  /** registers its own metrics (prom-client) on checkout's registry */
  metrics?(registry: Registry): void;
}

export type { InTxnStep };
