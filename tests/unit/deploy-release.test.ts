// The balena release files, parsed and checked against the code they deploy: docker-compose.yml
// through @balena/compose's own normalize() (what balena push runs), every command against the CLI
// table, every device node against the board profiles, every variable against a config schema, and
// balena.yml's device types against the board matchers.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { normalize, parse as parseComposition } from '@balena/compose/dist/parse/index.js';
import { parse as parseYaml } from 'yaml';
import { COMMANDS } from '../../cli/popkit.ts';
import { BaseConfig, CheckoutConfig, loadConfig } from '../../core/config.ts';
import { BROKER_MAX_PACKET_BYTES } from '../../core/embedded-broker.ts';
import { KitdConfig } from '../../firmware/config.ts';
import { deviceNodesFor } from '../../firmware/device-nodes.ts';
import { BALENA_HOST_DBUS_SOCKET } from '../../firmware/links.ts';
import { BOARD_IDS, boardFromDeviceType, getBoardProfile } from '../../hardware/boards/index.ts';
import { MediaConfig } from '../../services/media/config.ts';
import { SyncConfig } from '../../services/sync/config.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (p: string) => fs.readFileSync(path.join(ROOT, p), 'utf8');
const composeDoc = parseYaml(read('docker-compose.yml'), { merge: true }) as Record<string, unknown>;
const composition = normalize(composeDoc);
const services = composition.services;
const balena = parseYaml(read('balena.yml')) as {
  name: string;
  type: string;
  description: string;
  version: string;
  data: {
    defaultDeviceType: string;
    supportedDeviceTypes: string[];
    applicationEnvironmentVariables?: Array<Record<string, string>>;
  };
};
const KIT_SERVICES = ['kitd', 'checkout', 'sync', 'media'] as const;

