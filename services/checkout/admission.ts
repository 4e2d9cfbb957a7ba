// Fair admission (docs/drops.md#fair-admission). In the first seconds of a drop hundreds of buyers
// press "buy" together; without a line each request races the others for LMDB's write lock and the
// losers get whatever error the race gives them. Here a request that could succeed takes a place in
// ONE first-in-first-out line: at most `concurrency` are processed at once, at most `queueMax` wait,
// none waits longer than `maxWaitMs`; over a bound it gets 503 ADMISSION_FULL at once, with its
// position and a Retry-After, and nothing written. A request whose answer is already known from a
// cheap read (sold out, not on sale yet, sale ended) takes no place and no write transaction: once
// the 50 units are gone, the remaining thousands are answered from the stock read alone.
import type { Registry } from 'prom-client';
import { Counter, Gauge, Histogram } from 'prom-client';
import { KitError } from '../../core/errors.ts';
import { findIdempotent, type KitStore, readStock, stockNeeds } from '../../core/store/index.ts';
import type { OrderFeature } from './order-features.ts';
import type { OrderService } from './orders.ts';
import { priceLines } from './orders.ts';
import { assertOnSale } from './sale-windows.ts';
import type { OrderLineInT } from './schemas.ts';

export interface AdmissionOptions {
  /** processed at once; 0: admission off (every request goes straight in: the flat path) */
  concurrency: number;
  /** waiting at most */
  queueMax: number;
  /** longest wait in the line (ms) */
  maxWaitMs: number;
  /** ms clock for waits (tests inject one) */
  clock?: () => number;
}

/** A place in the line, once admitted: release it when the request is answered. */
export interface Ticket {
  /** arrival number (1, 2, …): the order requests reached the line */
  arrival: number;
  /** admission number: the order requests were let in (equals arrival order: the line is FIFO) */
  admitted: number;
  /** the place taken on arrival: 0 straight in, n the n-th waiting */
  position: number;
  waitedMs: number;
  release(): void;
}

interface Waiter<N> {
  arrival: number;
  position: number;
  at: number;
  timer: NodeJS.Timeout;
  done: boolean;
  /** what the request needs (the gate's stock needs): a sweep answers it without its turn */
  needs: N | undefined;
  resolve(t: Ticket): void;
  reject(e: unknown): void;
}

/** Headers an answer carries (the bench checks arrival order with them). */
export const ADMISSION_HEADERS = {
  arrival: 'x-popkit-arrival',
  admitted: 'x-popkit-admitted',
  position: 'x-popkit-queue-position',
} as const;

export class Admission<N = Map<string, number>> {
  private inFlight = 0;
  /** FIFO with a head index: shift() on a long array is O(n) */
  private line: Waiter<N>[] = [];
  private head = 0;
  private waitingCount = 0;
  private arrivals = 0;
  private admittedCount = 0;
  private refusedCount = 0;
  private shortCount = 0;
  /** recent processing time per admitted request (ms, moving average): Retry-After's estimate */
  private serviceMs = 5;
  private readonly now: () => number;
  private metricsWait: Histogram | undefined;
  private metricsRefused: Counter | undefined;

  constructor(readonly opts: AdmissionOptions) {
    this.now = opts.clock ?? (() => performance.now());
  }

  get enabled(): boolean {
    return this.opts.concurrency > 0;
  }

  get waiting(): number {
    return this.waitingCount;
  }

  /** A request answered before the line (sold out, not on sale): counted, no place taken. */
  shortCircuited(): void {
    this.shortCount++;
  }

  private ticket(arrival: number, position: number, at: number): Ticket {
    const admitted = ++this.admittedCount;
    const start = this.now();
    let released = false;
    this.metricsWait?.observe((start - at) / 1000);
    return {
      arrival,
      admitted,
      position,
      waitedMs: Math.round(start - at),
      release: () => {
        if (released) return;
        released = true;
        this.serviceMs = this.serviceMs * 0.9 + (this.now() - start) * 0.1;
        this.inFlight--;
        this.dispatch();
      },
    };
  }

