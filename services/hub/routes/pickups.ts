// An event's pickups as the ledger knows them (docs/drops.md#pickup), admin only:
// GET /v1/events/:eventId/pickups. Orders carry their slot and code; handovers arrive as `picked_up`
// order events (in any order, any number of times: the `order_status` view of migration 5 reads them
// once). Slot windows come from the event's latest signed catalog at the hub; a slot the hub has no
// window for (a catalog loaded on the kit only) is counted but never judged overdue.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { parseIsoTime } from '../../../core/contracts/catalog.ts';
import { ID_LEVEL } from '../../../core/contracts/common.ts';
import type { Queryable } from '../db.ts';
import { adminGuard } from './admin.ts';

const EventParams = Type.Object({ eventId: Type.String({ pattern: ID_LEVEL }) });

interface SlotWindow {
  id: string;
  startsAt: string;
  endsAt: string;
  capacity: number;
  label?: string;
}

export interface SlotPickups {
  slotId: string;
  label?: string;
  startsAt: string | null;
  endsAt: string | null;
  /** the catalog's capacity, which each kit applies on its own (kits offline from each other cannot share a count) */
  capacityPerKit: number | null;
  kits: number;
  taken: number;
  pickedUp: number;
  waiting: number;
  overdue: number;
  /** held orders let go: they hold no place */
  released: number;
}

export interface EventPickups {
  eventId: string;
  slots: SlotPickups[];
  /** the same code given by two kits of the event: staff at a shared counter must check the order id */
  codeCollisions: Array<{ code: string; kits: string[] }>;
}

/** The slot windows of the event's latest catalog at the hub (none when the hub never signed one). */
async function slotWindows(db: Queryable, eventId: string): Promise<Map<string, SlotWindow>> {
  const res = await db.query<{ signed: { payload: string } }>(
    'SELECT signed FROM catalogs WHERE event_id = $1 ORDER BY version DESC LIMIT 1',
    [eventId],
  );
  const out = new Map<string, SlotWindow>();
  const payload = res.rows[0]?.signed.payload;
  if (!payload) return out;
  // the hub signed this payload itself after validating it (routes/catalogs.ts)
  const slots = (JSON.parse(payload) as { catalog?: { pickupSlots?: SlotWindow[] } }).catalog?.pickupSlots;
  for (const s of slots ?? []) out.set(s.id, s);
  return out;
}

export async function eventPickups(db: Queryable, eventId: string, now: number): Promise<EventPickups> {
  const windows = await slotWindows(db, eventId);
  const rows = await db.query<{
    kit_id: string;
    slot_id: string;
    code: string;
    kit_status: string;
    picked_up_at: string | null;
  }>(
    `SELECT s.kit_id, o.body->'pickup'->>'slotId' AS slot_id, o.body->'pickup'->>'code' AS code,
       s.kit_status, s.picked_up_at
     FROM orders o JOIN order_status s ON s.kit_id = o.kit_id AND s.order_id = o.order_id
     WHERE o.event_id = $1 AND o.body ? 'pickup'`,
    [eventId],
  );
  const slots = new Map<string, SlotPickups & { kitSet: Set<string> }>();
  const codes = new Map<string, Set<string>>();
  for (const w of windows.values()) slots.set(w.id, blank(w.id, w));
  for (const r of rows.rows) {
    let s = slots.get(r.slot_id);
    if (!s) {
      s = blank(r.slot_id, undefined);
      slots.set(r.slot_id, s);
    }
    const kits = codes.get(r.code) ?? new Set<string>();
    kits.add(r.kit_id);
    codes.set(r.code, kits);
    if (r.kit_status === 'released') {
      s.released++;
      continue;
    }
    s.kitSet.add(r.kit_id);
    s.taken++;
    if (r.picked_up_at) s.pickedUp++;
    else if (s.endsAt !== null && now >= parseIsoTime(s.endsAt)) s.overdue++;
    else s.waiting++;
  }
  const start = (s: SlotPickups) => (s.startsAt ? parseIsoTime(s.startsAt) : Number.POSITIVE_INFINITY);
  return {
    eventId,
    slots: [...slots.values()]
      .sort((a, b) => start(a) - start(b) || (a.slotId < b.slotId ? -1 : 1))
      .map(({ kitSet, ...s }) => ({ ...s, kits: kitSet.size })),
    codeCollisions: [...codes]
      .filter(([, kits]) => kits.size > 1)
      .map(([code, kits]) => ({ code, kits: [...kits].sort() }))
      .sort((a, b) => (a.code < b.code ? -1 : 1)),
  };
}

function blank(slotId: string, w: SlotWindow | undefined): SlotPickups & { kitSet: Set<string> } {
  return {
    slotId,
    ...(w?.label !== undefined ? { label: w.label } : {}),
    startsAt: w?.startsAt ?? null,
    endsAt: w?.endsAt ?? null,
    capacityPerKit: w?.capacity ?? null,
    kits: 0,
    taken: 0,
    pickedUp: 0,
    waiting: 0,
    overdue: 0,
    released: 0,
    kitSet: new Set(),
  };
}

export interface PickupRoutesOptions {
  db: Queryable;
  adminToken: string;
  clock?: () => number;
}

export const pickupRoutes: FastifyPluginAsyncTypebox<PickupRoutesOptions> = async (app, opts) => {
  app.get(
    '/v1/events/:eventId/pickups',
    { onRequest: adminGuard(opts.adminToken), schema: { params: EventParams } },
    async (req) => eventPickups(opts.db, req.params.eventId, opts.clock ? opts.clock() : Date.now()),
  );
};
