// The hub's application-level acks: parsed through the hub-wire contract and applied to the kit's
// store in one transaction (core/store/outbox.ts applyHubAcks): an entry leaves the outbox only there,
// so a crash at any moment at worst resends it.

import { wire } from '../../core/contracts/hub-wire.ts';
import { LANES } from '../../core/contracts/lanes.ts';
import { moduleLogger } from '../../core/logger.ts';
import { applyHubAcks, type HubAck, type KitStore } from '../../core/store/index.ts';

const log = moduleLogger('sync');

/**
 * Apply one ack message addressed to `kitId`; the acked entries as outbox keys (lane number, id) and
 * the order ids of the verdicts the hub wants confirmed (committed here, so sync may now send the
 * receipt for them), or undefined when the message was malformed or for another kit (ignored).
 */
export async function applyAckMessage(
  store: KitStore,
  kitId: string,
  payload: Buffer,
): Promise<{ acked: { lane: number; id: string }[]; confirmed: string[] } | undefined> {
  const ack = wire.ack.parse(payload);
  if (!ack || ack.kitId !== kitId) {
    log.warn('malformed ack ignored');
    return undefined;
  }
  await applyHubAcks(store, ack.acks);
  return {
    acked: ack.acks.map((a: HubAck) => ({ lane: LANES[a.lane], id: a.id })),
    confirmed: ack.acks.filter((a) => a.confirm && a.lane === 'orders').map((a) => a.id),
  };
}
