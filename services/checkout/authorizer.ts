// The online card check for scarce items (docs/security.md#drain-proofing): while the hub link is up,
// the kit asks the hub's gateway to authorize a buyer's token before it answers 201, within a latency
// budget; on a timeout, an unreachable gateway or a link that is down it falls back to its offline rule.
// The drain-proofing feature calls an Authorizer; the hub link implements it.

export interface AuthorizeRequestIn {
  /** the order id the kit will store if approved (the hub captures against it) */
  orderId: string;
  token: string;
  amountCents: number;
  currency: string;
}

export interface AuthorizeOutcome {
  /** `unavailable`: no answer within the budget, or the link or the gateway is down */
  verdict: 'approved' | 'declined' | 'unavailable';
  ref?: string;
  reason?: string;
  /** how long the hop took */
  ms: number;
}

export interface Authorizer {
  /** true when asking is worth it (the hub link is up) */
  online(): boolean;
  authorize(req: AuthorizeRequestIn, budgetMs: number): Promise<AuthorizeOutcome>;
  close?(): Promise<void>;
}
