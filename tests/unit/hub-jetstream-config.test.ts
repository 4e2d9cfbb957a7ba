// POPKIT_HUB_INGEST=jetstream: its configuration, and the subjects off the stream read back into the kits'
// MQTT topics as strictly as kitIdFromTopic reads a topic (hostile values refused, never thrown on).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../core/config.ts';
import { kitIdFromTopic, topics } from '../../core/contracts/hub-wire.ts';
import { HubConfig } from '../../services/hub/config.ts';
import { kitIdToken, topicFromSubject } from '../../services/hub/jetstream-subjects.ts';

describe('jetstream ingest configuration', () => {
  test('defaults: the MQTT ingest; R3, a named stream and consumer, a few kits at once', () => {
    const cfg = loadConfig(HubConfig, {});
    assert.equal(cfg.POPKIT_HUB_INGEST, 'mqtt');
    assert.equal(cfg.POPKIT_HUB_NATS_URL, 'nats://127.0.0.1:4222');
    assert.equal(cfg.POPKIT_HUB_JS_REPLICAS, 3);
    assert.equal(cfg.POPKIT_HUB_JS_STREAM, 'POPKIT_KITS');
    assert.equal(cfg.POPKIT_HUB_JS_CONSUMER, 'popkit-hub');
    assert.equal(cfg.POPKIT_HUB_JS_CONCURRENCY, 4);
    assert.equal(cfg.POPKIT_HUB_JS_ACK_WAIT_S, 30);
  });

  test('a sound jetstream configuration is read, numbers from strings', () => {
    const cfg = loadConfig(HubConfig, {
      POPKIT_HUB_INGEST: 'jetstream',
      POPKIT_HUB_NATS_URL: 'nats://n1:4222,nats://n2:4222,tls://n3:4222',
      POPKIT_HUB_NATS_USER: 'hub',
      POPKIT_HUB_NATS_PASSWORD: 'hunter22',
      POPKIT_HUB_JS_STREAM: 'KITS_eu-1',
      POPKIT_HUB_JS_CONSUMER: 'hub-eu',
      POPKIT_HUB_JS_REPLICAS: '1',
      POPKIT_HUB_JS_CONCURRENCY: '16',
      POPKIT_HUB_JS_ACK_WAIT_S: '5',
    });
    assert.equal(cfg.POPKIT_HUB_INGEST, 'jetstream');
    assert.equal(cfg.POPKIT_HUB_JS_REPLICAS, 1);
    assert.equal(cfg.POPKIT_HUB_JS_CONCURRENCY, 16);
    assert.equal(cfg.POPKIT_HUB_JS_ACK_WAIT_S, 5);
  });

  test('hostile values are refused with a ConfigError, one per variable', () => {
    const huge = `nats://${'a'.repeat(5000)}:4222`;
    const bad: [string, string][] = [
      ['POPKIT_HUB_INGEST', 'kafka'],
      ['POPKIT_HUB_INGEST', 'jetstream\u0000'],
      ['POPKIT_HUB_INGEST', '__proto__'],
      ['POPKIT_HUB_NATS_URL', 'mqtt://n1:1883'],
      ['POPKIT_HUB_NATS_URL', 'nats://n1:4222, nats://n2:4222'],
      ['POPKIT_HUB_NATS_URL', 'nats://n1:4222,'],
      ['POPKIT_HUB_NATS_URL', 'nats://n1\u0000:4222'],
      ['POPKIT_HUB_NATS_URL', huge],
      ['POPKIT_HUB_NATS_USER', 'a b'],
      ['POPKIT_HUB_NATS_USER', 'a\u0000'],
      ['POPKIT_HUB_NATS_USER', 'x'.repeat(300)],
      ['POPKIT_HUB_JS_STREAM', 'KITS.>'],
      ['POPKIT_HUB_JS_STREAM', 'a b'],
      ['POPKIT_HUB_JS_STREAM', '*'],
      ['POPKIT_HUB_JS_STREAM', 'x'.repeat(65)],
      ['POPKIT_HUB_JS_STREAM', 'K\u0000'],
      ['POPKIT_HUB_JS_CONSUMER', 'hub.1'],
      ['POPKIT_HUB_JS_REPLICAS', '0'],
      ['POPKIT_HUB_JS_REPLICAS', '6'],
      ['POPKIT_HUB_JS_REPLICAS', 'three'],
      ['POPKIT_HUB_JS_CONCURRENCY', '0'],
      ['POPKIT_HUB_JS_CONCURRENCY', '257'],
      ['POPKIT_HUB_JS_ACK_WAIT_S', '0'],
      ['POPKIT_HUB_JS_ACK_WAIT_S', '-1'],
      ['POPKIT_HUB_JS_ACK_WAIT_S', '{}'],
    ];
    for (const [name, value] of bad) {
      assert.throws(
        () => loadConfig(HubConfig, { [name]: value }),
        (err: unknown) => err instanceof ConfigError && err.message.includes(name),
        `${name}=${JSON.stringify(value).slice(0, 60)}`,
      );
    }
    // empty is unset: the default
    assert.equal(loadConfig(HubConfig, { POPKIT_HUB_INGEST: '' }).POPKIT_HUB_INGEST, 'mqtt');
    // the password is reported by length, never by value
    assert.throws(
      () => loadConfig(HubConfig, { POPKIT_HUB_NATS_PASSWORD: 'x'.repeat(2000) }),
      (err: unknown) => err instanceof ConfigError && !err.message.includes('xxxxxxxx'),
    );
  });
});

