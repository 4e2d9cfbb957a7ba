// Checkout's load as sync sees it, so that checkout's commits come first (docs/scaling.md#checkout-first).
// LMDB has one writer at a time: every transaction sync holds is time a buyer's commit waits. While
// orders are arriving sync sends small batches and applies acks in small transactions with a pause
// between them; when checkout is idle it drains at full speed.
//
// The signal is LMDB's own state: the newest key on the orders lane changes whenever checkout commits
// an order (ids grow with time). One reverse key lookup, no file read, nothing asked of checkout.
import { type KitStore, newestOrderEntry } from '../../core/store/index.ts';

/** Is checkout busy selling right now? Injected in tests. */
export interface LoadSignal {
  busy(): boolean;
}

/** How sync behaves while checkout is busy. */
export interface BusyLimits {
  /** entries per batch at most */
  batchMax: number;
  /** batches awaiting their ack at most */
  window: number;
  /** acks applied per LMDB transaction at most */
  ackTxnMax: number;
  /** pause between two ack transactions, ms (0: next turn of the event loop) */
  yieldMs: number;
}

export class CheckoutLoad implements LoadSignal {
  private last: string | undefined;
  private arrivedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly store: KitStore,
    /** busy for this long after the last new order was seen */
    private readonly holdMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.last = newestOrderEntry(store);
  }

  busy(): boolean {
    const now = this.now();
    const newest = newestOrderEntry(this.store);
    // ids grow with time: a greater newest key is a commit of checkout's; a smaller one or an emptied
    // lane is sync's own acks removing entries
    if (newest !== undefined && (this.last === undefined || newest > this.last)) this.arrivedAt = now;
    this.last = newest;
    return now - this.arrivedAt < this.holdMs;
  }
}

export const ALWAYS_IDLE: LoadSignal = { busy: () => false };

/** A pause that lets other processes' LMDB writers take the lock. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));
}
