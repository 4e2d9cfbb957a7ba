// The kit's images and release files beyond what deploy-release.test.ts checks: what balena does NOT do
// to a compose file (no `$` substitution), what `balena push` uploads (.dockerignore), the Dockerfiles'
// base images and stages, the host config in balena.yml, and device access without hard-mapped nodes.
// No Docker engine here: every file is parsed, the compose files through @balena/compose's normalize().
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { normalize } from '@balena/compose/dist/parse/index.js';
import { Bundle, getDefaultResolvers, resolveInput } from '@balena/compose/dist/resolve/index.js';
import type { Ignore } from '@balena/dockerignore';
import dockerignoreModule from '@balena/dockerignore';
import tarStream from 'tar-stream';
import { parse as parseYaml } from 'yaml';
import { SMALL_BOARD_NODE_FLAGS, smallBoardEnv } from '../../core/kit-part.ts';
import { deviceNodesFor } from '../../firmware/device-nodes.ts';
import { BOARD_IDS, defaultKitMode, getBoardProfile } from '../../hardware/boards/index.ts';
import { SyncConfig } from '../../services/sync/config.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
// a CommonJS module whose module.exports is the factory; its types declare it as `default`
const dockerignore = ((dockerignoreModule as unknown as { default?: unknown }).default ??
  dockerignoreModule) as unknown as (options?: { ignorecase?: boolean }) => Ignore;
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
/**
 * The service that runs kitd: `kitd`, or in the small-board variant `kit` (`popkit kit`: checkout, sync
 * and kitd as threads of one process), which then holds kitd's devices, labels and host bus.
 */