describe("the kits' subjects off the stream", () => {
  test("a kit's orders, telemetry, receipts and card checks read back into their MQTT topics", () => {
    for (const leaf of ['orders', 'telemetry', 'receipts', 'authorize'] as const) {
      const got = topicFromSubject(`popkit.v1.kits.kit-1.${leaf}`);
      assert.deepEqual(got, { topic: `popkit/v1/kits/kit-1/${leaf}`, kitId: 'kit-1', leaf });
      // the same kit and leaf the MQTT path reads off the topic
      assert.deepEqual(kitIdFromTopic(got!.topic), { kitId: 'kit-1', leaf });
    }
    assert.equal(topicFromSubject('popkit.v1.kits.kit-1.orders')!.topic, topics.orders('kit-1'));
  });

  test("a `.` in a kit id (the gateway's `//`) comes back as the kit's own id", () => {
    for (const id of ['kit.1', 'a.b.c', 'k..x', 'K_9-z.', 'x'.repeat(64), `a${'.'.repeat(63)}`]) {
      const subject = `popkit.v1.kits.${kitIdToken(id)}.orders`;
      assert.deepEqual(
        topicFromSubject(subject),
        { topic: topics.orders(id), kitId: id, leaf: 'orders' },
        id,
      );
    }
  });

  test('hostile subjects are refused, never thrown on', () => {
    const bad: unknown[] = [
      'popkit.v1.kits.kit-1.orders.extra',
      'popkit.v1.kits.kit-1.orders.',
      'popkit.v1.kits.orders',
      'popkit.v1.kits..orders',
      'popkit.v2.kits.kit-1.orders',
      'other.v1.kits.kit-1.orders',
      'popkit.v1.kits.kit-1.status',
      'popkit.v1.kits.kit-1.acks',
      'popkit.v1.kits.kit-1.authorizations',
      'popkit.v1.kits.kit-1.__proto__',
      'popkit.v1.kits.__proto__.orders',
      'popkit.v1.kits.constructor.orders.x',
      'popkit.v1.kits.*.orders',
      'popkit.v1.kits.>',
      'popkit.v1.kits.kit-1.>',
      'popkit.v1.kits.kit\u0000.orders',
      'popkit.v1.kits.kit-1.orders\u0000',
      'popkit.v1.kits.a/b.orders',
      'popkit.v1.kits.///.orders',
      'popkit.v1.kits.//a.orders',
      'popkit.v1.kits.a/.orders',
      'popkit.v1.kits.kit 1.orders',
      'popkit.v1.kits.kït.orders',
      `popkit.v1.kits.${'a'.repeat(65)}.orders`,
      `popkit.v1.kits.${'a'.repeat(100_000)}.orders`,
      `popkit.v1.kits.a${'//'.repeat(64)}.orders`,
      '',
      42,
      null,
      undefined,
      {},
      ['popkit.v1.kits.kit-1.orders'],
      { toString: () => 'popkit.v1.kits.kit-1.orders' },
    ];
    for (const s of bad) assert.equal(topicFromSubject(s), undefined, JSON.stringify(s)?.slice(0, 80));
  });
});
