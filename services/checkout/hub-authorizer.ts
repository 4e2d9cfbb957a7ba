// The Authorizer of the online card check (docs/security.md#online-authorization), through sync: the
// kit's one hub connection is sync's, so checkout asks sync over the unix socket sync serves in the
// data dir (core/contracts/authorize-relay.ts). Online only while sync says the hub link is up; an
// answer is awaited for the budget at most, and anything but the hub's verdict in time (the relay or
// the link down, a timeout, the gateway unreachable) is `unavailable`: the caller's offline rule.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import {
  authorizeSocketPath,
  RELAY_MAX_LINE,
  type RelayAnswerT,
  type RelayAuthorizeT,
  relay,
} from '../../core/contracts/authorize-relay.ts';
import { isSafeText } from '../../core/contracts/common.ts';
import type { LinkState } from '../../core/contracts/run-status.ts';
import { moduleLogger } from '../../core/logger.ts';
import type { AuthorizeOutcome, AuthorizeRequestIn, Authorizer } from './authorizer.ts';

const log = moduleLogger('checkout-authorize');

type Answer = Omit<RelayAnswerT, 'v' | 'type' | 'requestId'>;

export interface HubAuthorizerStats {
  asked: number;
  approved: number;
  declined: number;
  unavailable: number;
}

export class HubAuthorizer implements Authorizer {
  private socket: net.Socket | undefined;
  private connected = false;
  private link: LinkState = 'down';
  private closing = false;
  private retry: NodeJS.Timeout | undefined;
  private readonly waiting = new Map<string, (a: Answer) => void>();
  readonly stats: HubAuthorizerStats = { asked: 0, approved: 0, declined: 0, unavailable: 0 };

  /** `socketPath`: sync's relay (default: the data dir's); `reconnectMs`: between attempts to reach it */
  constructor(
    private readonly socketPath: string,
    private readonly reconnectMs = 500,
  ) {}

  static forDataDir(dataDir: string): HubAuthorizer {
    return new HubAuthorizer(authorizeSocketPath(dataDir));
  }

  /** Connect to sync's relay, and keep reconnecting while it is away (sync restarts on its own). */
  start(): this {
    this.connect();
    return this;
  }

  online(): boolean {
    return this.connected && this.link === 'up';
  }

  async authorize(req: AuthorizeRequestIn, budgetMs: number): Promise<AuthorizeOutcome> {
    const t0 = performance.now();
    this.stats.asked++;
    const done = (a: Answer): AuthorizeOutcome => {
      this.stats[a.verdict]++;
      return {
        verdict: a.verdict,
        ...(a.ref ? { ref: a.ref } : {}),
        ...(a.reason ? { reason: a.reason } : {}),
        ms: performance.now() - t0,
      };
    };
    // a token with a control character is no card: refused here, it never travels
    if (!isSafeText(req.token)) return done({ verdict: 'declined', reason: 'invalid_token' });
    if (!this.online() || !this.socket) return done({ verdict: 'unavailable', reason: 'link_down' });
    const msg: RelayAuthorizeT = {
      v: 1,
      type: 'authorize',
      requestId: randomBytes(12).toString('hex'),
      orderId: req.orderId,
      token: req.token,
      amountCents: req.amountCents,
      currency: req.currency,
      deadline: Date.now() + budgetMs,
    };
    const shown: unknown = { ...msg, token: 'tok…' };
    if (!relay.authorize.check(msg)) {
      log.warn({ errors: relay.authorize.errors(shown, 3) }, 'authorization not asked');
      return done({ verdict: 'unavailable', reason: 'invalid_request' });
    }
    const socket = this.socket;
    const answer = await new Promise<Answer>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(msg.requestId);
        resolve({ verdict: 'unavailable', reason: 'timeout' });
      }, budgetMs);
      this.waiting.set(msg.requestId, (a) => {
        clearTimeout(timer);
        this.waiting.delete(msg.requestId);
        resolve(a);
      });
      socket.write(`${JSON.stringify(msg)}\n`);
    });
    return done(answer);
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.retry) clearTimeout(this.retry);
    this.socket?.destroy();
    this.failAll('relay_down');
  }

  private connect(): void {
    if (this.closing) return;
    const s = net.createConnection(this.socketPath);
    this.socket = s;
    s.setEncoding('utf8');
    s.on('connect', () => {
      this.connected = true;
    });
    let buf = '';
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        this.onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
      if (buf.length > RELAY_MAX_LINE) s.destroy();
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.socket !== s) return;
      this.connected = false;
      this.link = 'down';
      this.socket = undefined;
      this.failAll('relay_down');
      if (!this.closing) {
        this.retry = setTimeout(() => this.connect(), this.reconnectMs);
        this.retry.unref();
      }
    });
  }

  private onLine(line: string): void {
    const m = relay.fromSync.parse(line);
    if (!m) return void log.warn('relay message refused: malformed');
    if (m.type === 'link') {
      this.link = m.state;
      return;
    }
    this.waiting.get(m.requestId)?.({
      verdict: m.verdict,
      ...(m.ref ? { ref: m.ref } : {}),
      ...(m.reason ? { reason: m.reason } : {}),
    });
  }

  private failAll(reason: string): void {
    for (const resolve of [...this.waiting.values()]) resolve({ verdict: 'unavailable', reason });
  }
}