describe('docker-compose.yml', () => {
  test('normalizes with @balena/compose and yields one image descriptor per service', () => {
    const images = parseComposition(composition);
    assert.deepEqual(images.map((i) => i.serviceName).sort(), [
      'checkout',
      'kitd',
      'media',
      'mosquitto',
      'sync',
    ]);
  });

  test('every kit service is the same image with its own popkit command, and that command exists', () => {
    for (const name of KIT_SERVICES) {
      const s = services[name];
      assert.ok(s, `service ${name}`);
      assert.deepEqual(s.build, { context: '.' }, `${name} builds the one image`);
      const cmd = s.command as string[];
      assert.deepEqual(cmd.slice(0, 2), ['node', 'bin/popkit.js'], `${name} runs the popkit CLI`);
      const sub = cmd[2] ?? '';
      assert.ok(sub in COMMANDS, `popkit ${sub} is in cli/popkit.ts COMMANDS`);
      assert.ok(fs.existsSync(path.join(ROOT, 'cli/commands', `${sub}.ts`)), `cli/commands/${sub}.ts exists`);
      assert.ok(s.healthcheck?.test, `${name} has a health check`);
      assert.equal(s.restart, 'always');
      assert.ok((s.volumes ?? []).includes('popkit-data:/data'), `${name} mounts the data volume`);
      assert.equal(s.environment?.['POPKIT_DATA_DIR'], '/data');
      assert.ok(s.labels?.['io.balena.update.strategy'], `${name} has an update strategy`);
    }
    assert.ok(services['mosquitto']?.healthcheck?.test);
    assert.ok(fs.existsSync(path.join(ROOT, 'deploy/mosquitto/Dockerfile')));
    assert.match(read('deploy/mosquitto/mosquitto.conf'), /^max_queued_messages 0$/m);
  });

  test('kitd talks to the supervisor, sees sysfs and the host D-Bus, and reaches the bus and checkout by service name', () => {
    const k = services['kitd']!;
    assert.equal(k.labels?.['io.balena.features.supervisor-api'], '1');
    assert.equal(k.labels?.['io.balena.features.sysfs'], '1');
    // the host's system bus (NetworkManager's links, firmware/links.ts), at the address balena mounts it
    assert.equal(k.labels?.['io.balena.features.dbus'], '1');
    assert.equal(k.environment?.['DBUS_SYSTEM_BUS_ADDRESS'], `unix:path=${BALENA_HOST_DBUS_SOCKET}`);
    assert.equal(
      loadConfig(KitdConfig, { DBUS_SYSTEM_BUS_ADDRESS: k.environment?.['DBUS_SYSTEM_BUS_ADDRESS'] })
        .DBUS_SYSTEM_BUS_ADDRESS,
      `unix:path=${BALENA_HOST_DBUS_SOCKET}`,
      'the compose value passes kitd config',
    );
    for (const name of ['checkout', 'sync', 'media', 'mosquitto'])
      assert.equal(
        services[name]?.labels?.['io.balena.features.dbus'],
        undefined,
        `${name} needs no host bus`,
      );
    assert.equal(k.environment?.['POPKIT_LOCAL_BUS_URL'], 'mqtt://mosquitto:1883');
    assert.equal(k.environment?.['POPKIT_CHECKOUT_URL'], 'http://checkout:8080');
    assert.ok(k.depends_on?.includes('mosquitto'));
    assert.ok((services['checkout']?.ports ?? []).some((p) => String(p).endsWith(':8080')));
  });

  test("sync runs with the host's network (its links), and reaches the local bus on the host's loopback only", () => {
    const raw = (composeDoc['services'] as Record<string, Record<string, unknown>>)['sync']!;
    assert.equal(raw['network_mode'], 'host', 'sync sees the host links it binds to (core/uplinks.ts)');
    const sync = services['sync']!;
    assert.equal(sync.environment?.['POPKIT_LOCAL_BUS_URL'], 'mqtt://127.0.0.1:1883');
    assert.deepEqual(sync.ports ?? [], [], 'host networking takes no port mappings');
    // so its LAN stock listener and multicast DNS announcement are on the venue LAN itself
    assert.notEqual(sync.environment?.['POPKIT_LAN_STOCK'], 'off');
    const published = (services['mosquitto']?.ports ?? []).map(String);
    assert.deepEqual(published, ['127.0.0.1:1883:1883'], 'the local bus on the host loopback, nowhere else');
    // every other kit service stays on the bridge and reaches the bus by name
    for (const name of ['checkout', 'media', 'kitd']) {
      const other = (composeDoc['services'] as Record<string, Record<string, unknown>>)[name]!;
      assert.equal(other['network_mode'], undefined, name);
      assert.equal(services[name]?.environment?.['POPKIT_LOCAL_BUS_URL'], 'mqtt://mosquitto:1883', name);
    }
  });

  test("no mapped devices; the default board's nodes are all reachable through cgroup rules (deploy-images.test.ts)", () => {
    for (const name of Object.keys(services))
      assert.deepEqual(services[name]?.devices ?? [], [], `${name}: devices: maps nodes that may be missing`);
    for (const name of ['checkout', 'sync', 'mosquitto'])
      assert.deepEqual(services[name]?.device_cgroup_rules ?? [], [], `${name} needs no devices`);
    const defaultBoard = boardFromDeviceType(balena.data.defaultDeviceType);
    assert.ok(defaultBoard);
    const need = deviceNodesFor(getBoardProfile(defaultBoard));
    assert.ok(need.kitd.length > 0 && need.media.length > 0);
  });

  test('every variable set in the compose file is one a popkit config schema reads', () => {
    const known = new Set([
      ...Object.keys(BaseConfig.properties),
      ...Object.keys(CheckoutConfig.properties),
      ...Object.keys(KitdConfig.properties),
      ...Object.keys(MediaConfig.properties),
      ...Object.keys(SyncConfig.properties),
      // read by bin/popkit.js and by libuv, not by a schema
      'POPKIT_RUNTIME',
      'UV_THREADPOOL_SIZE',
      // read by the image's entrypoint (deploy/kit/entrypoint.sh)
      ...[...read('deploy/kit/entrypoint.sh').matchAll(/\$\{(POPKIT_[A-Z_]+):-/g)].map((m) => m[1]!),
    ]);
    for (const name of KIT_SERVICES) {
      for (const key of Object.keys(services[name]?.environment ?? {})) {
        assert.ok(known.has(key), `${name}: ${key} is read by no config schema`);
      }
    }
    for (const v of balena.data.applicationEnvironmentVariables ?? []) {
      for (const key of Object.keys(v))
        assert.ok(known.has(key), `balena.yml: ${key} is read by no config schema`);
    }
  });

  test('the Dockerfile is on the official multi-arch Node 22 images (details: deploy-images.test.ts)', () => {
    const df = read('Dockerfile.template');
    const froms = [...df.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    assert.ok(froms.length >= 2, 'multi-stage');
    for (const f of froms) assert.match(f ?? '', /^node:22-bookworm(-slim)?$/);
    assert.match(df, /POPKIT_RUNTIME=dist/);
  });
});

describe('balena.yml', () => {
  test('names the application, its version and its device types', () => {
    assert.equal(balena.name, 'Popkit');
    assert.equal(balena.type, 'sw.application');
    assert.ok(balena.description.length > 40);
    const pkg = JSON.parse(read('package.json')) as { version: string };
    assert.equal(balena.version, pkg.version, 'balena.yml version follows package.json');
    assert.ok(balena.data.supportedDeviceTypes.includes(balena.data.defaultDeviceType));
  });

  test('every supported device type maps to a board profile, and every real board is covered', () => {
    const boards = balena.data.supportedDeviceTypes.map((t) => {
      const b = boardFromDeviceType(t);
      assert.ok(b, `${t} maps to no board profile`);
      return b;
    });
    for (const id of BOARD_IDS.filter((b) => b !== 'sim'))
      assert.ok(boards.includes(id), `${id} has no device type`);
  });
});

describe('deploy/hub (the regional hub)', () => {
  const hubCompose = parseYaml(read('deploy/hub/docker-compose.yml')) as {
    services: Record<string, { ports?: string[]; volumes?: string[]; environment?: Record<string, string> }>;
  };
  const conf = read('deploy/hub/mosquitto.conf');
  const mosq = hubCompose.services['mosquitto']!;
  const mounted = new Map((mosq.volumes ?? []).map((v) => [v.split(':')[1], v.split(':')[0]]));

  test('kits reach only the TLS listener; the workers use the internal plain one', () => {
    assert.deepEqual(
      (mosq.ports ?? []).map((p) => p.split(':').at(-1)),
      ['8883'],
      'only 8883 is published',
    );
    const kits = conf.split(/^listener /m).find((block) => block.startsWith('8883'));
    assert.ok(kits, 'a listener 8883 block');
    for (const line of [
      /^certfile \S+/m,
      /^keyfile \S+/m,
      /^tls_version tlsv1\.2$/m,
      /^use_username_as_clientid true$/m,
      /^allow_anonymous false$/m,
      // kits are clients of the dynamic security plugin (the password/ACL file fallback:
      // mosquitto-passwd.conf, tests/integration/broker-acl.test.ts)
      /^plugin \/usr\/lib\/mosquitto_dynamic_security\.so$/m,
      /^plugin_opt_config_file \/mosquitto\/data\/dynamic-security\.json$/m,
    ])
      assert.match(kits, line);
    assert.doesNotMatch(kits, /^(password_file|acl_file) /m, 'no kits in a password file');
    assert.match(conf, /^per_listener_settings true$/m);
    // the packet limit is the one the hub's catalog check and the embedded broker use; queues bounded in bytes
    assert.match(conf, new RegExp(`^max_packet_size ${BROKER_MAX_PACKET_BYTES}$`, 'm'));
    assert.match(conf, /^max_queued_bytes [1-9]\d*$/m);
    assert.equal(hubCompose.services['hub']?.environment?.['POPKIT_HUB_BROKER_URL'], 'mqtt://mosquitto:1883');
  });

  test("every file mosquitto.conf reads is mounted, and the CA's key is not", () => {
    const files = [...conf.matchAll(/^(?:password_file|acl_file|certfile|keyfile|cafile) (\S+)$/gm)].map(
      (m) => m[1]!,
    );
    assert.ok(files.length >= 4);
    for (const f of files) assert.ok(mounted.has(f), `${f} is mounted`);
    // the dynamic security file lives in the broker's data volume, which mosquitto-init writes first
    assert.equal(mounted.get('/mosquitto/data'), 'mosquitto-data');
    assert.ok(
      hubCompose.services['mosquitto-init']?.volumes?.includes('mosquitto-data:/mosquitto/data'),
      'mosquitto-init writes the same volume',
    );
    assert.equal(mounted.get('/mosquitto/certs/server.crt'), './certs/server.crt');
    assert.equal(mounted.get('/mosquitto/certs/server.key'), './certs/server.key');
    for (const [, host] of mounted) assert.doesNotMatch(host ?? '', /ca\.key|^\.\/certs$/, `${host} mounted`);
  });
});
