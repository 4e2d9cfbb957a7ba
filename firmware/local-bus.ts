// kitd on the kit's local MQTT bus: retained status with a last will (so a dead kitd shows as
// offline), lifecycle transitions as events, commands to media, sync and the process supervisor, and
// the other services' messages as heartbeats for the watchdog. Topics and payloads are the local-bus
// contract's (core/contracts/local-bus.ts, docs/contracts.md#local-bus-mqtt).
import mqtt, { type MqttClient } from 'mqtt';
import {
  HEARTBEAT_LEAVES,
  type KitdCommand,
  kitdCommand,
  type LocalTopics,
  localTopics,
  type SupervisorCommand,
  type SyncCommand,
} from '../core/contracts/local-bus.ts';
import type { MediaCommand } from '../core/contracts/media.ts';
import type { KitdRunStatusT } from '../core/contracts/run-status.ts';
import { KitError } from '../core/errors.ts';
import { moduleLogger } from '../core/logger.ts';
import { KIT_MQTT_OPTIONS } from '../core/mqtt-options.ts';

export interface KitdBus {
  publishStatus(status: KitdRunStatusT): void;
  publishEvent(e: Record<string, unknown>): void;
  /** `<prefix>/media/cmd`: power policy's steps, pause and resume */
  commandMedia(cmd: MediaCommand): void;
  /** `<prefix>/supervisor/cmd`: ask `popkit up`'s process supervisor to restart `service` */
  requestRestart(service: string): void;
  /** `<prefix>/sync/cmd`: push the outbox now */
  flushSync(): void;
  onHeartbeat(cb: (service: string, atMs: number) => void): void;
  /** commands to kitd on `<prefix>/kitd/cmd`, already checked against the contract */
  onCommand(cb: (cmd: KitdCommand) => void): void;
  readonly connected: boolean;
  close(): Promise<void>;
}

/**
 * A kitd command from a decoded payload; a BAD_REQUEST naming what is wrong otherwise. A `press`
 * whose `ms` is out of range falls back to the default length, as it always has.
 */
export function readKitdCommand(value: unknown): KitdCommand {
  const c =
    value && typeof value === 'object' && !Array.isArray(value)
      ? { ...(value as Record<string, unknown>) }
      : {};
  const ms = c['ms'];
  if (c['cmd'] === 'press' && !(typeof ms === 'number' && ms > 0 && ms <= 60_000)) delete c['ms'];
  if (kitdCommand.check(c)) return c;
  if (c['cmd'] === 'action' && typeof c['action'] === 'string') {
    throw new KitError('BAD_REQUEST', `unknown action '${c['action']}'`);
  }
  if (c['cmd'] === 'press') throw new KitError('BAD_REQUEST', "button must be 'a' or 'b'");
  throw new KitError(
    'BAD_REQUEST',
    `unknown kitd command ${JSON.stringify(c['cmd'])} (${kitdCommand.errors(c, 1).join('; ')})`,
  );
}

export class MqttKitdBus implements KitdBus {
  private readonly log = moduleLogger('kitd-bus');
  private readonly topics: LocalTopics;
  private client: MqttClient | undefined;
  private heartbeat: ((service: string, atMs: number) => void) | undefined;
  private commandHandler: ((cmd: KitdCommand) => void) | undefined;

  constructor(
    private readonly url: string,
    prefix: string,
    private readonly kitId: string,
  ) {
    this.topics = localTopics(prefix);
  }

  get statusTopic(): string {
    return this.topics.kitdStatus;
  }

  get eventsTopic(): string {
    return this.topics.kitdEvents;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects in the background and keeps reconnecting: kitd never waits for the bus. */
  start(): void {
    const client = mqtt.connect(this.url, {
      ...KIT_MQTT_OPTIONS,
      clientId: `popkit-kitd-${this.kitId}-${process.pid}-${Math.random().toString(16).slice(2, 6)}`,
      reconnectPeriod: 2000,
      connectTimeout: 5000,
      will: {
        topic: this.statusTopic,
        payload: Buffer.from(JSON.stringify({ v: 1, kitId: this.kitId, online: false, state: 'unknown' })),
        qos: 1,
        retain: true,
      },
    });
    client.on('connect', () => {
      client.subscribe(this.topics.everything, { qos: 0 }, (err) => {
        if (err) this.log.warn({ err: err.message }, 'cannot subscribe to heartbeats');
      });
    });
    client.on('message', (topic, payload, packet) => {
      // a retained message is old news replayed on subscribe, not a sign of life
      if (!packet.retain) this.onMessage(topic, payload);
    });
    client.on('error', (err) => this.log.warn({ err: err.message }, 'local bus error'));
    this.client = client;
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === this.topics.kitdCmd) {
      this.onKitdCommand(topic, payload);
      return;
    }
    const t = this.topics.parse(topic);
    if (!t || t.service === 'kitd' || !(HEARTBEAT_LEAVES as readonly string[]).includes(t.leaf)) return;
    try {
      const body = JSON.parse(payload.toString()) as { state?: string; online?: boolean };
      if (body.state === 'unavailable' || body.online === false) return;
    } catch {
      return;
    }
    this.heartbeat?.(t.service, Date.now());
  }

  private onKitdCommand(topic: string, payload: Buffer): void {
    let value: unknown;
    try {
      value = JSON.parse(payload.toString());
    } catch {
      this.log.warn({ topic }, 'malformed kitd command ignored');
      return;
    }
    let cmd: KitdCommand;
    try {
      cmd = readKitdCommand(value);
    } catch (err) {
      this.log.warn({ err, cmd: value }, 'kitd command refused');
      return;
    }
    this.commandHandler?.(cmd);
  }

  publishStatus(status: KitdRunStatusT): void {
    if (!this.client?.connected) return;
    this.client.publish(
      this.statusTopic,
      JSON.stringify({ v: 1, kitId: this.kitId, online: true, ...status }),
      { qos: 0, retain: true },
    );
  }

  publishEvent(e: Record<string, unknown>): void {
    // QoS 1 and queued while offline: mqtt.js holds it until the broker is back
    this.client?.publish(this.eventsTopic, JSON.stringify({ v: 1, kitId: this.kitId, ...e }), { qos: 1 });
  }

  commandMedia(cmd: MediaCommand): void {
    this.send(this.topics.mediaCmd, cmd);
  }

  requestRestart(service: string): void {
    const cmd: SupervisorCommand = { v: 1, cmd: 'restart', service };
    this.send(this.topics.supervisorCmd, cmd);
  }

  flushSync(): void {
    const cmd: SyncCommand = { v: 1, cmd: 'flush' };
    this.send(this.topics.syncCmd, cmd);
  }

  private send(topic: string, cmd: MediaCommand | SupervisorCommand | SyncCommand): void {
    this.client?.publish(topic, JSON.stringify(cmd), { qos: 1 });
  }

  onHeartbeat(cb: (service: string, atMs: number) => void): void {
    this.heartbeat = cb;
  }

  onCommand(cb: (cmd: KitdCommand) => void): void {
    this.commandHandler = cb;
  }

  /** Says goodbye on purpose: a retained offline status, then a clean disconnect (no will). */
  async close(final?: Record<string, unknown>): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (!c) return;
    if (c.connected) {
      await c
        .publishAsync(
          this.statusTopic,
          JSON.stringify({ v: 1, kitId: this.kitId, online: false, ...(final ?? { state: 'off' }) }),
          { qos: 1, retain: true },
        )
        .catch(() => undefined);
    }
    await c.endAsync().catch(() => undefined);
  }
}
