// What staff and time do to held orders (docs/security.md#drain-proofing), each in ONE transaction
// with its order event: confirm (paid at pickup, or the buyer's card vouched for), release, and the
// sweeper's expiry. And the drop report: where every unit of a scarce SKU is.
import { KitError } from '../errors.ts';
import { confirmHeldInTxn, expiredHolds, releaseHeldInTxn } from './holds.ts';
import type { KitStore, StoredCatalog, StoredOrder } from './open.ts';
import { stockNeeds } from './orders.ts';
import { enqueueOrderEventInTxn } from './outbox.ts';
import { dropTokenInTxn } from './tokens.ts';

/** How a held order was paid when staff confirm it. */
export type PaidWith = 'cash' | 'token';

function heldOrRefuse(store: KitStore, id: string): StoredOrder | KitError {
  const order = store.orders.get(id);
  if (!order) return new KitError('NOT_FOUND', `no order ${id}`);
  if (order.status !== 'held') {
    return new KitError('CONFLICT', `order ${id} is ${order.status}, not held`, { status: order.status });
  }
  return order;
}

/**
 * Staff confirm a held order. `cash`: paid at pickup; the order becomes a cash order and its card
 * token is dropped so the hub never charges it, which is only possible while the hub has not got the
 * order (`pending`: else CONFLICT, wait for the hub's verdict). `token`: staff vouch for the buyer's
 * card; the hub charges it as for any card order.
 */
export function confirmHeldOrder(
  store: KitStore,
  id: string,
  how: { paidWith: PaidWith; by: string; now: number },
): Promise<StoredOrder | KitError> {
  return store.root.transaction((): StoredOrder | KitError => {
    const order = heldOrRefuse(store, id);
    if (order instanceof KitError) return order;
    if (how.paidWith === 'cash' && order.payment.method === 'token') {
      if (order.syncState !== 'pending') {
        return new KitError(
          'CONFLICT',
          `the hub already has order ${id}'s card token (sync state ${order.syncState}): wait for its verdict, or confirm with paidWith "token"`,
          { syncState: order.syncState },
        );
      }
      dropTokenInTxn(store, id);
    }
    let next = confirmHeldInTxn(store, order);
    if (how.paidWith === 'cash') next = { ...next, payment: { method: 'cash' } };
    void store.orders.put(id, next);
    const at = new Date(how.now).toISOString();
    enqueueOrderEventInTxn(
      store,
      { type: 'confirmed', orderId: id, at, by: how.by, reason: `paid with ${how.paidWith}` },
      how.now,
    );
    return next;
  });
}

/** Staff let a held order go: units back to stock, event `released`. */
export function releaseHeldOrder(
  store: KitStore,
  id: string,
  how: { reason: string; by: string; now: number },
): Promise<StoredOrder | KitError> {
  return store.root.transaction((): StoredOrder | KitError => {
    const order = heldOrRefuse(store, id);
    if (order instanceof KitError) return order;
    const at = new Date(how.now).toISOString();
    const next = releaseHeldInTxn(store, order, { reason: how.reason, at });
    void store.orders.put(id, next);
    enqueueOrderEventInTxn(
      store,
      { type: 'released', orderId: id, at, by: how.by, reason: how.reason },
      how.now,
    );
    return next;
  });
}

/**
 * Release every hold that ended at or before `now` (at most `limit` per call, one transaction); the
 * order is read again inside it, so a hold confirmed meanwhile is left alone. Returns how many.
 */
export function sweepExpiredHolds(store: KitStore, now: number, limit = 500): Promise<number> {
  return store.root.transaction((): number => {
    let n = 0;
    for (const id of expiredHolds(store, now, limit)) {
      const order = store.orders.get(id);
      if (order?.status !== 'held') continue;
      const at = new Date(now).toISOString();
      const next = releaseHeldInTxn(store, order, { reason: 'expired', at });
      void store.orders.put(id, next);
      enqueueOrderEventInTxn(
        store,
        { type: 'released', orderId: id, at, by: 'expiry', reason: 'expired' },
        now,
      );
      n++;
    }
    return n;
  });
}

/** One scarce SKU in the drop report: every unit of `startStock` is in exactly one place. */
export interface DropSkuReport {
  sku: string;
  startStock: number;
  /** units left in stock now */
  remaining: number;
  /** units in accepted orders */
  sold: number;
  /** of `sold`, units whose card the hub declined or could not take: the host collects another way */
  unpaid: number;
  /** units in held orders (taken, waiting for payment) */
  held: number;
  /** units in cart reservations still holding */
  reserved: number;
  /** units of released orders (back in stock: counted in `remaining` too) */
  released: number;
  /** startStock = remaining + sold + held + reserved */
  balanced: boolean;
  devices: {
    /** devices holding or owning units of it */
    count: number;
    /** the most units one device has (sold + held) */
    maxUnits: number;
    /** units sold or held to orders without a device (staff terminals) */
    withoutDevice: number;
  };
  /** released orders the hub charged anyway (the release raced the charge): refund them */
  refundDue: number;
}

/**
 * Where every unit of `skus` is, for the catalog's event. Read at rest it adds up exactly; read while
 * orders are being taken, an order committing between two reads may show in one figure only.
 */
export function dropReport(
  store: KitStore,
  catalog: StoredCatalog,
  skus: readonly string[],
): DropSkuReport[] {
  const rows = new Map<string, DropSkuReport & { perDevice: Map<string, number> }>();
  for (const sku of skus) {
    rows.set(sku, {
      sku,
      startStock: catalog.startStock[sku] ?? 0,
      remaining: store.stock.get(sku) ?? 0,
      sold: 0,
      unpaid: 0,
      held: 0,
      reserved: 0,
      released: 0,
      balanced: false,
      devices: { count: 0, maxUnits: 0, withoutDevice: 0 },
      refundDue: 0,
      perDevice: new Map(),
    });
  }
  for (const { value: o } of store.orders.getRange({})) {
    if (o.eventId !== catalog.eventId) continue;
    for (const [sku, n] of stockNeeds(o.lines)) {
      const r = rows.get(sku);
      if (!r) continue;
      if (o.status === 'released') {
        r.released += n;
        if (o.syncState === 'settled') r.refundDue += n;
        continue;
      }
      if (o.status === 'held') r.held += n;
      else {
        r.sold += n;
        if (o.syncState === 'declined' || o.syncState === 'rejected') r.unpaid += n;
      }
      if (o.deviceId) r.perDevice.set(o.deviceId, (r.perDevice.get(o.deviceId) ?? 0) + n);
      else r.devices.withoutDevice += n;
    }
  }
  for (const { value: res } of store.reservations.getRange({})) {
    if (res.status !== 'held' || res.eventId !== catalog.eventId) continue;
    for (const [sku, n] of stockNeeds(res.lines)) {
      const r = rows.get(sku);
      if (r) r.reserved += n;
    }
  }
  return [...rows.values()].map(({ perDevice, ...r }) => ({
    ...r,
    balanced: r.startStock === r.remaining + r.sold + r.held + r.reserved,
    devices: {
      count: perDevice.size,
      maxUnits: Math.max(0, ...perDevice.values()),
      withoutDevice: r.devices.withoutDevice,
    },
  }));
}
