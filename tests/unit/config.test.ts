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
