import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import {
  BaseConfig,
  CheckoutConfig,
  ConfigError,
  composeConfig,
  loadConfig,
  resolveKitId,
} from '../../core/config.ts';
import { BIN, tempDir } from '../support/checkout.ts';

const Schema = composeConfig(BaseConfig, CheckoutConfig);

describe('config', () => {
  test('defaults per CONTRACT.md and string conversion', () => {
    const cfg = loadConfig(Schema, { POPKIT_HTTP_PORT: '9000' });
    assert.equal(cfg.POPKIT_HTTP_PORT, 9000);
    assert.equal(cfg.POPKIT_BOARD, 'auto');
    assert.equal(loadConfig(Schema, {}).POPKIT_HTTP_PORT, 8080);
  });

  test('every bad value is reported, one line each', () => {
    try {
      loadConfig(Schema, { POPKIT_HTTP_PORT: 'eighty', POPKIT_BOARD: 'pi3', POPKIT_TOKEN_KEY: 'short' });
      assert.fail('should throw');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const keys = err.problems.map((p) => p.split('=')[0]);
      assert.deepEqual([...new Set(keys)].sort(), ['POPKIT_BOARD', 'POPKIT_HTTP_PORT', 'POPKIT_TOKEN_KEY']);
      assert.equal(err.problems.length, 3, err.problems.join('\n'));
    }
  });

  test('a number variable is written as one: no fraction for an integer, no exponent, no hex, no words', () => {
    // TypeBox's conversion alone read '2.5' as 2 and '1e400' as 1
    for (const bad of [
      '2.5',
      '1e3',
      '1e400',
      '0x50',
      '80abc',
      ' 80',
      '+80',
      'Infinity',
      '9007199254740993',
      '8\u00000',
    ]) {
      try {
        loadConfig(Schema, { POPKIT_HTTP_PORT: bad });
        assert.fail(`accepted ${JSON.stringify(bad)}`);
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.problems.length, 1, err.problems.join('\n'));
        assert.match(err.problems[0]!, /^POPKIT_HTTP_PORT=.*whole number/);
      }
    }
    assert.equal(loadConfig(Schema, { POPKIT_HTTP_PORT: '08080' }).POPKIT_HTTP_PORT, 8080);
    // the range is still the schema's
    assert.throws(() => loadConfig(Schema, { POPKIT_HTTP_PORT: '-1' }), ConfigError);
  });

  test('a secret with a bad value is reported by length, never by value', async () => {
    const { HubConfig } = await import('../../services/hub/config.ts');
    const { SyncConfig } = await import('../../services/sync/config.ts');
    const pasted = 'deadbeef'.repeat(8) + '\n'; // a key pasted with its trailing newline
    const cases: Array<[Parameters<typeof loadConfig>[0], Record<string, string>]> = [
      [Schema, { POPKIT_TOKEN_KEY: pasted, POPKIT_ADMIN_TOKEN: 'short-secret' }],
      [SyncConfig, { POPKIT_TOKEN_KEY: pasted }],
      [HubConfig, { DATABASE_URL: 'mysql://user:hunter2@db/x', POPKIT_HUB_ADMIN_TOKEN: 'hunter2' }],
    ];
    for (const [schema, env] of cases) {
      const err = (() => {
        try {
          loadConfig(schema, env);
        } catch (e) {
          return e as ConfigError;
        }
        return undefined;
      })();
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, Object.keys(env).length, err.message);
      for (const [key, value] of Object.entries(env)) {
        assert.ok(!err.message.includes(value.trim()), `${key}'s value is in: ${err.message}`);
        assert.ok(!err.message.includes('hunter2'), err.message);
        assert.match(err.message, new RegExp(`${key}=\\(secret, ${value.length} characters, not shown\\)`));
      }
    }
  });

  test('kit id falls back to the balena device uuid', () => {
    assert.equal(resolveKitId(loadConfig(BaseConfig, { BALENA_DEVICE_UUID: 'abc123' })), 'abc123');
    assert.equal(
      resolveKitId(loadConfig(BaseConfig, { POPKIT_KIT_ID: 'k1', BALENA_DEVICE_UUID: 'x' })),
      'k1',
    );
  });

  test('popkit checkout with a bad value stops with one line per problem and EX_CONFIG', () => {
    const res = spawnSync(process.execPath, [BIN, 'checkout'], {
      env: {
        PATH: process.env['PATH'],
        POPKIT_DATA_DIR: tempDir(),
        POPKIT_HTTP_PORT: '70000',
        POPKIT_RISK_MAX_ORDER_CENTS: '-5',
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(res.status, 78, res.stderr);
    const lines = res.stderr.trim().split('\n');
    assert.equal(lines.length, 2, res.stderr);
    assert.match(lines.join('\n'), /POPKIT_HTTP_PORT="70000"/);
    assert.match(lines.join('\n'), /POPKIT_RISK_MAX_ORDER_CENTS="-5"/);
  });
});

describe("POPKIT_HUB_URL and POPKIT_HUB_BROKER_URL: one URL or a list of one clustered broker's nodes", () => {
  test('a comma-separated list is accepted and split in order; a malformed one is refused', async () => {
    const { hubUrlList } = await import('../../core/config.ts');
    const { HubConfig } = await import('../../services/hub/config.ts');
    const list = 'mqtts://a.example:8883,mqtts://b.example:8883,mqtts://c.example:8883';
    assert.equal(loadConfig(BaseConfig, { POPKIT_HUB_URL: list }).POPKIT_HUB_URL, list);
    assert.deepEqual(hubUrlList(list), [
      'mqtts://a.example:8883',
      'mqtts://b.example:8883',
      'mqtts://c.example:8883',
    ]);
    assert.deepEqual(hubUrlList('mqtt://127.0.0.1:1883'), ['mqtt://127.0.0.1:1883']);
    assert.equal(
      loadConfig(HubConfig, { POPKIT_HUB_BROKER_URL: 'mqtt://n1:1883,mqtt://n2:1883' }).POPKIT_HUB_BROKER_URL,
      'mqtt://n1:1883,mqtt://n2:1883',
    );
    for (const bad of [
      'mqtts://a.example:8883,',
      'mqtts://a.example:8883,,mqtts://b.example:8883',
      'mqtts://a.example:8883, mqtts://b.example:8883',
      'mqtts://a.example:8883,http://b.example',
      'mqtts://',
      'mqtts://a.example\0:8883',
      'mqtts://a.example:8883,mqtts://b\u007f.example',
      'mqtt://a\tb:1883',
    ]) {
      assert.throws(() => loadConfig(BaseConfig, { POPKIT_HUB_URL: bad }), ConfigError, bad);
      assert.throws(() => loadConfig(HubConfig, { POPKIT_HUB_BROKER_URL: bad }), ConfigError, bad);
    }
  });

  test('a plaintext URL to another machine anywhere in the list is refused', async () => {
    const { refusePlaintextHub } = await import('../../services/sync/link.ts');
    refusePlaintextHub('mqtt://127.0.0.1:1883,mqtt://127.0.0.1:1884', false);
    refusePlaintextHub('mqtts://a.example:8883,mqtts://b.example:8883', false);
    assert.throws(
      () => refusePlaintextHub('mqtts://a.example:8883,mqtt://b.example:1883', false),
      (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID' && /b\.example/.test(err.message),
    );
    refusePlaintextHub('mqtts://a.example:8883,mqtt://b.example:1883', true);
  });

  test("the hub's list becomes mqtt.js servers, in order, with default ports", async () => {
    const { brokerTarget } = await import('../../services/hub/broker-urls.ts');
    assert.deepEqual(brokerTarget('mqtt://n1:1883'), { url: 'mqtt://n1:1883' });
    assert.deepEqual(brokerTarget('mqtt://n1:1884,mqtts://n2'), {
      url: 'mqtt://n1:1884',
      servers: [
        { host: 'n1', port: 1884, protocol: 'mqtt' },
        { host: 'n2', port: 8883, protocol: 'mqtts' },
      ],
    });
  });
});
