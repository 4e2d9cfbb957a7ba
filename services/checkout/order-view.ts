// Who may read an order's pickup code. Order ids are sortable (ULIDs that count up within a
// millisecond), so `GET /v1/orders/:id` of a neighbour's id is easy to guess; the code is what hands
// the goods over, so it is shown only to staff and to the buyer device that placed the order
// (its `x-popkit-device` token); everyone else reads the order without it (docs/drops.md#pickup).
import type { FastifyRequest } from 'fastify';
import type { StoredOrder } from '../../core/store/index.ts';
import type { DeviceTokens } from './devices.ts';
import type { Credentials } from './routes/staff.ts';

export class PickupCodeAccess {
  constructor(
    private readonly creds: Credentials,
    private readonly devices: DeviceTokens | undefined,
  ) {}

  /** true for staff, and for the device that placed the order; never throws for a bad header. */
  mayRead(req: FastifyRequest, order: StoredOrder): boolean {
    if (this.creds.role(req) !== 'buyer') return true;
    const header = req.headers['x-popkit-device'];
    if (!order.deviceId || !this.devices || typeof header !== 'string') return false;
    try {
      return this.devices.verify(header) === order.deviceId;
    } catch {
      return false;
    }
  }

  /** The order as this caller may see it: without `pickup.code` unless `mayRead`. */
  view(req: FastifyRequest, order: StoredOrder): PublicOrder {
    if (!order.pickup || this.mayRead(req, order)) return order;
    const { code: _code, ...pickup } = order.pickup;
    return { ...order, pickup };
  }
}

type PublicPickup = Omit<NonNullable<StoredOrder['pickup']>, 'code'> & { code?: string };
/** An order as a caller may read it: the pickup code may be left out. */
export type PublicOrder = Omit<StoredOrder, 'pickup'> & { pickup?: PublicPickup };

/** The order as the API answers it: without the kit id and the Idempotency-Key. */
export function publicOrder(o: PublicOrder) {
  const { kitId: _k, idempotencyKey: _i, ...rest } = o;
  return rest;
}