  private full(position: number, why: 'queue' | 'wait', waitedMs?: number): KitError {
    this.refusedCount++;
    this.metricsRefused?.inc({ why });
    const ahead = why === 'queue' ? this.waitingCount : position;
    const retryAfterS = Math.max(
      1,
      Math.ceil(((ahead + 1) * this.serviceMs) / Math.max(1, this.opts.concurrency) / 1000),
    );
    return new KitError(
      'ADMISSION_FULL',
      why === 'queue'
        ? `the line is full (${this.opts.queueMax} waiting): retry in ${retryAfterS} s`
        : `no place freed within ${this.opts.maxWaitMs} ms: retry in ${retryAfterS} s`,
      {
        position,
        waiting: this.waitingCount,
        queueMax: this.opts.queueMax,
        maxWaitMs: this.opts.maxWaitMs,
        retryAfterS,
        ...(waitedMs !== undefined ? { waitedMs } : {}),
      },
    );
  }

  /**
   * Take a place: resolves when admitted (release the ticket when answered), rejects with
   * ADMISSION_FULL over a bound. The arrival number is drawn synchronously, on the call.
   */
  enter(needs?: N): Promise<Ticket> {
    const arrival = ++this.arrivals;
    const at = this.now();
    if (!this.enabled) {
      this.inFlight++;
      return Promise.resolve(this.ticket(arrival, 0, at));
    }
    if (this.inFlight < this.opts.concurrency && this.waitingCount === 0) {
      this.inFlight++;
      return Promise.resolve(this.ticket(arrival, 0, at));
    }
    const position = this.waitingCount + 1;
    if (this.waitingCount >= this.opts.queueMax) return Promise.reject(this.full(position, 'queue'));
    return new Promise<Ticket>((resolve, reject) => {
      const w: Waiter<N> = {
        arrival,
        position,
        at,
        done: false,
        needs,
        resolve,
        reject,
        timer: setTimeout(() => {
          if (w.done) return;
          w.done = true;
          this.waitingCount--;
          reject(this.full(position, 'wait', Math.round(this.now() - at)));
        }, this.opts.maxWaitMs),
      };
      this.line.push(w);
      this.waitingCount++;
    });
  }

