// The sync lanes, declared once for the kit's outbox (key prefix = priority) and the hub link (the
// `lane` field of every batch entry and ack). Lanes drain highest priority first, lowest number.
export const LANE_NAMES = ['orders', 'stock', 'health', 'telemetry'] as const;
export type LaneName = (typeof LANE_NAMES)[number];
/** Each lane's priority, which is also the first element of its outbox keys. */
export const LANES = { orders: 0, stock: 1, health: 2, telemetry: 3 } as const satisfies Record<
  LaneName,
  number
>;

const BY_NUMBER: LaneName[] = [];
for (const name of LANE_NAMES) BY_NUMBER[LANES[name]] = name;

/** The lane of an outbox key's priority number, or undefined for a number no lane has. */
export function laneOfPriority(n: number): LaneName | undefined {
  return BY_NUMBER[n];
}

/** Orders and stock travel on the hub's `orders` topic, health and telemetry on `telemetry`. */
export function hubTopicLeaf(lane: LaneName): 'orders' | 'telemetry' {
  return lane === 'orders' || lane === 'stock' ? 'orders' : 'telemetry';
}
