// Sync's end of the online card check (docs/security.md#online-authorization): checkout asks over a
// unix socket (core/contracts/authorize-relay.ts), sync forwards each request to the hub on its one
// MQTT client (MQTT 5: response topic + correlation data; 3.1.1: the same two in the payload,
// AuthorizeRequest.reply) and routes the hub's answer back to the
// socket that asked. It tells every connected checkout the hub link's state, so checkout knows at once
// whether asking is worth it. Tokens stay in memory: nothing here writes one anywhere.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import {
  RELAY_MAX_LINE,
  type RelayAnswerT,
  type RelayLinkT,
  relay,
} from '../../core/contracts/authorize-relay.ts';
import {
  type AuthorizeReplyT,
  type AuthorizeRequestT,
  type MqttVersion,
  topics,
  wire,
} from '../../core/contracts/hub-wire.ts';
import type { LinkState } from '../../core/contracts/run-status.ts';
import { moduleLogger } from '../../core/logger.ts';

const log = moduleLogger('sync-authorize');

export interface RelayLinkPort {
  state(): LinkState;
  /** the MQTT version the link speaks: where an answer's correlation is read */
  mqttVersion(): MqttVersion;
  request(topic: string, body: AuthorizeRequestT, reply: AuthorizeReplyT): boolean;
}

interface Pending {
  socket: net.Socket;
  timer: NodeJS.Timeout;
}

export class AuthorizeRelay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly pending = new Map<string, Pending>();
  readonly stats = {
    requests: 0,
    forwarded: 0,
    answered: 0,
    timedOut: 0,
    linkDown: 0,
    refused: 0,
    /** answers from the broker that were not sound or named no request of ours by their correlation */
    answersRefused: 0,
  };

  constructor(
    private readonly kitId: string,
    private readonly socketPath: string,
    private readonly link: RelayLinkPort,
  ) {}

  async listen(): Promise<void> {
    // a socket is recreated at every start: nothing in it survives a power cut, nothing needs to
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o700 });
    // a socket file left by a sync that died is no server: replace it
    fs.rmSync(this.socketPath, { force: true });
    const server = net.createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const listening = () => {
        server.off('error', reject);
        resolve();
      };
      if (!isMainThread) {
        // a worker of the combined kit process (`popkit kit`) may not set the umask, which is the whole
        // process's: the socket is made 0600 right after it is bound, and until then the data dir
        // around it (0700, made so at checkout's start) keeps other users out
        server.listen(this.socketPath, () => {
          try {
            fs.chmodSync(this.socketPath, 0o600);
          } catch (err) {
            server.close();
            reject(err);
            return;
          }
          listening();
        });
        return;
      }
      // created 0600 from the start: no moment at which another user could connect
      const mask = process.umask(0o177);
      try {
        server.listen(this.socketPath, listening);
      } finally {
        process.umask(mask);
      }
    });
    server.on('error', (err) => log.warn({ err: err.message }, 'authorize relay error'));
  }

  async close(): Promise<void> {
    for (const [id, p] of this.pending)
      this.answer(id, p, { verdict: 'unavailable', reason: 'sync_stopping' });
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }

  /** The hub link changed: every checkout hears it (and a link gone down answers what is waiting). */
  linkChanged(): void {
    const msg: RelayLinkT = { v: 1, type: 'link', state: this.link.state() };
    for (const s of this.sockets) send(s, msg);
  }

  /**
   * An answer on `kits/{kitId}/authorizations`: to the socket whose request it names. Its correlation
   * is the MQTT 5 correlation data, or over 3.1.1 the payload's `correlation`: only the one the link's
   * version carries counts.
   */
  onAnswer(payload: Buffer, correlationData: Buffer | undefined): void {
    const res = wire.authorizeResponse.parse(payload);
    if (!res) {
      this.stats.answersRefused++;
      return void log.warn('authorization answer refused: malformed');
    }
    const correlation = this.link.mqttVersion() === '5' ? correlationData?.toString('utf8') : res.correlation;
    // the correlation is what the request carried: an answer naming another request is no answer
    if (correlation === undefined || correlation !== res.requestId) {
      this.stats.answersRefused++;
      return void log.warn({ requestId: res.requestId }, 'authorization answer refused: correlation');
    }
    const p = this.pending.get(res.requestId);
    // late (checkout already fell back) or never asked
    if (!p) return;
    this.stats.answered++;
    this.answer(res.requestId, p, {
      verdict: res.verdict,
      ...(res.ref ? { ref: res.ref } : {}),
      ...(res.reason ? { reason: res.reason } : {}),
    });
  }

  private accept(s: net.Socket): void {
    this.sockets.add(s);
    s.on('close', () => {
      this.sockets.delete(s);
      for (const [id, p] of this.pending)
        if (p.socket === s) {
          clearTimeout(p.timer);
          this.pending.delete(id);
        }
    });
    s.on('error', () => s.destroy());
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        this.onLine(s, buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
      // not a peer of ours
      if (buf.length > RELAY_MAX_LINE) s.destroy();
    });
    send(s, { v: 1, type: 'link', state: this.link.state() } satisfies RelayLinkT);
  }

  private onLine(s: net.Socket, line: string): void {
    this.stats.requests++;
    const m = relay.authorize.parse(line);
    if (!m || this.pending.has(m.requestId)) {
      this.stats.refused++;
      return void log.warn(
        { errors: m ? 'request id in use' : relay.authorize.errors(safeJson(line), 3) },
        'relay request refused',
      );
    }
    const reply = (r: Omit<RelayAnswerT, 'v' | 'type' | 'requestId'>) =>
      send(s, { v: 1, type: 'answer', requestId: m.requestId, ...r } satisfies RelayAnswerT);
    const waitMs = m.deadline - Date.now();
    if (waitMs <= 0) {
      reply({ verdict: 'unavailable', reason: 'deadline' });
      return;
    }
    const req: AuthorizeRequestT = {
      v: 1,
      kitId: this.kitId,
      requestId: m.requestId,
      orderId: m.orderId,
      token: m.token,
      amountCents: m.amountCents,
      currency: m.currency,
      deadline: m.deadline,
    };
    const sent = this.link.request(topics.authorize(this.kitId), req, {
      topic: topics.authorizations(this.kitId),
      correlation: m.requestId,
    });
    if (!sent) {
      this.stats.linkDown++;
      reply({ verdict: 'unavailable', reason: 'link_down' });
      return;
    }
    this.stats.forwarded++;
    const timer = setTimeout(() => {
      const p = this.pending.get(m.requestId);
      if (!p) return;
      this.stats.timedOut++;
      this.answer(m.requestId, p, { verdict: 'unavailable', reason: 'timeout' });
    }, waitMs);
    this.pending.set(m.requestId, { socket: s, timer });
  }

  private answer(id: string, p: Pending, r: Omit<RelayAnswerT, 'v' | 'type' | 'requestId'>): void {
    clearTimeout(p.timer);
    this.pending.delete(id);
    send(p.socket, { v: 1, type: 'answer', requestId: id, ...r } satisfies RelayAnswerT);
  }
}

function send(s: net.Socket, msg: RelayAnswerT | RelayLinkT): void {
  if (!s.destroyed) s.write(`${JSON.stringify(msg)}\n`);
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return 'not JSON';
  }
}
