// The arithmetic of shared stock (docs/shared-stock.md), pure so that it is tested alone: an even split
// of an event's stock among its kits, and the automatic rebalance rule.

/** `stock` units split among `kits` as evenly as whole units go: the first `stock % n` kits get one more. */
export function splitEvenly(stock: number, kits: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  if (kits.length === 0) return out;
  const base = Math.floor(stock / kits.length);
  let extra = stock - base * kits.length;
  for (const k of kits) {
    out.set(k, base + (extra > 0 ? 1 : 0));
    if (extra > 0) extra--;
  }
  return out;
}

/** One kit's standing in one SKU, as the hub knows it: units allocated, and sold by the orders it has. */
export interface KitShare {
  kitId: string;
  allocated: number;
  sold: number;
}

export interface PlannedTransfer {
  from: string;
  to: string;
  qty: number;
}

/**
 * The automatic rule, for one SKU: every kit with less than `belowPercent` % of its allocation unsold
 * gets units from the kit with the most unsold (never from a kit that is itself below), half the
 * difference between the two, so that neither ends poorer than the other. A donor gives at most what
 * it has unsold by the hub's count; the donor itself releases only what it still has (it may have sold
 * more offline), so the plan can never move a sold unit.
 */
export function planRebalance(shares: readonly KitShare[], belowPercent: number): PlannedTransfer[] {
  const unsold = new Map(shares.map((s) => [s.kitId, Math.max(0, s.allocated - s.sold)]));
  const low = (s: KitShare) =>
    s.allocated > 0 && (unsold.get(s.kitId) ?? 0) * 100 < s.allocated * belowPercent;
  const receivers = shares
    .filter(low)
    .sort((a, b) => (unsold.get(a.kitId) ?? 0) - (unsold.get(b.kitId) ?? 0));
  const receiverIds = new Set(receivers.map((r) => r.kitId));
  const out: PlannedTransfer[] = [];
  for (const r of receivers) {
    let donor: string | undefined;
    let most = 0;
    for (const s of shares) {
      const u = unsold.get(s.kitId) ?? 0;
      if (receiverIds.has(s.kitId) || u <= most) continue;
      donor = s.kitId;
      most = u;
    }
    const mine = unsold.get(r.kitId) ?? 0;
    const qty = donor ? Math.floor((most - mine) / 2) : 0;
    if (!donor || qty <= 0) continue;
    out.push({ from: donor, to: r.kitId, qty });
    unsold.set(donor, most - qty);
    unsold.set(r.kitId, mine + qty);
  }
  return out;
}
