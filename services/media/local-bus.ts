// Media on the kit's local MQTT bus: stats retained on `<prefix>/media/stats`, commands on
// `<prefix>/media/cmd` (topics and payloads in core/contracts/local-bus.ts and core/contracts/media.ts).
import type { Static } from '@sinclair/typebox';
import mqtt, { type MqttClient } from 'mqtt';
import type { LocalTopics } from '../../core/contracts/local-bus.ts';
import type { MediaGoneSchema, MediaStats } from '../../core/contracts/media.ts';
import type { Logger } from '../../core/logger.ts';
import { KIT_MQTT_OPTIONS } from '../../core/mqtt-options.ts';

export interface MediaBus {
  publishStats(stats: MediaStats): void;
  onCommand(handler: (payload: Buffer) => void): void;
  close(): Promise<void>;
}

export class MqttMediaBus implements MediaBus {
  private client: MqttClient | undefined;
  private handler: ((payload: Buffer) => void) | undefined;

  constructor(
    private readonly url: string,
    private readonly topics: LocalTopics,
    private readonly log: Logger,
  ) {}

  get statsTopic(): string {
    return this.topics.mediaStats;
  }

  get cmdTopic(): string {
    return this.topics.mediaCmd;
  }

  /** Connects in the background; a bus that is down never holds media up (mqtt.js reconnects). */
  start(): void {
    const gone: Static<typeof MediaGoneSchema> = { v: 1, state: 'unavailable', reason: 'media process gone' };
    const client = mqtt.connect(this.url, {
      ...KIT_MQTT_OPTIONS,
      clientId: `popkit-media-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      reconnectPeriod: 2000,
      connectTimeout: 5000,
      // Retained "unavailable" if media dies without saying goodbye.
      will: {
        topic: this.statsTopic,
        payload: Buffer.from(JSON.stringify(gone)),
        qos: 0,
        retain: true,
      },
    });
    client.on('connect', () => {
      client.subscribe(this.cmdTopic, { qos: 1 }, (err) => {
        if (err) this.log.warn({ err: err.message }, 'media: cannot subscribe to commands');
      });
    });
    client.on('message', (topic, payload) => {
      if (topic === this.cmdTopic) this.handler?.(payload);
    });
    client.on('error', (err) => this.log.warn({ err: err.message }, 'media: local bus error'));
    this.client = client;
  }

  publishStats(stats: MediaStats): void {
    if (!this.client?.connected) return;
    this.client.publish(this.statsTopic, JSON.stringify({ v: 1, ...stats }), { qos: 0, retain: true });
  }

  onCommand(handler: (payload: Buffer) => void): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync();
  }
}
