// A hub worker's JetStream side (POPKIT_HUB_INGEST=jetstream, docs/scaling.md#a-nats-cluster): on a NATS
// cluster the kits still speak MQTT 3.1.1 to the nodes' gateways, and NATS turns each publish into a
// message on a subject (popkit/v1/kits/K/orders → popkit.v1.kits.K.orders). A replicated work-queue
// stream keeps the kits' orders, telemetry and receipts; every worker pulls from one durable consumer,
// so each message goes to one worker, and acks it only after the ledger committed it: a worker that dies
// mid-batch leaves its messages unacked, and the stream hands them to another worker after ack_wait.
// Card checks come through a core NATS queue group (one worker answers each). What goes back to the kits
// (acks, catalogs, the seal key, card-check answers, alerts) still goes out over the worker's MQTT
// connection, so the kits keep MQTT's QoS 1 and retained messages. The processing is HubIngest's and
// HubAuthorize's own: this file only moves messages in.
import fs from 'node:fs';
import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection, nanos, type Subscription } from '@nats-io/transport-node';
import { KitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import type { HubAuthorize } from './authorize.ts';
import type { HubIngest } from './ingest.ts';
import { AUTHORIZE_SUBJECT, STREAM_SUBJECTS, topicFromSubject } from './jetstream-subjects.ts';

const log = moduleLogger('hub-jetstream');

export interface JetStreamIngestOptions {
  /** POPKIT_HUB_NATS_URL: comma-separated */
  natsUrl: string;
  user?: string | undefined;
  password?: string | undefined;
  caFile?: string | undefined;
  workerId: string;
  stream: string;
  consumer: string;
  replicas: number;
  ackWaitS: number;
  /** kits committed at the same time by this worker */
  concurrency: number;
  /** the core NATS queue group of the card checks */
  queueGroup: string;
}

export interface JetStreamStats {
  /** messages taken from the stream */
  received: number;
  /** acked after their commit */
  acked: number;
  /** terminated: refused for good (not retryable), or not a kit's subject */
  terminated: number;
  /** messages that came again (a worker died or was too slow with them) */
  redelivered: number;
  authorizeRequests: number;
}

/** how long one pull waits for messages before asking again (and noticing a stop) */
const PULL_EXPIRES_MS = 2000;

export class JetStreamIngest {
  private nc: NatsConnection | undefined;
  private authSub: Subscription | undefined;
  private stopping = false;
  private pulling: Promise<void> | undefined;
  /** per kit, the messages waiting behind the one being committed (one kit in order) */
  private readonly queues = new Map<string, JsMsg[]>();
  /** kits with messages and no runner yet */
  private readonly ready: string[] = [];
  private running = 0;
  /** messages taken and not yet acked/terminated */
  private held = 0;
  private wake: (() => void) | undefined;
  private readonly maxHeld: number;
  readonly stats: JetStreamStats = {
    received: 0,
    acked: 0,
    terminated: 0,
    redelivered: 0,
    authorizeRequests: 0,
  };

  constructor(
    private readonly ingest: HubIngest,
    private readonly authorize: HubAuthorize | undefined,
    private readonly opts: JetStreamIngestOptions,
  ) {
    // a few messages per kit lane ready to go: enough to keep the lanes busy, few enough that none
    // waits here anywhere near ack_wait
    this.maxHeld = opts.concurrency * 8;
  }

  /** false between a disconnect and the reconnect to another node */
  private linkUp = false;

  get connected(): boolean {
    return this.nc !== undefined && !this.nc.isClosed() && this.linkUp && !this.stopping;
  }

  async start(): Promise<void> {
    const nc = await connect({
      servers: this.opts.natsUrl.split(','),
      name: `popkit-hub-${this.opts.workerId}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      ...(this.opts.user ? { user: this.opts.user } : {}),
      ...(this.opts.password ? { pass: this.opts.password } : {}),
      ...(this.opts.caFile ? { tls: { ca: fs.readFileSync(this.opts.caFile, 'utf8') } } : {}),
    });
    this.nc = nc;
    this.linkUp = true;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') this.linkUp = false;
        if (s.type === 'reconnect') this.linkUp = true;
        if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error')
          log.warn({ status: s.type, server: 'server' in s ? s.server : undefined }, 'NATS connection');
      }
    })().catch(() => undefined);
    const jsm = await jetstreamManager(nc);
    await this.ensureStream(jsm);
    await this.ensureConsumer(jsm);
    const consumer = await jetstream(nc).consumers.get(this.opts.stream, this.opts.consumer);
    if (this.authorize) {
      const authorize = this.authorize;
      this.authSub = nc.subscribe(AUTHORIZE_SUBJECT, {
        queue: this.opts.queueGroup,
        callback: (err, msg) => {
          if (err || this.stopping) return;
          this.stats.authorizeRequests++;
          // a subject off the kits' shape becomes a topic off it: refused by handle as a stray MQTT topic
          const topic = topicFromSubject(msg.subject)?.topic ?? `invalid/${msg.subject.slice(0, 200)}`;
          void authorize.handleExternal(topic, Buffer.from(msg.data));
        },
      });
    }
    this.pulling = this.pullLoop(consumer);
    log.info(
      { stream: this.opts.stream, consumer: this.opts.consumer, replicas: this.opts.replicas },
      'hub ingest from JetStream started',
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.authSub?.unsubscribe();
    await this.pulling?.catch(() => undefined);
    // what is still queued here is not acked: the stream gives it to another worker after ack_wait
    await this.nc?.close().catch(() => undefined);
  }

  /** The stream, created by the first worker; a stream that exists is left as its operator made it. */
  private async ensureStream(jsm: JetStreamManager): Promise<void> {
    try {
      const info = await jsm.streams.info(this.opts.stream);
      if (info.config.retention !== RetentionPolicy.Workqueue)
        throw new KitError(
          'CONFIG_INVALID',
          `JetStream stream ${this.opts.stream} exists without work-queue retention`,
        );
      return;
    } catch (err) {
      if (err instanceof KitError) throw err;
      if (!isNotFound(err)) throw err;
    }
    try {
      await jsm.streams.add({
        name: this.opts.stream,
        subjects: [...STREAM_SUBJECTS],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        num_replicas: this.opts.replicas,
        // a kit resends what it has no ack for: a message stored twice is answered twice, the same way
        duplicate_window: nanos(60_000),
      });
      log.info({ stream: this.opts.stream, replicas: this.opts.replicas }, 'JetStream stream created');
    } catch (err) {
      // another worker created it in between
      if (!/already in use|already exists/i.test((err as Error).message)) throw err;
    }
  }

  private async ensureConsumer(jsm: JetStreamManager): Promise<void> {
    const config = {
      durable_name: this.opts.consumer,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(this.opts.ackWaitS * 1000),
      max_deliver: -1,
      max_ack_pending: 10_000,
      num_replicas: this.opts.replicas,
    };
    try {
      await jsm.consumers.info(this.opts.stream, this.opts.consumer);
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      await jsm.consumers.add(this.opts.stream, config);
    } catch (err) {
      if (!/already (in use|exists)/i.test((err as Error).message)) throw err;
    }
  }

  /** Pull while fewer than maxHeld messages are held; each pull waits at most PULL_EXPIRES_MS. */
  private async pullLoop(consumer: Consumer): Promise<void> {
    while (!this.stopping) {
      if (this.held >= this.maxHeld) {
        await new Promise<void>((r) => {
          this.wake = r;
        });
        continue;
      }
      try {
        const batch = await consumer.fetch({
          max_messages: this.maxHeld - this.held,
          expires: PULL_EXPIRES_MS,
        });
        for await (const m of batch) {
          if (this.stopping) break;
          this.dispatch(m);
        }
      } catch (err) {
        if (this.stopping) break;
        // a node gone, a consumer leader being elected: pull again shortly
        log.warn({ err: (err as Error).message }, 'JetStream pull failed');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private dispatch(m: JsMsg): void {
    this.held++;
    this.stats.received++;
    if (m.redelivered) this.stats.redelivered++;
    const topic = topicFromSubject(m.subject);
    if (!topic) {
      // not a kit's subject (the stream's filter lets nothing else in; an operator's publish might)
      this.ingest.refuseExternal('subject', m.subject.slice(0, 200));
      this.finish(m, 'term');
      return;
    }
    const key = topic.kitId;
    const q = this.queues.get(key);
    if (q) {
      q.push(m);
      return;
    }
    this.queues.set(key, [m]);
    this.ready.push(key);
    this.pump();
  }

  private pump(): void {
    while (this.running < this.opts.concurrency && this.ready.length > 0) {
      const key = this.ready.shift()!;
      this.running++;
      void this.runKit(key).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  /** One kit's messages, one after the other, in the order the stream gave them. */
  private async runKit(key: string): Promise<void> {
    const q = this.queues.get(key)!;
    while (q.length > 0) {
      const m = q.shift()!;
      if (this.stopping) {
        this.held--;
        continue; // not acked: redelivered to another worker
      }
      const topic = topicFromSubject(m.subject)!;
      // its ack_wait starts again now: the time it waited behind this kit's other messages does not count
      m.working();
      try {
        await this.ingest.handleExternal(topic.topic, Buffer.from(m.data));
        this.finish(m, 'ack');
      } catch (err) {
        if (this.stopping) {
          this.held--;
          continue;
        }
        // not retryable (withDbRetry waits out a database that is away): refused visibly, and
        // terminated so it does not come back forever; no application ack went out, the kit resends
        this.ingest.refuseExternal('unprocessable', topic.topic, (err as Error).message);
        this.finish(m, 'term');
      }
    }
    this.queues.delete(key);
  }

  private finish(m: JsMsg, how: 'ack' | 'term'): void {
    if (how === 'ack') {
      m.ack();
      this.stats.acked++;
    } else {
      m.term();
      this.stats.terminated++;
    }
    this.held--;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return (
    e?.api_error?.err_code === 10059 || // stream not found
    e?.api_error?.err_code === 10014 || // consumer not found
    /not found/i.test(e?.message ?? '')
  );
}
