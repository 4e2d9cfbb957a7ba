// The hub link: sync's one MQTT client. A persistent session (acks the hub sent while the link was
// down are kept for the kit), a retained last will that says `online: false`, and reconnects of our
// own, with exponential backoff and equal jitter (core/backoff.ts), so a venue full of kits coming
// back after an uplink cut does not hit the broker in lockstep. mqtt.js's in-memory queue is never
// relied upon: what is unacked when the link drops is resent from the outbox.
//
// MQTT 5 by default; POPKIT_SYNC_MQTT_VERSION=3.1.1 for a broker that speaks nothing newer. The session
// is the same `clean: false` one under the same client id (its expiry is then the broker's rule, not
// our 7 days), and a request carries its reply topic and correlation in its payload (AuthorizeReply).
//
// POPKIT_HUB_URL may list several URLs (the nodes of one clustered broker, e.g. a NATS cluster's MQTT
// gateways): the link uses one at a time and moves to the next each time a connection fails or drops, so
// a dead node costs one backoff step, not the link. The session (and so the acks waiting in it) is the
// cluster's, not the node's.
//
// Redundant uplinks (#17, uplinks.ts): with POPKIT_SYNC_BIND_LINKS=auto and kitd's links known, each
// connection is bound to one link, the unmetered first; a connection that fails or drops moves to the
// next link (then to a plain connection, then, round again, to the next URL), and every second the
// link in use is compared with kitd's view: a link that went away, or a cheaper one (unmetered) that is
// back, moves the connection at once, without a backoff step.
import mqtt, { type IClientOptions, type IPublishPacket, MqttClient } from 'mqtt';
import { Backoff } from '../../core/backoff.ts';
import { hubUrlList } from '../../core/config.ts';
import {
  type AuthorizeReplyT,
  type AuthorizeRequestT,
  type KitStatusT,
  type MqttVersion,
  mqttProtocolLevel,
  topics,
} from '../../core/contracts/hub-wire.ts';
import type { LinkState } from '../../core/contracts/run-status.ts';
import { KitError } from '../../core/errors.ts';
import { moduleLogger, redactUrl } from '../../core/logger.ts';
import { KIT_MQTT_OPTIONS } from '../../core/mqtt-options.ts';
import {
  type BindLinksMode,
  boundStream,
  hubTarget,
  LinkRotation,
  type UplinkCandidate,
} from '../../core/uplinks.ts';

const log = moduleLogger('sync');