function kitdServiceName(services: Record<string, Service>): string {
  const runs = (s: Service | undefined) => (s?.['command'] as string[] | undefined)?.at(-1);
  const name = Object.keys(services).find((n) => runs(services[n]) === 'kitd' || runs(services[n]) === 'kit');
  assert.ok(name, 'a service runs kitd (popkit kitd, or popkit kit)');
  return name;
}

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

    test(`${file}: kitd has the host's system bus (label and address), no other service does`, () => {
      const services = composeServices(file);
      const kitdName = kitdServiceName(services);
      const kitd = services[kitdName];
      assert.ok(kitd, 'a kitd service');
      assert.equal(kitd.labels?.['io.balena.features.dbus'], '1');
      assert.equal(
        kitd.environment?.['DBUS_SYSTEM_BUS_ADDRESS'],
        'unix:path=/host/run/dbus/system_bus_socket',
      );
      for (const [name, s] of Object.entries(services))
        if (name !== kitdName) assert.equal(s.labels?.['io.balena.features.dbus'], undefined, name);
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

interface Stage {
  from: string;
  name: string | undefined;
  /** instructions after FROM, continuation lines joined: [keyword, rest] */
  lines: Array<[string, string]>;
}
/** A Dockerfile's stages: comments dropped, `\` continuations joined, keywords upper-cased. */
function stagesOf(file: string): Stage[] {
  const joined = read(file)
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const stages: Stage[] = [];
  for (const raw of joined.split('\n')) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(raw);
    if (!m) continue;
    const kw = (m[1] ?? '').toUpperCase();
    const rest = (m[2] ?? '').trim();
    if (kw === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      assert.ok(f, `${file}: FROM ${rest}`);
      stages.push({ from: f[1] ?? '', name: f[2], lines: [] });
    } else if (kw === 'ARG' && stages.length === 0) {
      // a global build argument (before the first FROM), valid Docker
    } else {
      assert.ok(stages.length > 0, `${file}: ${kw} before FROM`);
      stages.at(-1)?.lines.push([kw, rest]);
    }
  }
  return stages;
}
/** Packages an apt-get install in these RUN lines installs. */
function aptPackages(stage: Stage): string[] {
  const out: string[] = [];
  for (const [kw, rest] of stage.lines) {
    if (kw !== 'RUN') continue;
    for (const m of rest.matchAll(/apt-get install ([^&;|]+)/g))
      out.push(...(m[1] ?? '').split(/\s+/).filter((w) => w && !w.startsWith('-')));
  }
  return out;
}
const BUILD_TOOLS =
  /^(gcc|g\+\+|cpp|make|cmake|build-essential|python3|python3-dev|pkg-config|node-gyp|.*-dev)$/;

describe('Dockerfile.template (the one kit image)', () => {
  const stages = stagesOf('Dockerfile.template');
  const run = stages.at(-1)!;
  const build = stages[0]!;

  test('multi-stage on the official Node 22 LTS images, no deprecated balenalib image', () => {
    assert.ok(stages.length >= 2, 'a build stage and a run stage');
    for (const s of stages) {
      assert.doesNotMatch(s.from, /balenalib|%%BALENA_/, `${s.from}: balenalib is deprecated`);
      assert.match(s.from, /^node:22(\.\d+){0,2}-bookworm(-slim)?$/, `${s.from}: Node 22 on Debian 12`);
    }
    assert.match(run.from, /-slim$/, 'the run stage is the slim image');
  });

  test('native modules are installed and the TypeScript built in the build stage, whose output the run stage copies', () => {
    const buildRuns = build.lines.filter(([k]) => k === 'RUN').map(([, r]) => r);
    assert.ok(
      buildRuns.some((r) => /npm (install|ci)\b/.test(r)),
      'npm install in the build stage',
    );
    assert.ok(
      buildRuns.some((r) => /scripts\/build\.sh/.test(r)),
      'the build runs in the build stage',
    );
    assert.ok(aptPackages(build).includes('libgstreamer1.0-dev'), 'GStreamer headers for the native binding');
    const copied = run.lines
      .filter(([k, r]) => k === 'COPY' && r.startsWith(`--from=${build.name}`))
      .map(([, r]) => r.split(/\s+/)[1] ?? '');
    for (const p of ['node_modules', 'dist', 'bin', 'package.json'])
      assert.ok(
        copied.some((c) => c.endsWith(`/${p}`)),
        `run stage copies ${p} from ${build.name}`,
      );
  });

  test('the run stage has no compiler, headers or package build', () => {
    const pkgs = aptPackages(run);
    assert.ok(pkgs.length > 0, 'the run stage installs its run-time packages');
    assert.deepEqual(
      pkgs.filter((p) => BUILD_TOOLS.test(p)),
      [],
      'build tools in the run stage',
    );
    for (const [kw, rest] of run.lines)
      if (kw === 'RUN')
        assert.doesNotMatch(rest, /npm (install|ci|rebuild)|node-gyp/, `run stage: RUN ${rest}`);
    // what media needs at run time, and the pango plugin (clockoverlay) that a minimal install lacks
    for (const p of ['gstreamer1.0-plugins-good', 'gstreamer1.0-x', 'util-linux'])
      assert.ok(pkgs.includes(p), p);
  });

  test('the check sees build tools when they are there', () => {
    const fake: Stage = { from: 'x', name: 'y', lines: [['RUN', 'apt-get install -y g++ libfoo-dev curl']] };
    assert.deepEqual(
      aptPackages(fake).filter((p) => BUILD_TOOLS.test(p)),
      ['g++', 'libfoo-dev'],
    );
  });

  test('the services run unprivileged: the entrypoint drops to POPKIT_RUN_AS, which is not root', () => {
    const entry = run.lines.find(([k]) => k === 'ENTRYPOINT')?.[1];
    assert.equal(entry, '["/usr/local/bin/popkit-entrypoint"]');
    assert.ok(
      run.lines.some(
        ([k, r]) => k === 'COPY' && r === 'deploy/kit/entrypoint.sh /usr/local/bin/popkit-entrypoint',
      ),
    );
    const env = run.lines
      .filter(([k]) => k === 'ENV')
      .map(([, r]) => r)
      .join(' ');
    assert.match(env, /(^|\s)POPKIT_RUN_AS=node(\s|$)/);
    // a USER line would have to be root (see the Dockerfile): none other than root is allowed, and none is needed
    for (const [k, r] of run.lines)
      if (k === 'USER') assert.fail(`USER ${r}: the entrypoint decides the user`);
    const script = read('deploy/kit/entrypoint.sh');
    const lastExec = script.trim().split('\n').at(-1) ?? '';
    assert.match(
      lastExec,
      /^exec setpriv --reuid="\$uid" --regid="\$gid" .*--bounding-set=-all --no-new-privs -- "\$@"$/,
    );
    for (const file of COMPOSE_FILES)
      for (const [name, s] of Object.entries(composeServices(file))) {
        if (name === 'mosquitto') continue;
        assert.notEqual(s.environment?.['POPKIT_RUN_AS'], 'root', `${file}: ${name}`);
        assert.ok(s.user === undefined || !/^(root|0)(:|$)/.test(s.user), `${file}: ${name} user`);
      }
  });
});

describe('deploy/mosquitto/Dockerfile', () => {
  test('on the official eclipse-mosquitto 2 image (its own entrypoint drops to the mosquitto user)', () => {
    const stages = stagesOf('deploy/mosquitto/Dockerfile');
    for (const s of stages) {
      assert.doesNotMatch(s.from, /balenalib/);
      assert.match(s.from, /^eclipse-mosquitto:2(\.\d+){0,2}$/);
    }
  });
});

describe('deploy/kit/entrypoint.sh, run for real against a sysfs tree', () => {
  const notRoot = process.getuid?.() !== 0 ? 'mknod and setpriv need root' : false;
  const script = path.join(ROOT, 'deploy/kit/entrypoint.sh');

  function tree(sysDevs: Record<string, string>) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-entry-'));
    for (const [rel, content] of Object.entries(sysDevs)) {
      fs.mkdirSync(path.join(dir, 'sys', path.dirname(rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, 'sys', rel), `${content}\n`);
    }
    fs.mkdirSync(path.join(dir, 'dev'));
    fs.mkdirSync(path.join(dir, 'data/run'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'tmp/balena'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'data/run/kitd.json'), '{}');
    return dir;
  }
  function runEntry(dir: string, env: Record<string, string>, cmd: string[]) {
    return spawnSync('sh', [script, ...cmd], {
      encoding: 'utf8',
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        POPKIT_DEV_DIR: path.join(dir, 'dev'),
        POPKIT_SYS_DIR: path.join(dir, 'sys'),
        POPKIT_DATA_DIR: path.join(dir, 'data'),
        POPKIT_LOCK_DIR: path.join(dir, 'tmp/balena'),
        POPKIT_RUN_AS: 'nobody',
        ...env,
      },
    });
  }
  const majMin = (rdev: number) => [(rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00)];

  test('makes the nodes of its classes owned by the service user, serial ports in advance, then drops root', {
    skip: notRoot,
  }, () => {
    const dir = tree({
      'class/tty/ttyUSB0/dev': '188:0',
      'class/tty/ttyS0/dev': '4:64',
      'class/i2c-dev/i2c-1/dev': '89:1',
      'bus/gpio/devices/gpiochip0/dev': '254:0',
      'class/video4linux/video11/dev': '81:11',
      'class/video4linux/video0/dev': 'not-a-number',
    });
    try {
      const nobody = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim();
      const r = runEntry(dir, { POPKIT_DEVICE_CLASSES: 'serial i2c gpio', POPKIT_SERIAL_AHEAD: '2' }, [
        'sh',
        '-c',
        'id -u; grep -E "^(CapEff|CapBnd|NoNewPrivs)" /proc/self/status',
      ]);
      assert.equal(r.status, 0, r.stderr);
      const out = r.stdout.split('\n');
      assert.equal(out[0], nobody, 'runs as the service user');
      assert.match(r.stdout, /CapEff:\s+0+\n/);
      assert.match(r.stdout, /CapBnd:\s+0+\n/);
      assert.match(r.stdout, /NoNewPrivs:\s+1/);
      const made = Object.fromEntries(
        fs.readdirSync(path.join(dir, 'dev')).map((n) => {
          const st = fs.statSync(path.join(dir, 'dev', n));
          assert.ok(st.isCharacterDevice(), n);
          assert.equal(String(st.uid), nobody, `${n} owner`);
          assert.equal(st.mode & 0o777, 0o660, `${n} mode`);
          return [n, majMin(st.rdev).join(':')];
        }),
      );
      assert.deepEqual(made, {
        gpiochip0: '254:0',
        'i2c-1': '89:1',
        ttyACM0: '166:0',
        ttyACM1: '166:1',
        ttyUSB0: '188:0',
        ttyUSB1: '188:1',
      });
      assert.equal(String(fs.statSync(path.join(dir, 'data/run/kitd.json')).uid), nobody, 'data handed over');
      assert.equal(String(fs.statSync(path.join(dir, 'tmp/balena')).uid), nobody, 'update lock directory');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('video class: present nodes only; a malformed sysfs entry is skipped and said', {
    skip: notRoot,
  }, () => {
    const dir = tree({ 'class/video4linux/video11/dev': '81:11', 'class/video4linux/video0/dev': '81:x' });
    try {
      const r = runEntry(dir, { POPKIT_DEVICE_CLASSES: 'video' }, ['true']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(fs.readdirSync(path.join(dir, 'dev')), ['video11']);
      assert.match(r.stderr, /ignoring .*video0\/dev: '81:x'/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('camera class: sub-devices, media controllers and DMA heaps (in dma_heap/), dynamic majors checked', {
    skip: notRoot,
  }, () => {
    const dir = tree({
      'class/video4linux/v4l-subdev0/dev': '81:3',
      'class/video4linux/video0/dev': '81:0',
      'bus/media/devices/media0/dev': '237:0',
      'bus/media/devices/media1/dev': '10:200',
      'class/dma_heap/linux,cma/dev': '253:1',
      'class/dma_heap/system/dev': '253:0',
    });
    try {
      const r = runEntry(dir, { POPKIT_DEVICE_CLASSES: 'camera' }, ['true']);
      assert.equal(r.status, 0, r.stderr);
      const nodes = (sub: string) =>
        Object.fromEntries(
          fs.readdirSync(path.join(dir, 'dev', sub)).flatMap((n) => {
            const st = fs.statSync(path.join(dir, 'dev', sub, n));
            return st.isCharacterDevice() ? [[n, majMin(st.rdev).join(':')]] : [];
          }),
        );
      // video0 is the video class's, not the camera class's
      assert.deepEqual(nodes(''), { media0: '237:0', media1: '10:200', 'v4l-subdev0': '81:3' });
      assert.deepEqual(nodes('dma_heap'), { 'linux,cma': '253:1', system: '253:0' });
      assert.match(r.stderr, /POPKIT_DEVICE_RULE_MISSING: media1 is 10:200, outside the dynamic majors/);
      assert.doesNotMatch(r.stderr, /RULE_MISSING: (media0|dma_heap)/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a GPIO chip on a major the cgroup rules do not allow is named, with the rule to add', {
    skip: notRoot,
  }, () => {
    const dir = tree({ 'bus/gpio/devices/gpiochip0/dev': '253:0' });
    try {
      const r = runEntry(dir, { POPKIT_DEVICE_CLASSES: 'gpio' }, ['true']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /POPKIT_DEVICE_RULE_MISSING: gpiochip0 is 253:0; .*'c 253:\* rwm'/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('hostile settings stop it with a coded error before anything runs', { skip: notRoot }, () => {
    const dir = tree({});
    try {
      for (const [env, code] of [
        [{ POPKIT_DEVICE_CLASSES: 'serial usb' }, 'POPKIT_DEVICE_CLASS_UNKNOWN'],
        [{ POPKIT_DEVICE_CLASSES: '/dev/sda' }, 'POPKIT_DEVICE_CLASS_UNKNOWN'],
        [{ POPKIT_RUN_AS: 'root' }, 'POPKIT_RUN_AS_ROOT'],
        [{ POPKIT_RUN_AS: '0' }, 'POPKIT_RUN_AS_ROOT'],
        [{ POPKIT_RUN_AS: 'node;id' }, 'POPKIT_RUN_AS_INVALID'],
        [{ POPKIT_RUN_AS: 'no-such-user-here' }, 'POPKIT_RUN_AS_UNKNOWN'],
        [{ POPKIT_SERIAL_AHEAD: '2; rm -rf /' }, 'POPKIT_SERIAL_AHEAD_INVALID'],
        [{ POPKIT_SERIAL_AHEAD: '100000' }, 'POPKIT_SERIAL_AHEAD_INVALID'],
      ] as const) {
        const r = runEntry(dir, env, ['sh', '-c', 'echo RAN']);
        assert.equal(r.status, 64, `${JSON.stringify(env)}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(code));
        assert.doesNotMatch(r.stdout, /RAN/);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('balena.yml host configuration', () => {
  const balena = parseYaml(read('balena.yml')) as {
    data: {
      supportedDeviceTypes: string[];
      applicationConfigVariables?: Array<Record<string, unknown>>;
    };
  };
  const config = balena.data.applicationConfigVariables ?? [];

  test('every config variable is one BALENA_HOST_CONFIG_<name> or BALENA_<name> with a string value', () => {
    assert.ok(config.length > 0);
    for (const entry of config) {
      assert.equal(Object.keys(entry).length, 1, `one variable per list item: ${JSON.stringify(entry)}`);
      const [key, value] = Object.entries(entry)[0]!;
      assert.match(key, /^BALENA_(HOST_CONFIG_[a-z0-9_]+|[A-Z0-9_]+)$/, key);
      assert.equal(typeof value, 'string', `${key}: balena variable values are strings`);
    }
  });

  test('gpu_mem gives the Pi 4 / Zero 2 W codec its memory, once, within the Zero 2 W 512 MB', () => {
    const gpu = config.filter((e) => 'BALENA_HOST_CONFIG_gpu_mem' in e);
    assert.equal(gpu.length, 1, 'set exactly once');
    const v = String(gpu[0]?.['BALENA_HOST_CONFIG_gpu_mem']);
    assert.match(v, /^\d+$/, 'a whole number of MB');
    assert.ok(
      Number(v) >= 128 && Number(v) <= 256,
      `${v} MB: the codec and camera need 128, the Zero 2 W has 512 in all`,
    );
    for (const t of ['raspberrypi4-64', 'raspberrypi0-2w-64'])
      assert.ok(balena.data.supportedDeviceTypes.includes(t), `${t} is a device type of the fleet`);
  });
});

/**
 * The class of a device node and the major the kernel's devices.txt gives it (gpiochip: dynamic, 254);
 * `dynamic` where the major differs between kernels: the rules must allow the whole range 234-254.
 */
const NODE_CLASSES: Array<[RegExp, string, number | 'dynamic']> = [
  [/^\/dev\/ttyUSB\d+$/, 'serial', 188],
  [/^\/dev\/ttyACM\d+$/, 'serial', 166],
  [/^\/dev\/i2c-\d+$/, 'i2c', 89],
  [/^\/dev\/gpiochip\d+$/, 'gpio', 254],
  [/^\/dev\/video\d+$/, 'video', 81],
  [/^\/dev\/v4l-subdev\d+$/, 'camera', 81],
  [/^\/dev\/media\d+$/, 'camera', 'dynamic'],
  [/^\/dev\/dma_heap\/[a-z0-9,_-]+$/, 'camera', 'dynamic'],
];
const DYNAMIC_MAJORS = Array.from({ length: 254 - 234 + 1 }, (_, i) => 234 + i);
/** Removable or enumerated-at-plug nodes that must never be in `devices:`. */
const REMOVABLE = /^\/dev\/(ttyUSB|ttyACM|video|media|v4l|serial|bus\/usb)/;
/** Nodes a compose file does not cover by a class: NVIDIA's (dynamic majors), for a Jetson variant. */
const NOT_CLASSED = /^\/dev\/nv(host-ctrl|host-msenc|map)$/;

function ruleMajors(rules: string[] | undefined): Set<number> {
  const out = new Set<number>();
  for (const r of rules ?? []) {
    const m = /^c (\d+):\* ([rwm]{3})$/.exec(r);
    assert.ok(m, `device cgroup rule '${r}' is "c <major>:* rwm"`);
    assert.deepEqual([...(m[2] ?? '')].sort(), ['m', 'r', 'w'], `${r}: read, write and mknod`);
    out.add(Number(m[1]));
  }
  return out;
}

describe('device access without hard-mapped nodes', () => {
  for (const file of COMPOSE_FILES) {
    const services = composeServices(file);

    test(`${file}: no devices: entry names a removable device`, () => {
      for (const [name, s] of Object.entries(services))
        for (const d of s.devices ?? [])
          assert.doesNotMatch(
            d.split(':')[0] ?? d,
            REMOVABLE,
            `${name}: ${d} stops the service when unplugged`,
          );
    });

    test(`${file}: kitd and media may open every class any board profile uses, and make its nodes`, () => {
      for (const id of BOARD_IDS) {
        const nodes = deviceNodesFor(getBoardProfile(id));
        for (const svc of ['kitd', 'media'] as const) {
          const s = services[svc === 'kitd' ? kitdServiceName(services) : svc];
          assert.ok(s, svc);
          const majors = ruleMajors(s.device_cgroup_rules);
          const classes = new Set(
            (s.environment?.['POPKIT_DEVICE_CLASSES'] ?? '').split(/\s+/).filter(Boolean),
          );
          for (const n of nodes[svc]) {
            const c = NODE_CLASSES.find(([re]) => re.test(n));
            if (!c) {
              assert.match(n, NOT_CLASSED, `${id}: ${n} belongs to no device class`);
              continue;
            }
            for (const major of c[2] === 'dynamic' ? DYNAMIC_MAJORS : [c[2]])
              assert.ok(
                majors.has(major),
                `${file}: ${svc} on ${id} cannot open ${n} (no rule for major ${major})`,
              );
            assert.ok(
              classes.has(c[1]),
              `${file}: ${svc} on ${id}: no ${c[1]} in POPKIT_DEVICE_CLASSES for ${n}`,
            );
          }
        }
      }
    });

    test(`${file}: no other service may open devices`, () => {
      for (const [name, s] of Object.entries(services)) {
        if (name === kitdServiceName(services) || name === 'media') continue;
        assert.deepEqual(s.device_cgroup_rules ?? [], [], name);
        assert.equal(s.environment?.['POPKIT_DEVICE_CLASSES'], undefined, name);
        assert.notEqual(s['privileged'], true, `${name} is privileged`);
      }
    });
  }

  test('the entrypoint makes nodes on exactly the majors the rules name, class by class', () => {
    const script = read('deploy/kit/entrypoint.sh');
    for (const [, cls, major] of NODE_CLASSES) {
      const block = new RegExp(`^\\s+${cls}\\)[\\s\\S]*?;;`, 'm').exec(script)?.[0] ?? '';
      assert.match(block, new RegExp(`\\b${major}\\b`), `entrypoint ${cls} class uses major ${major}`);
    }
    // the entrypoint's dynamic range is the one the rules allow
    assert.match(script, /-lt 234 \] \|\| \[ "\$maj" -gt 254 \]/);
  });

  test('the rule check is not vacuous', () => {
    assert.deepEqual([...ruleMajors(['c 188:* rmw', 'c 81:* rwm'])], [188, 81]);
    assert.throws(() => ruleMajors(['a *:* rwm']));
    assert.throws(() => ruleMajors(['c 188:0 r']));
  });
});

/**
 * The Dockerfile balena builds for a build context on a fleet of `deviceType`: the context (what
 * .dockerignore lets through, as `balena push` uploads it) run through @balena/compose's own resolvers,
 * the code balena's builders and the CLI use. Returns the resolver's name and the Dockerfile it wrote.
 */
async function resolvedDockerfile(
  ctx: string,
  deviceType: string,
  arch: string,
  ig: Ignore,
): Promise<{ resolver: string; dockerfile: string }> {
  const pack = tarStream.pack();
  const dir = path.join(ROOT, ctx);
  for (const f of fs.readdirSync(dir)) {
    const rel = path.posix.join(ctx, f);
    if (!fs.statSync(path.join(dir, f)).isFile() || ig.ignores(path.posix.normalize(rel))) continue;
    pack.entry({ name: f }, fs.readFileSync(path.join(dir, f)));
  }
  pack.finalize();
  let resolver = '';
  const out = resolveInput(new Bundle(pack as unknown as Readable, deviceType, arch), getDefaultResolvers(), {
    resolver: [(name: string) => (resolver = name)],
  });
  const extract = tarStream.extract();
  let dockerfile: string | undefined;
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => {
        chunks.push(c as Buffer);
      });
      stream.on('end', () => {
        if (header.name === 'Dockerfile') dockerfile = Buffer.concat(chunks).toString('utf8');
        next();
      });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    out.on('error', reject);
  });
  out.pipe(extract);
  await done;
  assert.ok(dockerfile !== undefined, `${ctx} on ${deviceType}: no Dockerfile resolved`);
  return { resolver, dockerfile };
}

describe('per-device-type images (balena: Dockerfile.<device-type>, then .<arch>, then .template)', () => {
  const balena = parseYaml(read('balena.yml')) as { data: { supportedDeviceTypes: string[] } };
  const ig = dockerignore({ ignorecase: false }).add(
    read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
  // balena's architecture of each supported device type (all 64-bit ARM)
  const ARCH: Record<string, string> = {
    'raspberrypi4-64': 'aarch64',
    raspberrypi5: 'aarch64',
    'raspberrypi0-2w-64': 'aarch64',
    'jetson-orin-nano-devkit-nvme': 'aarch64',
    'jetson-orin-nx-xavier-nx-devkit': 'aarch64',
  };
  const EXPECTED: Record<string, string> = {
    'raspberrypi4-64': 'Dockerfile.template',
    raspberrypi5: 'Dockerfile.raspberrypi5',
    'raspberrypi0-2w-64': 'Dockerfile.template',
    'jetson-orin-nano-devkit-nvme': 'Dockerfile.template',
    'jetson-orin-nx-xavier-nx-devkit': 'Dockerfile.jetson-orin-nx-xavier-nx-devkit',
  };
  const variants = fs
    .readdirSync(ROOT)
    .filter((f) => /^Dockerfile\.[a-z0-9-]+$/.test(f) && f !== 'Dockerfile.template');

  test('every device type of the fleet has an expected image, and every variant is for a device type of the fleet', () => {
    assert.deepEqual(Object.keys(EXPECTED).sort(), [...balena.data.supportedDeviceTypes].sort());
    assert.deepEqual(Object.keys(ARCH).sort(), [...balena.data.supportedDeviceTypes].sort());
    for (const v of variants) {
      const suffix = v.slice('Dockerfile.'.length);
      // a misspelt suffix would never be picked: balena matches it against the device type or arch only
      assert.ok(
        balena.data.supportedDeviceTypes.includes(suffix) || Object.values(ARCH).includes(suffix),
        `${v}: ${suffix} is no device type or architecture of the fleet`,
      );
    }
    assert.deepEqual(variants.sort(), [
      'Dockerfile.jetson-orin-nx-xavier-nx-devkit',
      'Dockerfile.raspberrypi5',
    ]);
  });

  for (const deviceType of Object.keys(EXPECTED)) {
    test(`${deviceType}: balena's resolver builds ${EXPECTED[deviceType]} for every service built from the repository`, async () => {
      const contexts = new Set<string>();
      for (const s of Object.values(composeServices('docker-compose.yml'))) {
        const b = s['build'] as { context?: string; dockerfile?: string } | undefined;
        if (!b?.context) continue;
        // a `dockerfile:` turns off the per-device-type choice (the resolver reads that file only)
        assert.equal(b.dockerfile, undefined, 'no dockerfile: in the compose file');
        contexts.add(path.posix.normalize(b.context));
      }
      assert.ok(contexts.has('.'));
      const { resolver, dockerfile } = await resolvedDockerfile('.', deviceType, ARCH[deviceType]!, ig);
      const expected = EXPECTED[deviceType]!;
      assert.equal(
        resolver,
        expected === 'Dockerfile.template' ? 'Dockerfile.template' : 'Architecture-specific Dockerfile',
      );
      assert.equal(dockerfile, read(expected), `${deviceType} builds ${expected}`);
    });
  }

  test('the resolver check is not vacuous: the context of Mosquitto has no variant and builds its own Dockerfile', async () => {
    const { resolver, dockerfile } = await resolvedDockerfile(
      'deploy/mosquitto',
      'raspberrypi5',
      'aarch64',
      ig,
    );
    assert.equal(resolver, 'Standard Dockerfile');
    assert.equal(dockerfile, read('deploy/mosquitto/Dockerfile'));
  });

  /** The non-comment instructions that are not about the base image and its packages. */
  const common = (stage: Stage) =>
    stage.lines
      .filter(
        ([k, r]) =>
          (k === 'COPY' && !/\/usr\/local\/|keyrings/.test(r)) ||
          k === 'WORKDIR' ||
          k === 'ENTRYPOINT' ||
          k === 'CMD',
      )
      .concat(stage.lines.filter(([k, r]) => k === 'ENV' && r.startsWith('NODE_ENV')));

  for (const v of ['Dockerfile.raspberrypi5', 'Dockerfile.jetson-orin-nx-xavier-nx-devkit']) {
    test(`${v}: builds and runs the service as Dockerfile.template does (same sources, stages, entrypoint, user)`, () => {
      const tpl = stagesOf('Dockerfile.template');
      const stages = stagesOf(v).filter((s) => s.name !== 'node');
      assert.deepEqual(
        stages.map((s) => s.name),
        tpl.map((s) => s.name),
      );
      for (const [i, s] of stages.entries())
        assert.deepEqual(common(s), common(tpl[i]!), `${v}: stage ${s.name}`);
      const run = stages.at(-1)!;
      assert.deepEqual(
        aptPackages(run).filter((p) => BUILD_TOOLS.test(p)),
        [],
        'build tools in the run stage',
      );
      for (const p of [
        'gstreamer1.0-plugins-good',
        'gstreamer1.0-plugins-ugly',
        'gstreamer1.0-x',
        'util-linux',
      ])
        assert.ok(aptPackages(run).includes(p), `${v}: ${p}`);
      for (const [kw, rest] of run.lines)
        if (kw === 'RUN')
          assert.doesNotMatch(rest, /npm (install|ci|rebuild)|node-gyp/, `run stage: RUN ${rest}`);
      for (const s of stagesOf(v)) assert.doesNotMatch(s.from, /balenalib|%%BALENA_/, `${s.from}: balenalib`);
    });
  }

  test('Pi 5: Raspberry Pi libcamera from Raspberry Pi archive, trusted only under its signing key', () => {
    const [build, run] = stagesOf('Dockerfile.raspberrypi5');
    for (const s of [build!, run!]) assert.match(s.from, /^node:22(\.\d+){0,2}-bookworm(-slim)?$/);
    const buildRuns = build!.lines
      .filter(([k]) => k === 'RUN')
      .map(([, r]) => r)
      .join('\n');
    assert.match(buildRuns, /https:\/\/archive\.raspberrypi\.com\/debian\/raspberrypi\.gpg\.key/);
    // the Raspberry Pi Archive Signing Key (82B129927FA3303E), full fingerprint compared before trusting
    const fpr = /ARG RPI_ARCHIVE_KEY_FPR=([0-9A-F]{40})/.exec(read('Dockerfile.raspberrypi5'))?.[1];
    assert.equal(fpr, 'CF8A1AF502A2AA2D763BAE7E82B129927FA3303E');
    assert.match(buildRuns, /grep -qx "fpr:::::::::\$RPI_ARCHIVE_KEY_FPR:"[\s\S]*gpg --dearmor/);
    const runText = run!.lines.map(([k, r]) => `${k} ${r}`).join('\n');
    assert.match(
      runText,
      /deb \[signed-by=\/usr\/share\/keyrings\/raspberrypi-archive-keyring\.gpg\] http:\/\/archive\.raspberrypi\.com\/debian\/ bookworm main/,
    );
    assert.match(runText, /COPY --from=build \/usr\/share\/keyrings\/raspberrypi-archive-keyring\.gpg/);
    // the source is added before the install that takes libcamera from it
    assert.ok(runText.indexOf('raspberrypi.list') < runText.indexOf('gstreamer1.0-libcamera'));
    for (const p of ['gstreamer1.0-libcamera', 'libcamera-ipa', 'gstreamer1.0-plugins-ugly'])
      assert.ok(aptPackages(run!).includes(p), p);
  });

  test('Jetson Orin NX: NVIDIA L4T userspace (nvv4l2h264enc, nvvidconv) for one L4T release, service user made', () => {
    const text = read('Dockerfile.jetson-orin-nx-xavier-nx-devkit');
    const stages = stagesOf('Dockerfile.jetson-orin-nx-xavier-nx-devkit');
    const [node, build, run] = stages;
    assert.match(node!.from, /^node:22(\.\d+){0,2}-bookworm(-slim)?$/);
    for (const s of [build!, run!]) assert.equal(s.from, 'ubuntu:22.04', 'L4T 36 is Ubuntu 22.04');
    const release = /^ARG L4T_RELEASE=(r\d+\.\d+)$/m.exec(text)?.[1];
    assert.ok(release && /^r36\./.test(release), `L4T 36 (Orin on JetPack 6): ${release}`);
    const runText = run!.lines.map(([k, r]) => `${k} ${r}`).join('\n');
    assert.ok(
      run!.lines.some(([k, r]) => k === 'ARG' && r === 'L4T_RELEASE'),
      'the run stage takes the release',
    );
    for (const repo of ['common', 't234'])
      assert.match(
        runText,
        new RegExp(
          `deb \\[signed-by=/usr/share/keyrings/nvidia-jetson\\.gpg\\] https://repo\\.download\\.nvidia\\.com/jetson/${repo} \\$L4T_RELEASE main`,
        ),
      );
    assert.match(runText, /\.nv-l4t-disable-boot-fw-update-in-preinstall/);
    for (const p of ['nvidia-l4t-gstreamer', 'nvidia-l4t-multimedia', 'ca-certificates'])
      assert.ok(aptPackages(run!).includes(p), p);
    // node from the official image into both stages, and the service user the entrypoint drops to
    for (const s of [build!, run!])
      assert.ok(
        s.lines.some(([k, r]) => k === 'COPY' && r === '--from=node /usr/local/bin/node /usr/local/bin/node'),
      );
    assert.match(runText, /useradd --uid 1000 --gid node/);
    assert.ok(run!.lines.some(([k, r]) => k === 'ENV' && /POPKIT_RUN_AS=node/.test(r)));
  });
});

describe('the small-board variant (docker-compose.small.yml: docs/fleet.md#small-boards)', () => {
  const services = composeServices('docker-compose.small.yml');
  const command = (name: string) => services[name]?.['command'] as string[] | undefined;

  test('checkout, sync and kitd are one service running `popkit kit`; media and Mosquitto their own', () => {
    assert.deepEqual(Object.keys(services).sort(), ['kit', 'media', 'mosquitto']);
    assert.deepEqual(command('kit'), ['node', ...SMALL_BOARD_NODE_FLAGS, 'bin/popkit.js', 'kit']);
    assert.deepEqual(command('media'), ['node', ...SMALL_BOARD_NODE_FLAGS, 'bin/popkit.js', 'media']);
    assert.equal(services['kit']?.environment?.['POPKIT_KIT_MODE'], 'combined');
  });

  test("the kit service serves checkout's port and is healthy when checkout answers there", () => {
    const kit = services['kit'];
    const port = kit?.environment?.['POPKIT_HTTP_PORT'];
    assert.equal(port, '8080');
    assert.ok(JSON.stringify(kit?.['ports']).includes('8080:8080'), JSON.stringify(kit?.['ports']));
    // the LAN stock listener (sync's thread) is reached by the event's other kits on the bridge's port
    const lanPort = String(SyncConfig.properties.POPKIT_LAN_STOCK_PORT.default);
    assert.ok(
      ((kit?.['ports'] as unknown[]) ?? []).map(String).includes(`${lanPort}:${lanPort}`),
      JSON.stringify(kit?.['ports']),
    );
    const t = kit?.healthcheck?.test;
    assert.ok(Array.isArray(t));
    assert.match(t.join(' '), new RegExp(`http://127\\.0\\.0\\.1:${port}/healthz`));
  });

  test("media and Mosquitto are as in docker-compose.yml but for the small board's memory settings and sync's host network", () => {
    const full = composeServices('docker-compose.yml');
    const { NODE_OPTIONS: _n, MALLOC_ARENA_MAX: _m, ...mediaEnv } = services['media']?.environment ?? {};
    const fullCommand = full['media']?.['command'] as string[] | undefined;
    assert.deepEqual(
      { ...services['media'], environment: mediaEnv },
      {
        ...full['media'],
        command: fullCommand && [fullCommand[0], ...SMALL_BOARD_NODE_FLAGS, ...fullCommand.slice(1)],
      },
    );
    // the full kit publishes the bus on the host loopback for sync on the host's network; here sync is a
    // thread of the kit container, on the bridge, so nothing is published
    const { ports: fullPorts, ...fullMosquitto } = full['mosquitto'] ?? {};
    assert.deepEqual(fullPorts, ['127.0.0.1:1883:1883']);
    assert.deepEqual(services['mosquitto'], fullMosquitto);
    assert.equal(services['mosquitto']?.['ports'], undefined);
  });

  test('the kit and media run with the memory settings `popkit up` gives them in combined mode', () => {
    const want = smallBoardEnv({});
    for (const name of ['kit', 'media']) {
      const env = services[name]?.environment ?? {};
      assert.deepEqual(
        { NODE_OPTIONS: env['NODE_OPTIONS'], MALLOC_ARENA_MAX: env['MALLOC_ARENA_MAX'] },
        want,
        name,
      );
    }
  });

  test('the variant is for the boards that run combined by default, and only those', () => {
    const small = BOARD_IDS.filter((id) => defaultKitMode(getBoardProfile(id)) === 'combined');
    assert.deepEqual(small, ['pi-zero-2w']);
  });
});
