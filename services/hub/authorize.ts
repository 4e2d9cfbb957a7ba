// The hub's side of the online card check (docs/security.md#online-authorization): a kit publishes an
// AuthorizeRequest on `kits/{kitId}/authorize` (MQTT 5: response topic + correlation data; MQTT 3.1.1:
// the same two in the payload's `reply`, answered with the payload's `correlation`) and waits
// a budget; the hub checks the request, records it, asks its PaymentGateway and answers on the kit's
// own `authorizations` topic. Authorization IS the ledger's exchange under the ledger's idempotency
// key `kitId:orderId`: when the order arrives later (carrying `payment.authRef`) its exchange is a
// repeat of that key, the same verdict and no second charge. A request that is not sound is refused,
// logged and counted, and has no effect: no row, no gateway call, no answer.
//
// The checks have a broker connection of their own: on the ingest's, mqtt.js handles one message at a
// time and a batch's commit (PUBACK after commit) would hold every check up behind it, during a drop
// exactly when both flow (bench/authorize.ts measured it: docs/scaling.md#the-online-card-check).
import fs from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { isSafeText } from '../../core/contracts/common.ts';
import {
  type AuthorizeRequestT,
  type AuthorizeResponseT,
  kitIdFromTopic,
  type MqttVersion,
  mqttProtocolLevel,
  safeReason,
  topics,
  wire,
} from '../../core/contracts/hub-wire.ts';
import { moduleLogger, redactUrl } from '../../core/logger.ts';
import { brokerTarget } from './broker-urls.ts';
import type { SqlDb } from './db.ts';
import { type PaymentGateway, Slots } from './gateway.ts';
import { KitBuckets } from './ingest.ts';

const log = moduleLogger('hub-authorize');

/** an AuthorizeRequest is a few hundred bytes; 8 KiB holds the largest the contract allows */
export const AUTHORIZE_MAX_BYTES = 8 * 1024;
/** correlation data is the kit's request id (≤ 64 bytes) */
const CORRELATION_MAX_BYTES = 64;
/**
 * The kit's deadline is its own clock: a hub clock this far ahead still answers. A kit whose clock
 * lags more sees every check dropped and sells by its offline rule (logged as `expired`).
 */
export const DEADLINE_SLACK_MS = 1000;

export interface AuthorizeProps {
  responseTopic?: string | undefined;
  correlationData?: Buffer | undefined;
}

/** `correlationData`: the MQTT 5 property to set; undefined for a 3.1.1 request (its answer's payload
 *  carries `correlation`) */
export type AuthorizeAnswer = (topic: string, payload: string, correlationData: Buffer | undefined) => void;

/** where an admitted request's answer goes and how it is correlated */
type ReplyForm = { form: '5'; correlationData: Buffer } | { form: '3.1.1'; correlation: string };

export interface AuthorizeBrokerOptions {
  brokerUrl: string;
  username?: string | undefined;
  password?: string | undefined;
  caFile?: string | undefined;
  /** the worker's id: the connection is `popkit-hub-<workerId>-authorize` */
  workerId: string;
  /** POPKIT_HUB_MQTT_VERSION; absent: 5 */
  mqttVersion?: MqttVersion | undefined;
  /** the ingest's finding: a shared subscription (one worker answers each check) or a plain one */
  shared: boolean;
  /** false: the checks come from elsewhere (a NATS queue group, services/hub/jetstream.ts) through
   *  handleExternal; this connection only answers */
  listen?: boolean | undefined;
  shareGroup: string;
}

export interface HubAuthorizeOptions {
  ratePerS: number;
  burst: number;
  /** gateway calls under way at most (POPKIT_HUB_GATEWAY_CONCURRENCY, like the ledger's) */
  concurrency: number;
  now?: () => number;
}

export interface AuthorizeStats {
  requests: number;
  approved: number;
  declined: number;
  unavailable: number;
  refused: Record<string, number>;
  orphansReported: number;
}

