// Payment token exchange. The hub talks to a provider only through PaymentGateway; a real provider's
// adapter implements the same three members. The shipped SandboxGateway never moves money and says
// so everywhere it shows (its name, `sandbox: true` in GET /v1/gateway, the ledger's gateway refs).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { appendFileDurable } from '../../core/durable-file.ts';
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

/** Which tokens the sandbox approves (POPKIT_HUB_SANDBOX_CARDS). */
export type SandboxCards = 'any' | 'strict';

/** `tok_sandbox_<body>_<check>`: body in lower case letters, digits and `_`; check 32 hex digits */
const ISSUED_TOKEN = /^tok_sandbox_([a-z0-9_]{1,160})_([0-9a-f]{32})$/;
/** what a buyer's sandbox card form may ask for: an approving card, or one the sandbox declines */
export const SANDBOX_CARD_KINDS = /^(ok|decline(_[a-z]{1,24}(_[a-z]{1,24}){0,3})?|unavailable)$/;

/**
 * Deterministic sandbox: a token containing `decline` is declined (the reason is what follows
 * `decline_`, else `card_declined`), one containing `unavailable` makes the gateway unreachable,
 * anything else is approved. The same idempotency key always gets the same answer and counts as
 * one charge.
 *
 * `cards: 'strict'` does what a real provider does with a token it never issued: only tokens this
 * sandbox issued (`issueToken`, an HMAC under `cardKey` the sandbox checks) are exchanged; anything
 * else is declined `invalid_token`, so a script cannot pay with made-up tokens
 * (docs/security.md#online-authorization). `any` (the default) keeps the permissive behaviour above.
 */
export class SandboxGateway implements PaymentGateway {
  readonly name = 'sandbox';
  readonly sandbox = true;
  readonly testToken = 'tok_sandbox_test';
  private available = true;
  private readonly charges = new Map<string, ExchangeResult>();
  /** every exchange call, including repeats of a key (what a provider would bill for: charges.size) */
  exchangeCalls = 0;
  readonly cards: SandboxCards;
  private readonly cardKey: Buffer;

  /**
   * `journal`: a file that outlives the process, as a provider's own records do. Charges already in it
   * are known again after a restart (a repeated key stays one charge), and every exchange appends one
   * JSON line: `{ key, charge, amountCents, currency, result }`, `charge: false` for a repeat.
   */
  constructor(
    private readonly journal?: string,
    opts: { cards?: SandboxCards; cardKey?: Buffer } = {},
  ) {
    this.cards = opts.cards ?? 'any';
    // without a key of its own (tests) the sandbox's tokens are good for this process only
    this.cardKey = opts.cardKey ?? randomBytes(32);
    if (!journal || !fs.existsSync(journal)) return;
    const text = fs.readFileSync(journal, 'utf8');
    // a torn last line stays apart from the next one appended
    if (text && !text.endsWith('\n')) appendFileDurable(journal, '\n');
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

  /**
   * A token as the sandbox's card form hands it to a buyer's page: `kind` `ok` approves, `decline_…`
   * is declined with that reason, `unavailable` makes the gateway unreachable (outage drills).
   */
  issueToken(kind = 'ok'): string {
    if (!SANDBOX_CARD_KINDS.test(kind)) throw new KitError('VALIDATION', `unknown sandbox card kind ${kind}`);
    const body = `${randomBytes(8).toString('hex')}${kind === 'ok' ? '' : `_${kind}`}`;
    return `tok_sandbox_${body}_${this.check(body)}`;
  }

  /** the body of a token this sandbox issued, or undefined (made up, or altered) */
  private issuedBody(token: string): string | undefined {
    const m = ISSUED_TOKEN.exec(token);
    if (!m) return undefined;
    const want = Buffer.from(this.check(m[1]!), 'hex');
    return timingSafeEqual(want, Buffer.from(m[2]!, 'hex')) ? m[1] : undefined;
  }

  private check(body: string): string {
    return createHmac('sha256', this.cardKey).update(body).digest('hex').slice(0, 32);
  }

  async exchange(req: ExchangeRequest): Promise<ExchangeResult> {
    this.exchangeCalls++;
    // strict: what decides is the body the sandbox signed, not what a buyer typed around it
    const strict = this.cards === 'strict' && req.token !== this.testToken;
    const body = strict ? this.issuedBody(req.token) : req.token;
    if (!this.available || body?.includes('unavailable')) {
      throw new KitError('GATEWAY_UNAVAILABLE', 'sandbox gateway: provider unreachable');
    }
    const seen = this.charges.get(req.idempotencyKey);
    if (seen) {
      this.record(req, seen, false);
      return seen;
    }
    // a token the provider never issued moves no money and is no charge (nothing is remembered)
    if (body === undefined) return { outcome: 'declined', reason: 'invalid_token' };
    const m = /decline(?:_([a-z_]+))?/.exec(body);
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
    // fsynced before the verdict is returned: a charge the hub records must still be known to the
    // provider's records after a power cut, or a retry under the same key would charge again
    appendFileDurable(this.journal, `${JSON.stringify(line)}\n`);
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

export function createGateway(
  name: 'sandbox',
  opts: { sandboxJournal?: string; sandboxCards?: SandboxCards; sandboxCardKey?: Buffer } = {},
): PaymentGateway {
  switch (name) {
    case 'sandbox':
      return new SandboxGateway(opts.sandboxJournal, {
        ...(opts.sandboxCards ? { cards: opts.sandboxCards } : {}),
        ...(opts.sandboxCardKey ? { cardKey: opts.sandboxCardKey } : {}),
      });
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
