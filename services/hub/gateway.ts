// Payment token exchange. The hub talks to a provider only through PaymentGateway; a real provider's
// adapter implements the same three members. The shipped SandboxGateway never moves money and says
// so everywhere it shows (its name, `sandbox: true` in GET /v1/gateway, the ledger's gateway refs).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { KitError } from '../../core/errors.ts';

export interface ExchangeRequest {
  /** the provider must treat a repeated key as the same charge: the hub uses `kitId:orderId` */
  idempotencyKey: string;
  token: string;
  amountCents: number;
  currency: string;
}

export type ExchangeResult = { outcome: 'approved'; ref: string } | { outcome: 'declined'; reason: string };

export interface PaymentGateway {
  readonly name: string;
  readonly sandbox: boolean;
  /**
   * Exchange a payment session token for a charge. Resolves with the provider's verdict; throws
   * KitError GATEWAY_UNAVAILABLE when the provider could not be reached (the hub retries later).
   */
  exchange(req: ExchangeRequest): Promise<ExchangeResult>;
  /** a token the provider documents for connectivity checks (approves, charges nothing) */
  readonly testToken: string;
}

/**
 * Deterministic sandbox: a token containing `decline` is declined (the reason is what follows
 * `decline_`, else `card_declined`), one containing `unavailable` makes the gateway unreachable,
 * anything else is approved. The same idempotency key always gets the same answer and counts as
 * one charge.
 */
export class SandboxGateway implements PaymentGateway {
  readonly name = 'sandbox';
  readonly sandbox = true;
  readonly testToken = 'tok_sandbox_test';
  private available = true;
  private readonly charges = new Map<string, ExchangeResult>();
  /** every exchange call, including repeats of a key (what a provider would bill for: charges.size) */
  exchangeCalls = 0;

  /**
   * `journal`: a file that outlives the process, as a provider's own records do. Charges already in it
   * are known again after a restart (a repeated key stays one charge), and every exchange appends one
   * JSON line: `{ key, charge, amountCents, currency, result }`, `charge: false` for a repeat.
   */
  constructor(private readonly journal?: string) {
    if (!journal || !fs.existsSync(journal)) return;
    const text = fs.readFileSync(journal, 'utf8');
    // a torn last line stays apart from the next one appended
    if (text && !text.endsWith('\n')) fs.appendFileSync(journal, '\n');
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        const e = JSON.parse(line) as JournalLine;
        if (e.charge) this.charges.set(e.key, e.result);
      } catch {
        // a line torn by a crash mid-append was never a completed charge
      }
    }
  }

  /** a sandbox switch for outage drills: an unreachable provider */
  setAvailable(on: boolean): void {
    this.available = on;
  }

  get chargeCount(): number {
    return this.charges.size;
  }

  async exchange(req: ExchangeRequest): Promise<ExchangeResult> {
    this.exchangeCalls++;
    if (!this.available || req.token.includes('unavailable')) {
      throw new KitError('GATEWAY_UNAVAILABLE', 'sandbox gateway: provider unreachable');
    }
    const seen = this.charges.get(req.idempotencyKey);
    if (seen) {
      this.record(req, seen, false);
      return seen;
    }
    const m = /decline(?:_([a-z_]+))?/.exec(req.token);
    const result: ExchangeResult = m
      ? { outcome: 'declined', reason: m[1] ?? 'card_declined' }
      : {
          outcome: 'approved',
          ref: `sandbox_${createHash('sha256').update(req.idempotencyKey).digest('hex').slice(0, 20)}`,
        };
    // a test-token probe is not a charge worth remembering
    if (req.token !== this.testToken) {
      this.charges.set(req.idempotencyKey, result);
      this.record(req, result, true);
    }
    return result;
  }

  private record(req: ExchangeRequest, result: ExchangeResult, charge: boolean): void {
    if (!this.journal) return;
    const line: JournalLine = {
      key: req.idempotencyKey,
      charge,
      amountCents: req.amountCents,
      currency: req.currency,
      result,
    };
    fs.appendFileSync(this.journal, `${JSON.stringify(line)}\n`);
  }
}

/** One line of the sandbox's charge journal. */
export interface JournalLine {
  key: string;
  /** true: a new charge; false: a repeat of a key already charged (no money moves twice) */
  charge: boolean;
  amountCents: number;
  currency: string;
  result: ExchangeResult;
}

export function createGateway(name: 'sandbox', opts: { sandboxJournal?: string } = {}): PaymentGateway {
  switch (name) {
    case 'sandbox':
      return new SandboxGateway(opts.sandboxJournal);
  }
}

/** At most `size` calls of `run` under way at once; the rest wait their turn, first come first served. */
export class Slots {
  private busy = 0;
  private readonly waiting: (() => void)[] = [];
  /** the most ever under way at once (tests, metrics) */
  peak = 0;

  constructor(private readonly size: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy >= this.size) await new Promise<void>((r) => this.waiting.push(r));
    else this.busy++;
    this.peak = Math.max(this.peak, this.busy);
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
  }
}