export interface OrphanAuthorization {
  kitId: string;
  requestId: string;
  orderId: string;
  amountCents: number;
  currency: string;
  verdict: 'approved' | null;
  gatewayRef: string | null;
  requestedAt: string;
  reportedAt: string | null;
}

export class HubAuthorize {
  readonly stats: AuthorizeStats = {
    requests: 0,
    approved: 0,
    declined: 0,
    unavailable: 0,
    refused: {},
    orphansReported: 0,
  };
  private readonly buckets: KitBuckets;
  private readonly slots: Slots;
  private readonly now: () => number;
  private client: MqttClient | undefined;
  private stopping = false;

  constructor(
    private readonly db: SqlDb,
    private readonly gateway: PaymentGateway,
    opts: HubAuthorizeOptions,
  ) {
    this.buckets = new KitBuckets(opts.ratePerS, opts.burst);
    this.slots = new Slots(opts.concurrency);
    this.now = opts.now ?? Date.now;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connect and subscribe `kits/+/authorize` (QoS 0: a check delivered late is of no use to a kit). */
  async start(o: AuthorizeBrokerOptions): Promise<void> {
    const clientOpts: IClientOptions = {
      protocolVersion: mqttProtocolLevel(o.mqttVersion ?? '5'),
      clientId: `popkit-hub-${o.workerId}-authorize`,
      // nothing to keep across a reconnect: a check not answered in its budget is the kit's fallback
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...(o.username ? { username: o.username } : {}),
      ...(o.password ? { password: o.password } : {}),
      ...(o.caFile ? { ca: fs.readFileSync(o.caFile) } : {}),
    };
    const target = brokerTarget(o.brokerUrl);
    const client = mqtt.connect(target.url, {
      ...clientOpts,
      ...(target.servers ? { servers: target.servers } : {}),
    });
    this.client = client;
    client.on('error', (err) => log.warn({ err: err.message }, 'authorize broker error'));
    client.on('message', (topic, payload, packet) => {
      if (this.stopping) return;
      void this.handle(topic, payload, packet.properties ?? {}, (t, p, correlationData) =>
        client.publish(t, p, { qos: 0, ...(correlationData ? { properties: { correlationData } } : {}) }),
      );
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    if (o.listen === false) {
      log.info({ broker: redactUrl(o.brokerUrl) }, 'online card checks answered (asked elsewhere)');
      return;
    }
    const filter = o.shared ? `$share/${o.shareGroup}/${topics.allAuthorize}` : topics.allAuthorize;
    await client.subscribeAsync({ [filter]: { qos: 0 } });
    log.info({ broker: redactUrl(o.brokerUrl), shared: o.shared }, 'online card checks answered');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.client?.endAsync(true);
  }

  /**
   * A request from elsewhere (the NATS queue group): a 3.1.1 kit's (no MQTT 5 properties cross the
   * gateway), answered over this MQTT connection as handle answers one off the broker.
   */
  handleExternal(topic: string, payload: Buffer): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return this.handle(topic, payload, {}, (t, p, correlationData) =>
      this.client?.publish(t, p, { qos: 0, ...(correlationData ? { properties: { correlationData } } : {}) }),
    );
  }

  /** One request as it came off the broker. Resolves once answered (or refused); never throws. */
  async handle(
    topic: string,
    payload: Buffer,
    props: AuthorizeProps,
    answer: AuthorizeAnswer,
  ): Promise<void> {
    try {
      const admitted = this.admit(topic, payload, props);
      if (!admitted) return;
      const { req, to } = admitted;
      const reply = (r: Omit<AuthorizeResponseT, 'v' | 'requestId' | 'correlation'>) => {
        // answered in the form it was asked in
        const msg: AuthorizeResponseT = {
          v: 1,
          requestId: req.requestId,
          ...r,
          ...(to.form === '3.1.1' ? { correlation: to.correlation } : {}),
        };
        this.stats[r.verdict]++;
        answer(
          topics.authorizations(req.kitId),
          JSON.stringify(msg),
          to.form === '5' ? to.correlationData : undefined,
        );
      };
      // a busy kit is answered at once: it falls back to its offline rule instead of waiting its budget
      if (!this.buckets.take(req.kitId)) {
        this.refuse('quota_rate', topic);
        return reply({ verdict: 'unavailable', reason: 'rate_limited' });
      }
      // written before the gateway is asked: a replayed request id finds its row, a crash leaves a trace
      const res = await this.db.query(
        `INSERT INTO authorizations (kit_id, request_id, order_id, amount_cents, currency)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kit_id, request_id) DO NOTHING RETURNING request_id`,
        [req.kitId, req.requestId, req.orderId, req.amountCents, req.currency],
      );
      if (res.rows.length === 0) return this.refuse('replay', topic, { requestId: req.requestId });
      let out: Omit<AuthorizeResponseT, 'v' | 'requestId' | 'correlation'>;
      try {
        const r = await this.slots.run(() =>
          this.gateway.exchange({
            // the ledger's key: the order's own exchange later is a repeat, not a second charge
            idempotencyKey: `${req.kitId}:${req.orderId}`,
            token: req.token,
            amountCents: req.amountCents,
            currency: req.currency,
          }),
        );
        out =
          r.outcome === 'approved'
            ? { verdict: 'approved', ref: r.ref }
            : { verdict: 'declined', reason: safeReason([r.reason]) };
      } catch (err) {
        log.warn({ err: (err as Error).message, kitId: req.kitId }, 'authorization: gateway unavailable');
        out = { verdict: 'unavailable', reason: 'gateway_unavailable' };
      }
      // answered first, recorded after: the kit's budget is short, the row already exists
      reply(out);
      await this.db.query(
        `UPDATE authorizations SET verdict = $3, gateway_ref = $4, reason = $5, answered_at = now()
         WHERE kit_id = $1 AND request_id = $2`,
        [req.kitId, req.requestId, out.verdict, out.ref ?? null, out.reason ?? null],
      );
    } catch (err) {
      // the database is away: no row, no exchange was made for it (or its row says NULL): the kit's
      // budget runs out and it falls back
      this.refuse('unprocessable', topic, (err as Error).message);
    }
  }

  /** The request, when it is sound, on its kit's topic, answerable and still awaited; else refused. */
  private admit(
    topic: string,
    payload: Buffer,
    props: AuthorizeProps,
  ): { req: AuthorizeRequestT; to: ReplyForm } | undefined {
    this.stats.requests++;
    if (payload.length > AUTHORIZE_MAX_BYTES)
      return void this.refuse('too_large', topic, { bytes: payload.length });
    const t = kitIdFromTopic(topic);
    if (t?.leaf !== 'authorize') return void this.refuse('topic', topic);
    let raw: unknown;
    try {
      raw = JSON.parse(payload.toString('utf8'));
    } catch {
      return void this.refuse('malformed', topic, 'not JSON');
    }
    // the request is read field by field, never merged; a key that only an attack sends is refused
    if (typeof raw === 'object' && raw !== null && Object.hasOwn(raw, '__proto__'))
      return void this.refuse('malformed', topic, '__proto__');
    if (!wire.authorizeRequest.check(raw))
      return void this.refuse('malformed', topic, wire.authorizeRequest.errors(raw, 3));
    const req = raw;
    // no control character travels on to a provider (the contract bounds the token's length only)
    if (!isSafeText(req.token)) return void this.refuse('malformed', topic, '/token: control character');
    // the broker binds a kit to its topics; the claim inside must match
    if (req.kitId !== t.kitId) return void this.refuse('kit_mismatch', topic, { claimed: req.kitId });
    const to = this.replyForm(topic, t.kitId, req, props);
    if (!to) return;
    if (req.deadline + DEADLINE_SLACK_MS < this.now())
      return void this.refuse('expired', topic, { lateMs: this.now() - req.deadline });
    return { req, to };
  }

  /**
   * Where the answer goes: MQTT 5 properties, or (MQTT 3.1.1) the payload's `reply`, checked alike and
   * never both. An answer goes to the requesting kit's own topic, never to another kit (or anywhere else).
   */
  private replyForm(
    topic: string,
    kitId: string,
    req: AuthorizeRequestT,
    props: AuthorizeProps,
  ): ReplyForm | undefined {
    const own = topics.authorizations(kitId);
    if (req.reply) {
      if (props.responseTopic !== undefined || props.correlationData !== undefined)
        return void this.refuse('reply_form', topic, 'both MQTT 5 properties and a payload reply');
      if (req.reply.topic !== own)
        return void this.refuse('response_topic', topic, { responseTopic: req.reply.topic });
      // its bounds and characters are the contract's (AuthorizeReply), checked with the request
      return { form: '3.1.1', correlation: req.reply.correlation };
    }
    if (props.responseTopic !== own)
      return void this.refuse('response_topic', topic, { responseTopic: props.responseTopic });
    const cd = props.correlationData;
    if (!cd || cd.length === 0 || cd.length > CORRELATION_MAX_BYTES)
      return void this.refuse('correlation', topic);
    return { form: '5', correlationData: cd };
  }

  private refuse(reason: string, topic: string, detail?: unknown): void {
    const n = (this.stats.refused[reason] ?? 0) + 1;
    this.stats.refused[reason] = n;
    // a flood is logged at the 1st, 2nd, 4th, 8th… of each reason
    if ((n & (n - 1)) !== 0) return;
    log.warn({ topic, reason, detail, count: n }, 'authorization refused');
  }

  /**
   * Approved (or never answered: a crash mid-exchange) authorizations whose order is not in the
   * ledger `olderThanMs` after the request: money the provider may hold for a sale that did not happen.
   */
  async orphans(olderThanMs: number, limit = 500): Promise<OrphanAuthorization[]> {
    const res = await this.db.query<OrphanRow>(
      `SELECT a.* FROM authorizations a
       WHERE (a.verdict IS NULL OR a.verdict = 'approved')
         AND a.requested_at < now() - make_interval(secs => $1::bigint / 1000.0)
         AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.kit_id = a.kit_id AND o.order_id = a.order_id)
       ORDER BY a.requested_at LIMIT $2`,
      [olderThanMs, limit],
    );
    return res.rows.map(orphanOf);
  }

  /**
   * Report each orphan once (a warning per authorization, `reported_at` set): the PaymentGateway has no
   * void, so an operator voids it at the provider (docs/security.md#online-authorization). Returns how
   * many were reported now.
   */
  async reportOrphans(olderThanMs: number): Promise<number> {
    const res = await this.db.query<OrphanRow>(
      `UPDATE authorizations a SET reported_at = now()
       WHERE a.reported_at IS NULL AND (a.verdict IS NULL OR a.verdict = 'approved')
         AND a.requested_at < now() - make_interval(secs => $1::bigint / 1000.0)
         AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.kit_id = a.kit_id AND o.order_id = a.order_id)
       RETURNING a.*`,
      [olderThanMs],
    );
    for (const r of res.rows.map(orphanOf))
      log.warn(
        { kitId: r.kitId, orderId: r.orderId, gatewayRef: r.gatewayRef, amountCents: r.amountCents },
        'authorization without its order: void it at the provider',
      );
    this.stats.orphansReported += res.rows.length;
    return res.rows.length;
  }
}

interface OrphanRow {
  kit_id: string;
  request_id: string;
  order_id: string;
  amount_cents: string | number;
  currency: string;
  verdict: 'approved' | null;
  gateway_ref: string | null;
  requested_at: Date | string;
  reported_at: Date | string | null;
}

function orphanOf(r: OrphanRow): OrphanAuthorization {
  return {
    kitId: r.kit_id,
    requestId: r.request_id,
    orderId: r.order_id,
    amountCents: Number(r.amount_cents),
    currency: r.currency,
    verdict: r.verdict,
    gatewayRef: r.gateway_ref,
    requestedAt: new Date(r.requested_at).toISOString(),
    reportedAt: r.reported_at ? new Date(r.reported_at).toISOString() : null,
  };
}
