// The kit's images and release files beyond what deploy-release.test.ts checks: what balena does NOT do
// to a compose file (no `$` substitution), what `balena push` uploads (.dockerignore), the Dockerfiles'
// base images and stages, the host config in balena.yml, and device access without hard-mapped nodes.
// No Docker engine here: every file is parsed, the compose files through @balena/compose's normalize().
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { normalize } from '@balena/compose/dist/parse/index.js';
import dockerignore from '@balena/dockerignore';
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

describe('.dockerignore (what balena push uploads)', () => {
  const ig = dockerignore({ ignorecase: false }).add(
    read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );

  test('secrets, data directories, VCS, dependencies and build/test output are not uploaded', () => {
    for (const p of [
      '.popkit/keys/device.key',
      '.popkit/keys/kit.key',
      '.popkit/lmdb/data.mdb',
      '.popkit/hls/live/index.m3u8',
      'core/.popkit/keys/token.key',
      '.git/config',
      'node_modules/lmdb/package.json',
      'services/media/node_modules/x/index.js',
      'dist/core/config.js',
      'coverage/lcov.info',
      'tmp/run.log',
      'tests/unit/deploy-images.test.ts',
      'bench/media-ll.ts',
      'docs/fleet.md',
      '.ci/run',
      'deploy/hub/certs/ca.key',
      'deploy/hub/docker-compose.yml',
      'core/secret.pem',
      '.env',
      '.env.production',
      'npm-debug.log',
      'some-new-dir/notes.txt',
    ])
      assert.ok(ig.ignores(p), `${p} would be uploaded`);
  });

  /** Build-context-relative sources of every COPY/ADD (not --from) in a Dockerfile. */
  function copySources(dockerfile: string): string[] {
    const out: string[] = [];
    for (const m of read(dockerfile).matchAll(/^(?:COPY|ADD)\s+(.+)$/gm)) {
      const words = (m[1] ?? '').split(/\s+/);
      if (words.some((w) => w.startsWith('--from'))) continue;
      const args = words.filter((w) => !w.startsWith('--'));
      out.push(...args.slice(0, -1));
    }
    return out;
  }
  const composeContexts = (): string[] => {
    const out = new Set<string>();
    for (const f of COMPOSE_FILES)
      for (const s of Object.values(composeServices(f))) {
        const b = s['build'] as { context?: string; dockerfile?: string } | undefined;
        if (b?.context) out.add(path.posix.normalize(b.context));
      }
    return [...out];
  };

  test('everything the Dockerfiles COPY is uploaded, for every build context in the compose files', () => {
    const contexts = composeContexts();
    assert.ok(contexts.includes('.') && contexts.includes('deploy/mosquitto'));
    let checked = 0;
    for (const ctx of contexts) {
      const dir = path.join(ROOT, ctx);
      const dockerfiles = fs.readdirSync(dir).filter((f) => /^Dockerfile(\.template|\.[a-z0-9-]+)?$/.test(f));
      assert.ok(dockerfiles.length > 0, `${ctx} has a Dockerfile`);
      for (const df of dockerfiles) {
        for (const src of copySources(path.join(ctx, df))) {
          const rel = path.posix.normalize(path.posix.join(ctx, src.replace(/\/$/, '')));
          assert.ok(fs.existsSync(path.join(ROOT, rel)), `${df}: ${rel} exists`);
          const files = fs.statSync(path.join(ROOT, rel)).isDirectory()
            ? fs.readdirSync(path.join(ROOT, rel), { recursive: true }).map((f) => `${rel}/${f}`)
            : [rel];
          for (const f of files) {
            if (/(^|\/)(node_modules|\.popkit|dist)(\/|$)/.test(f)) continue;
            assert.ok(!ig.ignores(f), `${ctx}/${df} copies ${f}, which .dockerignore drops`);
            checked++;
          }
        }
        for (const f of [path.posix.join(ctx, df), 'docker-compose.yml', 'balena.yml'])
          assert.ok(!ig.ignores(path.posix.normalize(f)), `${f} is uploaded`);
      }
    }
    assert.ok(checked > 20, `checked ${checked} files`);
  });

  test('the matcher is not vacuous: a whitelisted source file is kept, a key beside it is not', () => {
    assert.equal(ig.ignores('core/config.ts'), false);
    assert.equal(ig.ignores('core/tls/server.key'), true);
  });
});