/** URL schemes whose traffic is encrypted (mqtt.js: ssl/tls are mqtts) */
const ENCRYPTED = new Set(['mqtts:', 'wss:', 'ssl:', 'tls:']);

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Card tokens travel in the batches: a hub URL that is not encrypted (mqtt://, ws://, tcp://) is refused
 * unless it points at this machine (the embedded hub) or POPKIT_HUB_ALLOW_PLAINTEXT=1 says so. A list
 * (comma-separated) is checked URL by URL.
 */
export function refusePlaintextHub(hubUrls: string, allowPlaintext: boolean | undefined): void {
  for (const u of hubUrlList(hubUrls)) refusePlaintextUrl(u, allowPlaintext);
}

function refusePlaintextUrl(hubUrl: string, allowPlaintext: boolean | undefined): void {
  let url: URL;
  try {
    url = new URL(hubUrl);
  } catch {
    throw new KitError('CONFIG_INVALID', `POPKIT_HUB_URL is not a URL: ${redactUrl(hubUrl)}`);
  }
  if (ENCRYPTED.has(url.protocol) || allowPlaintext || isLoopback(url.hostname)) return;
  throw new KitError(
    'CONFIG_INVALID',
    `POPKIT_HUB_URL ${redactUrl(hubUrl)} is plaintext (${url.protocol}//) to another machine: card tokens ` +
      'would cross the network in the clear. Use mqtts:// (TLS, POPKIT_HUB_CA_FILE for a private CA), ' +
      'or set POPKIT_HUB_ALLOW_PLAINTEXT=1 on a network you trust.',
    { hubUrl: redactUrl(hubUrl), protocol: url.protocol },
  );
}

export interface HubLinkOptions {
  kitId: string;
  /** POPKIT_HUB_URL: one URL, or several comma-separated (nodes of one clustered broker) */
  hubUrl: string;
  /** POPKIT_HUB_ALLOW_PLAINTEXT: a plaintext hub URL to another machine is accepted */
  allowPlaintext?: boolean | undefined;
  username?: string | undefined;
  password?: string | undefined;
  ca?: Buffer | undefined;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** POPKIT_SYNC_MQTT_VERSION; absent: 5 */
  mqttVersion?: MqttVersion | undefined;
  /** POPKIT_SYNC_BIND_LINKS; absent: off (plain connections) */
  bindLinks?: BindLinksMode | undefined;
  /** POPKIT_SYNC_KEEPALIVE_S; absent: 60 */
  keepaliveS?: number | undefined;
}

/** kitd's links as sync reads them (metered.ts UplinkGate): the candidates, and which one is in use */
export interface UplinkSource {
  links(): UplinkCandidate[];
  bound(via: string | null): void;
}

/** how often the link in use is compared with kitd's view */
export const LINK_CHECK_MS = 1000;
const CONNECT_TIMEOUT_MS = 10_000;

/** how long close() waits for the broker (the bye's PUBACK, then a graceful end) */
export const CLOSE_WAIT_MS = 3000;

/** `p`'s value, or undefined once `ms` passed first */
function within<T>(ms: number, p: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** what a kit's persistent session asks of an MQTT 5 broker: kept a week while the kit is away */
export const SESSION_EXPIRY_S = 7 * 24 * 3600;

export interface HubLinkEvents {
  /** connected (first time or again): subscribe, announce, pump */
  up(): void;
  /** the connection closed; a reconnect is scheduled unless the link is closing */
  down(): void;
  /** `props`: the MQTT 5 properties (correlation data of an answer to a request); none over 3.1.1 */
  message(topic: string, payload: Buffer, props: IPublishPacket['properties']): void;
  /** the link state changed in a way /v1/status should show at once */
  changed(): void;
}

export class HubLink {
  private client: MqttClient | undefined;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private readonly urls: string[];
  private urlIndex = 0;
  state: LinkState = 'connecting';
  reconnects = 0;
  /** SUBSCRIBEs the broker refused (each retried) */
  subscribeRefusals = 0;

  private readonly rotation = new LinkRotation();
  private linkTimer: NodeJS.Timeout | undefined;
  /** socat is not installed, or binding to a link is not permitted here: plain connections from then on */
  private bindBroken = false;

  constructor(
    private readonly opts: HubLinkOptions,
    private readonly on: HubLinkEvents,
    private readonly uplinks?: UplinkSource,
  ) {
    refusePlaintextHub(opts.hubUrl, opts.allowPlaintext);
    this.urls = hubUrlList(opts.hubUrl);
    this.backoff = new Backoff({
      initialMs: opts.backoffMinMs,
      maxMs: opts.backoffMaxMs,
      jitter: 'equal',
    });
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** the broker URL the link uses now (one of POPKIT_HUB_URL's) */
  get currentUrl(): string {
    return this.urls[this.urlIndex]!;
  }

  get mqttVersion(): MqttVersion {
    return this.opts.mqttVersion ?? '5';
  }

  get closed(): boolean {
    return this.closing;
  }

  /** the link the current (or last) connection is bound to; null: not bound */
  get via(): string | null {
    return this.rotation.via;
  }

  /** kitd's links this URL may be bound to now, best first; none: a plain connection */
  private candidates(url: string): UplinkCandidate[] {
    if (this.opts.bindLinks !== 'auto' || !this.uplinks || this.bindBroken || !hubTarget(url)) return [];
    return this.uplinks.links();
  }

  open(): void {
    const { kitId } = this.opts;
    const offline: KitStatusT = { v: 1, kitId, online: false, at: Date.now() };
    const v5 = this.mqttVersion === '5';
    const clientOpts: IClientOptions = {
      ...KIT_MQTT_OPTIONS,
      protocolVersion: mqttProtocolLevel(this.mqttVersion),
      clientId: `popkit-sync-${kitId}`,
      // a persistent session keeps acks the hub sent while the link was down (over 3.1.1 the broker
      // keeps it until its own expiry, e.g. Mosquitto's persistent_client_expiration)
      clean: false,
      ...(v5 ? { properties: { sessionExpiryInterval: SESSION_EXPIRY_S } } : {}),
      // reconnects are ours (exponential backoff with jitter), not mqtt.js's fixed period
      reconnectPeriod: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      keepalive: this.opts.keepaliveS ?? 60,
      username: this.opts.username ?? kitId,
      ...(this.opts.password ? { password: this.opts.password } : {}),
      ...(this.opts.ca ? { ca: this.opts.ca } : {}),
      will: {
        topic: topics.status(kitId),
        payload: Buffer.from(JSON.stringify(offline)),
        qos: 1,
        retain: true,
      },
    };
    this.clientOpts = clientOpts;
    this.connectTo(this.currentUrl, this.rotation.first(this.candidates(this.currentUrl)));
    if (this.opts.bindLinks === 'auto' && this.uplinks) {
      this.linkTimer = setInterval(() => this.checkLink(), LINK_CHECK_MS);
      this.linkTimer.unref();
    }
  }

  private clientOpts: IClientOptions = {};

  /** A new client for `url`, bound to `via` (uplinks.ts) or, null, a plain connection as before #17. */
  private connectTo(url: string, via: string | null): void {
    const target = via === null ? undefined : hubTarget(url);
    let client: MqttClient;
    if (via !== null && target) {
      log.info({ hub: redactUrl(url), via }, 'hub link: connecting over link');
      const streamOpts = { ca: this.opts.ca, connectTimeoutMs: CONNECT_TIMEOUT_MS };
      client = new MqttClient(
        () => {
          const s = boundStream(target, via, {
            ...streamOpts,
            onLinkError: (err) => {
              if ((err.code !== 'ENOENT' && err.code !== 'EPERM') || this.bindBroken) return;
              this.bindBroken = true;
              log.error(
                { err: err.message },
                err.code === 'ENOENT'
                  ? 'hub link: socat is not installed: plain connections from now on (scripts/setup.sh)'
                  : 'hub link: binding to a link is not permitted here (SO_BINDTODEVICE): plain connections from now on',
              );
            },
          });
          return s;
        },
        { ...this.clientOpts, protocol: target.tls ? 'mqtts' : 'mqtt', host: target.host, port: target.port },
      );
    } else {
      if (via !== null) this.rotation.via = null;
      client = mqtt.connect(url, this.clientOpts);
    }
    this.client = client;
    client.on('connect', () => this.onConnect());
    client.on('close', () => this.onClose());
    client.on('error', (err) =>
      log.warn({ err: err.message, hub: redactUrl(url), via: this.rotation.via }, 'hub link error'),
    );
    client.on('message', (topic, payload, packet) => this.on.message(topic, payload, packet.properties));
  }

  /** Drop the current client without its events (its end must not count as this link's close). */
  private dropClient(): void {
    const old = this.client;
    old?.removeAllListeners();
    old?.on('error', () => undefined);
    old?.end(true);
  }

  /**
   * Once a second: is the link in use still the one to use? kitd no longer lists it as connected, or a
   * cheaper link is back (uplinks.ts LinkRotation.preferred): move now, no backoff step (nothing failed
   * that a pause would help). While a reconnect is scheduled the next attempt chooses anyway.
   */
  private checkLink(): void {
    if (this.closing || this.reconnectTimer) return;
    const cands = this.candidates(this.currentUrl);
    const move = this.rotation.preferred(cands);
    if (!move || move.to === this.rotation.via) return;
    log.warn({ from: this.rotation.via, to: move.to }, 'hub link: moving to another link');
    const wasUp = this.state === 'up';
    this.dropClient();
    this.rotation.via = move.to;
    this.reconnects++;
    this.state = 'connecting';
    if (wasUp) this.on.down();
    this.on.changed();
    this.connectTo(this.currentUrl, move.to);
  }
  /** Publish QoS 1; a failure is logged (the outbox resends what was not acked). */
  publish(topic: string, payload: string, retain = false, onError?: (err: Error) => void): void {
    this.client?.publish(topic, payload, { qos: 1, retain }, (err) => {
      if (err && !this.closing)
        (onError ?? ((e) => log.warn({ err: e.message, topic }, 'publish failed')))(err);
    });
  }

  /**
   * A request (QoS 0: its asker waits a budget, a late delivery is of no use): false when the link is
   * not up, so the asker falls back at once. MQTT 5: `reply` goes as the response topic and correlation
   * data; 3.1.1: inside the payload (`AuthorizeRequest.reply`).
   */
  request(topic: string, body: AuthorizeRequestT, reply: AuthorizeReplyT): boolean {
    const client = this.client;
    if (!client?.connected || this.closing) return false;
    if (this.mqttVersion === '5')
      client.publish(topic, JSON.stringify(body), {
        qos: 0,
        properties: { responseTopic: reply.topic, correlationData: Buffer.from(reply.correlation, 'utf8') },
      });
    else client.publish(topic, JSON.stringify({ ...body, reply }), { qos: 0 });
    return true;
  }

  /**
   * Subscribe QoS 1. A refusal (SUBACK 0x80: a NATS node whose streams are electing leaders after a
   * peer died) is retried every second while this connection lasts: the session is persistent, so a
   * refused acks or catalog filter would otherwise stay missing until the next reconnect.
   */
  subscribe(topicsToAdd: string[]): void {
    const client = this.client;
    if (!client) return;
    const subs: Record<string, { qos: 1 }> = {};
    for (const t of topicsToAdd) subs[t] = { qos: 1 };
    client.subscribe(subs, (err) => {
      if (!err) return;
      this.subscribeRefusals++;
      log.warn({ err: err.message }, 'subscribe failed: trying again in 1 s');
      setTimeout(() => {
        if (!this.closing && this.client === client && client.connected) this.subscribe(topicsToAdd);
      }, 1000).unref();
    });
  }

  unsubscribe(topic: string): void {
    this.client?.unsubscribe(topic);
  }

  /**
   * kitd's "flush" (critical power, safe shutdown): don't sit out a reconnect backoff, try the link
   * now.
   */
  reconnectNow(): void {
    if (this.closing || !this.reconnectTimer) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.reconnect();
  }

  /**
   * Close the link; `bye` (a retained offline status) goes out first when the link is up. Neither the
   * bye's PUBACK nor a graceful end (mqtt.js waits for every QoS 1 message in flight to be PUBACKed) is
   * waited for longer than CLOSE_WAIT_MS: a broker that never answers (a NATS node whose streams are
   * electing leaders) must not hold a stop up; what was in flight is resent from the outbox.
   */
  async close(bye?: { topic: string; payload: string }): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.linkTimer) clearInterval(this.linkTimer);
    const client = this.client;
    if (client?.connected && bye) {
      await within(
        CLOSE_WAIT_MS,
        client.publishAsync(bye.topic, bye.payload, { qos: 1, retain: true }).catch(() => undefined),
      );
    }
    if (
      client &&
      !(await within(
        CLOSE_WAIT_MS,
        client.endAsync().then(
          () => true,
          () => true,
        ),
      ))
    ) {
      log.warn('hub link: the broker did not acknowledge what was in flight; closed anyway');
      await client.endAsync(true).catch(() => undefined);
    }
    this.state = 'down';
  }

  private onConnect(): void {
    this.state = 'up';
    this.backoff.reset();
    this.rotation.succeeded();
    this.uplinks?.bound(this.rotation.via);
    log.info({ hub: redactUrl(this.currentUrl), via: this.rotation.via }, 'hub link up');
    // a link change shows in /v1/status at once, not at the next tick
    this.on.changed();
    this.on.up();
  }

  private onClose(): void {
    if (this.state === 'up') log.warn('hub link down');
    this.state = this.closing ? 'down' : 'connecting';
    this.on.down();
    if (this.closing || this.reconnectTimer) return;
    const delay = this.backoff.next();
    this.state = 'down';
    this.on.changed();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closing) this.reconnect();
    }, delay);
  }

  private reconnect(): void {
    this.reconnects++;
    this.state = 'connecting';
    const wasVia = this.rotation.via;
    const { via, wrapped } = this.rotation.next(this.candidates(this.currentUrl));
    if (this.urls.length === 1 && via === null && wasVia === null) {
      this.client?.reconnect();
      return;
    }
    // another link or the next node of the cluster: a fresh client (mqtt.js reconnects over the stream
    // and URL it was made with); the old one is dropped without its events
    this.dropClient();
    if (wrapped && this.urls.length > 1) {
      this.urlIndex = (this.urlIndex + 1) % this.urls.length;
      log.info({ hub: redactUrl(this.currentUrl) }, 'hub link: trying the next broker URL');
      // the new URL's links, from the best
      this.connectTo(this.currentUrl, this.rotation.first(this.candidates(this.currentUrl)));
      return;
    }
    this.connectTo(this.currentUrl, via);
  }
}
