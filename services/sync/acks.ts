// The hub's application-level acks: parsed through the hub-wire contract and applied to the kit's
// store (core/store/outbox.ts applyHubAcks): an entry leaves the outbox only there, so a crash at any
// moment at worst resends it. One transaction per message while checkout is idle; while it is busy,
// transactions of at most `ackTxnMax` acks with a pause between them, so that a buyer's commit never
// waits behind a long one (docs/scaling.md#checkout-first). Each transaction stands on its own: a crash
// between two leaves the rest in the outbox, resent and acked again from the ledger.

import { wire } from '../../core/contracts/hub-wire.ts';
import { LANES } from '../../core/contracts/lanes.ts';
import { moduleLogger } from '../../core/logger.ts';
import { applyHubAcks, type HubAck, type KitStore } from '../../core/store/index.ts';
import { type BusyLimits, type LoadSignal, pause } from './load.ts';

const log = moduleLogger('sync');

/** How acks are paced against checkout's load; without it, one transaction per message. */
export interface AckPacing {
  load: LoadSignal;
  limits: Pick<BusyLimits, 'ackTxnMax' | 'yieldMs'>;
  /** injected in tests; default: a timer of `yieldMs` */
  pause?: (ms: number) => Promise<void>;
}

/**
 * Apply acks in order, in as few transactions as checkout's load allows; the number of transactions.
 * The load is asked again before each transaction, so a drain speeds up as soon as the buyers stop.
 */
export async function applyAcksPaced(
  store: KitStore,
  acks: readonly HubAck[],
  pacing?: AckPacing,
): Promise<number> {
  let txns = 0;
  for (let i = 0; i < acks.length || txns === 0; ) {
    // a transaction that left acks over was a short one: let checkout's writers in before the next
    if (txns > 0 && pacing) await (pacing.pause ?? pause)(pacing.limits.yieldMs);
    const n = pacing?.load.busy() ? Math.max(1, pacing.limits.ackTxnMax) : acks.length - i;
    await applyHubAcks(store, acks.slice(i, i + n));
    i += n;
    txns++;
  }
  return txns;
}

/**
 * Apply one ack message addressed to `kitId`; the acked entries as outbox keys (lane number, id) and
 * the order ids of the verdicts the hub wants confirmed (committed here, so sync may now send the
 * receipt for them), or undefined when the message was malformed or for another kit (ignored).
 */
export async function applyAckMessage(
  store: KitStore,
  kitId: string,
  payload: Buffer,
  pacing?: AckPacing,
): Promise<{ acked: { lane: number; id: string }[]; confirmed: string[]; txns: number } | undefined> {
  const ack = wire.ack.parse(payload);
  if (!ack || ack.kitId !== kitId) {
    log.warn('malformed ack ignored');
    return undefined;
  }
  const txns = await applyAcksPaced(store, ack.acks, pacing);
  return {
    acked: ack.acks.map((a: HubAck) => ({ lane: LANES[a.lane], id: a.id })),
    confirmed: ack.acks.filter((a) => a.confirm && a.lane === 'orders').map((a) => a.id),
    txns,
  };
}