  private dispatch(): void {
    while (this.inFlight < this.opts.concurrency && this.head < this.line.length) {
      const w = this.line[this.head++] as Waiter<N>;
      if (w.done) continue;
      w.done = true;
      clearTimeout(w.timer);
      this.waitingCount--;
      this.inFlight++;
      w.resolve(this.ticket(w.arrival, w.position, w.at));
    }
    // drop the consumed prefix now and then, so the array does not grow for the whole event
    if (this.head > 1024 && this.head * 2 > this.line.length) {
      this.line = this.line.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Answer now every waiter `refuse` names an error for (e.g. SOLD_OUT once the stock it needs is
   * gone): it leaves the line without its turn; the others keep their order. Returns how many left.
   */
  sweep(refuse: (needs: N) => unknown): number {
    let n = 0;
    for (let i = this.head; i < this.line.length; i++) {
      const w = this.line[i] as Waiter<N>;
      if (w.done || w.needs === undefined) continue;
      const err = refuse(w.needs);
      if (err === undefined) continue;
      w.done = true;
      clearTimeout(w.timer);
      this.waitingCount--;
      this.shortCount++;
      n++;
      w.reject(err);
    }
    return n;
  }

  status() {
    return {
      admission: {
        enabled: this.enabled,
        inFlight: this.inFlight,
        waiting: this.waitingCount,
        concurrency: this.opts.concurrency,
        queueMax: this.opts.queueMax,
        maxWaitMs: this.opts.maxWaitMs,
        admitted: this.admittedCount,
        refused: this.refusedCount,
        shortCircuited: this.shortCount,
      },
    };
  }

  metrics(registry: Registry): void {
    this.metricsWait = new Histogram({
      name: 'popkit_admission_wait_seconds',
      help: 'time an order or reservation waited in the admission line',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    this.metricsRefused = new Counter({
      name: 'popkit_admission_refused_total',
      help: 'requests refused ADMISSION_FULL, by bound (queue length or wait)',
      labelNames: ['why'],
      registers: [registry],
    });
    const self = this;
    new Gauge({
      name: 'popkit_admission_waiting',
      help: 'requests waiting in the admission line',
      registers: [registry],
      collect() {
        this.set(self.waitingCount);
      },
    });
  }
}

/**
 * The pipeline's SOLD_OUT, for answers from a read. Built without a stack trace: in a drop's first
 * second thousands are thrown and capturing each one's stack is a good part of their cost.
 */
function soldOut(sku: string, available: number): KitError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new KitError('SOLD_OUT', `${sku} is sold out`, { sku, available });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The line's status and metrics as an order feature (it has no pipeline step: the routes gate). */
export function admissionFeature(line: Admission): OrderFeature {
  return { name: 'admission', status: () => line.status(), metrics: (r) => line.metrics(r) };
}

/**
 * What the order and reservation routes call: refuse early what a cheap read already answers, then
 * take a place in the line. `lines` are the request's lines; `holdsStock`: the request converts a
 * reservation that already holds its units (stock may read 0 and the order still succeed).
 */
/** Units per SKU a request takes (bundle lines counted by component). */
type Needs = Map<string, number>;

export class AdmissionGate {
  /** the stock epoch (orders.stockEpoch) at the last sweep */
  private sweptAt = -1;

  constructor(
    readonly line: Admission<Needs>,
    private readonly store: KitStore,
    private readonly orders: OrderService,
  ) {}

  /**
   * After an order left the line: if stock moved, answer the waiters whose units are gone (SOLD_OUT)
   * at once instead of at their turn. One stock read per SKU, one pass over the line.
   */
  private sweep(): void {
    if (this.line.waiting === 0 || this.orders.stockEpoch === this.sweptAt) return;
    this.sweptAt = this.orders.stockEpoch;
    const stock = new Map<string, number>();
    const left = (sku: string) => {
      let n = stock.get(sku);
      if (n === undefined) {
        n = readStock(this.store, sku);
        stock.set(sku, n);
      }
      return n;
    };
    this.line.sweep((needs) => {
      for (const [sku, qty] of needs) {
        const available = left(sku);
        if (available < qty) return soldOut(sku, available);
      }
      return undefined;
    });
  }

  /**
   * Throws the answer a read already knows (NOT_ON_SALE_YET, SALE_ENDED, CLOCK_UNTRUSTED, SOLD_OUT,
   * UNKNOWN_SKU, VALIDATION): nothing is written and no place is taken.
   */
  precheck(lines: readonly OrderLineInT[], holdsStock: boolean): Needs | undefined {
    const cat = this.orders.catalog();
    if (!cat) return undefined; // the pipeline answers NOT_READY
    try {
      assertOnSale(cat, lines, this.orders.saleClock());
      if (holdsStock) return undefined;
      const needs = stockNeeds(priceLines(cat, lines).lines);
      for (const [sku, qty] of needs) {
        const available = readStock(this.store, sku);
        if (available < qty) throw soldOut(sku, available);
      }
      return needs;
    } catch (err) {
      this.line.shortCircuited();
      throw err;
    }
  }

  /** An Idempotency-Key already used: its request replays the first answer and needs no place. */
  replays(key: string): boolean {
    return findIdempotent(this.store, key) !== undefined;
  }

  /** precheck, then a place in the line. */
  async admit(lines: readonly OrderLineInT[], holdsStock: boolean): Promise<Ticket> {
    const needs = this.precheck(lines, holdsStock);
    const t = await this.line.enter(needs);
    return {
      ...t,
      release: () => {
        // answer the waiters whose units are gone before the freed place goes to the next one
        this.sweep();
        t.release();
      },
    };
  }
}
