// kitd on the kit's local MQTT bus: retained status with a last will (so a dead kitd shows as
// offline), lifecycle transitions as events, commands to media and to the process supervisor, and
// the other services' messages as heartbeats for the watchdog.
import mqtt, { type MqttClient } from 'mqtt';
import { moduleLogger } from '../core/logger.ts';

export interface KitdBus {
  publishStatus(status: Record<string, unknown>): void;
  publishEvent(e: Record<string, unknown>): void;
  /** `service` is the topic level: `media`, `sync`, `supervisor` … */
  command(service: string, cmd: Record<string, unknown>): void;
  onHeartbeat(cb: (service: string, atMs: number) => void): void;
  /** commands to kitd on `<prefix>/kitd/cmd` */
  onCommand(cb: (cmd: Record<string, unknown>) => void): void;
  readonly connected: boolean;
  close(): Promise<void>;
}

export class MqttKitdBus implements KitdBus {
  private readonly log = moduleLogger('kitd-bus');
  private client: MqttClient | undefined;
  private heartbeat: ((service: string, atMs: number) => void) | undefined;
  private commandHandler: ((cmd: Record<string, unknown>) => void) | undefined;

  constructor(
    private readonly url: string,
    private readonly prefix: string,
    private readonly kitId: string,
  ) {}

  get statusTopic(): string {
    return `${this.prefix}/kitd/status`;
  }

  get eventsTopic(): string {
    return `${this.prefix}/kitd/events`;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects in the background and keeps reconnecting: kitd never waits for the bus. */
  start(): void {
    const client = mqtt.connect(this.url, {
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
      client.subscribe(`${this.prefix}/+/+`, { qos: 0 }, (err) => {
        if (err) this.log.warn({ err: err.message }, 'cannot subscribe to heartbeats');
      });
    });
    client.on('message', (topic, payload, packet) => {
      // a retained message is old news replayed on subscribe, not a sign of life
      if (packet.retain) return;
      const rest = topic.slice(this.prefix.length + 1).split('/');
      const [service, leaf] = rest;
      if (service === 'kitd' && leaf === 'cmd') {
        try {
          const cmd = JSON.parse(payload.toString()) as unknown;
          if (cmd && typeof cmd === 'object' && !Array.isArray(cmd))
            this.commandHandler?.(cmd as Record<string, unknown>);
        } catch {
          this.log.warn({ topic }, 'malformed kitd command ignored');
        }
        return;
      }
      if (!service || service === 'kitd' || !leaf || leaf === 'cmd') return;
      if (!['status', 'stats', 'heartbeat'].includes(leaf)) return;
      try {
        const body = JSON.parse(payload.toString()) as { state?: string; online?: boolean };
        if (body.state === 'unavailable' || body.online === false) return;
      } catch {
        return;
      }
      this.heartbeat?.(service, Date.now());
    });
    client.on('error', (err) => this.log.warn({ err: err.message }, 'local bus error'));
    this.client = client;
  }

  publishStatus(status: Record<string, unknown>): void {
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

  command(service: string, cmd: Record<string, unknown>): void {
    this.client?.publish(`${this.prefix}/${service}/cmd`, JSON.stringify({ v: 1, ...cmd }), { qos: 1 });
  }

  onHeartbeat(cb: (service: string, atMs: number) => void): void {
    this.heartbeat = cb;
  }

  onCommand(cb: (cmd: Record<string, unknown>) => void): void {
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
