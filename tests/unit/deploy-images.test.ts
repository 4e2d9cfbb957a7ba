// The kit's images and release files beyond what deploy-release.test.ts checks: what balena does NOT do
// to a compose file (no `$` substitution), what `balena push` uploads (.dockerignore), the Dockerfiles'
// base images and stages, the host config in balena.yml, and device access without hard-mapped nodes.
// No Docker engine here: every file is parsed, the compose files through @balena/compose's normalize().
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { normalize } from '@balena/compose/dist/parse/index.js';
import { parse as parseYaml } from 'yaml';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (p: string) => fs.readFileSync(path.join(ROOT, p), 'utf8');

/** Every compose file balena may build: the root one and any per-device-type variant. */
const COMPOSE_FILES = fs
  .readdirSync(ROOT)
  .filter((f) => /^docker-compose(\.[a-z0-9-]+)?\.yml$/.test(f))
  .sort();

type Service = Record<string, unknown> & {
  healthcheck?: { test?: string[] | string };
  devices?: string[];
  device_cgroup_rules?: string[];
  environment?: Record<string, string>;
  cap_add?: string[];
  labels?: Record<string, string>;
  user?: string;
};
function composeServices(file: string): Record<string, Service> {
  const doc = parseYaml(read(file), { merge: true }) as Record<string, unknown>;
  return normalize(doc).services as unknown as Record<string, Service>;
}

/** Every string anywhere in a parsed YAML value, with the path that leads to it. */
function strings(v: unknown, at = ''): Array<[string, string]> {
  if (typeof v === 'string') return [[at, v]];
  if (Array.isArray(v)) return v.flatMap((x, i) => strings(x, `${at}[${i}]`));
  if (v && typeof v === 'object')
    return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => strings(x, `${at}.${k}`));
  return [];
}

describe('compose files: no `$` (balena does no variable substitution)', () => {
  test('there is at least the root compose file', () => {
    assert.ok(COMPOSE_FILES.includes('docker-compose.yml'));
  });

  for (const file of COMPOSE_FILES) {
    test(`${file}: no string holds a $ (a $$ reaches the container literally on balena)`, () => {
      const doc = parseYaml(read(file), { merge: true }) as unknown;
      const found = strings(doc).filter(([, s]) => s.includes('$'));
      assert.deepEqual(found, [], `strings with $: ${JSON.stringify(found)}`);
    });

    test(`${file}: the Mosquitto health check publishes to the listener mosquitto.conf opens`, () => {
      const t = composeServices(file)['mosquitto']?.healthcheck?.test;
      assert.ok(Array.isArray(t), 'exec form, no shell');
      assert.equal(t[0], 'CMD');
      assert.equal(t[1], 'mosquitto_pub');
      const port = t[t.indexOf('-p') + 1];
      assert.match(read('deploy/mosquitto/mosquitto.conf'), new RegExp(`^listener ${port}$`, 'm'));
      assert.ok(t.includes('-t') && !(t[t.indexOf('-t') + 1] ?? '').startsWith('$'));
    });
  }

  test('the check itself fails on the old health check', () => {
    const old = { services: { m: { healthcheck: { test: ['CMD', 'mosquitto_sub', '-t', '$$SYS/x'] } } } };
    assert.equal(strings(old).filter(([, s]) => s.includes('$')).length, 1);
  });
});
