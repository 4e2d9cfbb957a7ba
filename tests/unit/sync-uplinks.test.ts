// Redundant uplinks (#17, services/sync/uplinks.ts): which of kitd's links sync binds its hub connection
// to and in which order, what may reach socat's command line (interface names and hub hosts are outside
// input: hostile values refused), the rotation through links on failures and back by preference, and
// the socat stream itself (over `lo`, unprivileged, on a real socat).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { BaseConfig, composeConfig, loadConfig } from '../../core/config.ts';
import type { Link, LinksView } from '../../core/contracts/links.ts';
import {
  bindableIface,
  boundStream,
  hubTarget,
  LinkRotation,
  linkRank,
  orderUplinks,
  probeOverLink,
  SocatStream,
  socatArgs,
} from '../../core/uplinks.ts';
import { KitdConfig } from '../../firmware/config.ts';
import { uplinksOutcome } from '../../firmware/preflight.ts';
import { SyncConfig } from '../../services/sync/config.ts';
import { boundVerdict, type UplinkVerdict } from '../../services/sync/metered.ts';
import { tmpDir } from '../support/hub-link.ts';
import { makeTestPki } from '../support/test-pki.ts';

const link = (iface: string, over: Partial<Link> = {}): Link => ({
  iface,
  type: 'ethernet',
  state: 'connected',
  metered: false,
  primary: false,
  ...over,
});
const view = (links: Link[], over: Partial<LinksView> = {}): LinksView => ({
  source: 'networkmanager',
  state: 'ok',
  links,
  primaryMetered: null,
  checkedAt: null,
  lastOkAt: null,
  problems: [],
  ...over,
});

/** Write `text` on a stream, collect what comes back until the peer closes it: the answer. */
async function roundTrip(s: NodeJS.ReadWriteStream, text: string): Promise<string> {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  s.write(text);
  await new Promise<void>((resolve, reject) => {
    s.once('close', () => resolve());
    s.once('error', reject);
  });
  return Buffer.concat(chunks).toString();
}

describe('interface names for socat', () => {
  test('names NetworkManager gives data interfaces pass', () => {
    for (const n of [
      'eth0',
      'wlan0',
      'wwan0',
      'enp1s0',
      'end0',
      'usb0',
      'br-lan',
      'wlx00e04c_1',
      'a',
      'x'.repeat(15),
    ])
      assert.equal(bindableIface(n), true, n);
  });

  test('hostile values are refused: NUL, control, socat separators, quotes, paths, too long, wrong types', () => {
    const hostile: unknown[] = [
      '',
      'eth0\0',
      '\0',
      'eth\u00000',
      'eth0\n',
      'eth 0',
      'eth0,fork',
      'eth0:1',
      'eth0!!exec:sh',
      "eth'0",
      'eth"0',
      'eth\\0',
      'eth0[1]',
      '{eth0}',
      'eth/0',
      '../etc',
      '.',
      '..',
      'x'.repeat(16),
      'x'.repeat(1_000_000),
      'ethé0',
      'eth0\u202e',
      5,
      null,
      undefined,
      {},
      [],
      ['eth0'],
      { toString: () => 'eth0' },
      Object.create(null),
      true,
    ];
    for (const [i, v] of hostile.entries()) assert.equal(bindableIface(v), false, `hostile value #${i}`);
  });

  test('socatArgs checks the name again and refuses a bad one', () => {
    const t = { tls: false, host: 'hub.example', port: 1883 };
    assert.deepEqual(socatArgs(t, 'eth0', 10), [
      'STDIO',
      'TCP:hub.example:1883,so-bindtodevice=eth0,connect-timeout=10,nodelay',
    ]);
    for (const bad of ['eth0,fork', 'eth0\0', '', 'x'.repeat(16)]) assert.throws(() => socatArgs(t, bad, 10));
    assert.throws(() => socatArgs({ tls: false, host: 'a,fork', port: 1 }, 'eth0', 10), /host refused/);
  });
});

describe('link order', () => {
  test('connected links, unmetered first, then not known, then metered; the primary first within each', () => {
    const v = view([
      link('wwan0', { type: 'modem', metered: true, primary: true }),
      link('wlan0', { type: 'wifi', metered: null }),
      link('eth1', { metered: false }),
      link('eth0', { metered: false, primary: false }),
      link('eth2', { state: 'disconnected' }),
      link('eth3', { state: 'connecting' }),
      link('usb0', { metered: true }),
    ]);
    assert.deepEqual(
      orderUplinks(v).map((c) => c.iface),
      ['eth1', 'eth0', 'wlan0', 'wwan0', 'usb0'],
    );
    // the primary wins a tie
    const tie = view([link('eth0'), link('eth1', { primary: true })]);
    assert.deepEqual(
      orderUplinks(tie).map((c) => c.iface),
      ['eth1', 'eth0'],
    );
    assert.ok(linkRank({ metered: false, primary: false }) < linkRank({ metered: null, primary: true }));
    assert.ok(linkRank({ metered: null, primary: false }) < linkRank({ metered: true, primary: true }));
  });

  test('no links unless NetworkManager gave a good reading: sim, unavailable, off, absent', () => {
    const links = [link('eth0')];
    assert.deepEqual(orderUplinks(view(links, { source: 'sim' })), []);
    assert.deepEqual(orderUplinks(view(links, { state: 'unavailable' })), []);
    assert.deepEqual(orderUplinks(view(links, { source: 'off', state: 'off' })), []);
    assert.deepEqual(orderUplinks(undefined), []);
    assert.deepEqual(orderUplinks(view([])), []);
  });

  test('hostile entries are left out, names once each, `__proto__` is only a name', () => {
    const v = view([
      null as unknown as Link,
      'eth0' as unknown as Link,
      link('eth0,fork'),
      link('eth0\0'),
      link('x'.repeat(100)),
      { ...link('eth9'), iface: 42 } as unknown as Link,
      { ...link('eth8'), metered: 'no' } as unknown as Link,
      { ...link('eth7'), primary: 'yes' } as unknown as Link,
      link('__proto__'),
      link('eth0'),
      link('eth0', { metered: true }),
    ]);
    const out = orderUplinks(v);
    assert.deepEqual(
      out.map((c) => c.iface),
      ['eth7', '__proto__', 'eth0', 'eth8'],
    );
    // a metered flag of the wrong type counts as not known, a primary flag of the wrong type as false
    assert.equal(out.find((c) => c.iface === 'eth8')?.metered, null);
    assert.equal(out.find((c) => c.iface === 'eth7')?.primary, false);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal(Object.getPrototypeOf(out[0]), Object.prototype);
  });

  test("only this namespace's links: the interface here carries one of kitd's addresses for it", () => {
    const v = view([
      link('eth0', { addresses: ['192.0.2.10/24'] }),
      link('wwan0', { metered: true, addresses: ['10.64.1.2/30'] }),
      link('wlan0', { addresses: ['198.51.100.7/24'] }),
      link('usb0'),
    ]);
    // a container on a bridge network: its own eth0 with another address, no modem
    const bridged = { lo: [{ address: '127.0.0.1' }], eth0: [{ address: '172.17.0.5' }] };
    assert.deepEqual(orderUplinks(v, bridged), []);
    // the host's network (or the kit's namespace): eth0 and wwan0 are here, wlan0's address is not
    const host = {
      eth0: [{ address: 'fe80::1' }, { address: '192.0.2.10' }],
      wwan0: [{ address: '10.64.1.2' }],
      wlan0: [{ address: '198.51.100.8' }],
      usb0: [{ address: '169.254.1.1' }],
    };
    assert.deepEqual(
      orderUplinks(v, host).map((c) => c.iface),
      ['eth0', 'wwan0'],
    );
    // hostile shapes of the local table or of kitd's addresses: not local
    const odd = JSON.parse('{"__proto__": [{"address": "192.0.2.10"}], "eth0": "192.0.2.10"}');
    assert.deepEqual(orderUplinks(v, odd), []);
    assert.deepEqual(
      orderUplinks(view([{ ...link('eth0'), addresses: 'x' as unknown as string[] }]), host),
      [],
    );
  });

  test('the metered verdict follows the link the connection is bound to', () => {
    const v: UplinkVerdict = {
      metered: true,
      basis: 'metered',
      primary: 'wwan0',
      links: [
        { iface: 'eth0', metered: false, primary: false },
        { iface: 'wwan0', metered: true, primary: true },
        { iface: 'wlan0', metered: null, primary: false },
      ],
    };
    assert.equal(boundVerdict(v, null), v, 'not bound: the primary decides');
    assert.deepEqual(boundVerdict(v, 'eth0'), { ...v, metered: false, basis: 'unmetered' });
    assert.deepEqual(boundVerdict(v, 'wwan0'), v);
    assert.deepEqual(boundVerdict(v, 'wlan0'), { ...v, metered: false, basis: 'metered-unknown' });
    assert.equal(boundVerdict(v, 'gone0'), v, 'a link kitd no longer lists: the primary decides');
  });
});

describe('hub target', () => {
  test('plain and TLS MQTT URLs to another machine are bound; default ports', () => {
    assert.deepEqual(hubTarget('mqtt://hub.example'), { tls: false, host: 'hub.example', port: 1883 });
    assert.deepEqual(hubTarget('mqtts://hub.example'), { tls: true, host: 'hub.example', port: 8883 });
    assert.deepEqual(hubTarget('tcp://198.18.0.1:2883'), { tls: false, host: '198.18.0.1', port: 2883 });
    assert.deepEqual(hubTarget('mqtts://[2001:db8::1]:8884'), {
      tls: true,
      host: '[2001:db8::1]',
      port: 8884,
    });
    assert.deepEqual(hubTarget('mqtt://user:pw@hub_1.example:1883'), {
      tls: false,
      host: 'hub_1.example',
      port: 1883,
    });
  });

  test('not bound: this machine, WebSocket, unix, unparsable, odd hosts', () => {
    for (const u of [
      'mqtt://127.0.0.1:1883',
      'mqtt://localhost',
      'mqtts://[::1]:8883',
      'ws://hub.example/mqtt',
      'wss://hub.example/mqtt',
      'mqtt+unix:///run/mosquitto.sock',
      'http://hub.example',
      'not a url',
      '',
      'mqtt://',
      'mqtt://a,b:1883',
      'mqtt://a!!b:1883',
      `mqtt://${'a'.repeat(300)}:1883`,
      'mqtt://hub%00.example:1883',
      'mqtt://-hub:1883',
    ])
      assert.equal(hubTarget(u), undefined, u);
  });
});

describe('link rotation', () => {
  const cands = [
    { iface: 'eth0', metered: false, primary: false },
    { iface: 'wwan0', metered: true, primary: true },
  ];

  test('failures: the next link, then a plain connection, then round again (wrapped)', () => {
    const r = new LinkRotation(() => 0);
    assert.equal(r.first(cands), 'eth0');
    assert.deepEqual(r.next(cands), { via: 'wwan0', wrapped: false });
    assert.deepEqual(r.next(cands), { via: null, wrapped: false });
    assert.deepEqual(r.next(cands), { via: 'eth0', wrapped: true });
    // no links known: plain, as before #17
    assert.equal(r.first([]), null);
    assert.deepEqual(r.next([]), { via: null, wrapped: true });
    // the link in use vanished from the list: the best one
    r.via = 'gone0';
    assert.deepEqual(r.next(cands), { via: 'eth0', wrapped: false });
  });

  test('preference: off a link kitd no longer lists, back to a better one unless it failed lately', () => {
    let now = 0;
    const r = new LinkRotation(() => now);
    r.first(cands);
    assert.equal(r.preferred(cands), undefined, 'on the best link');
    assert.deepEqual(r.preferred([cands[1]!]), { to: 'wwan0' }, 'eth0 is gone');
    assert.deepEqual(r.preferred([]), { to: null }, 'no link left: plain');
    // eth0 failed: on wwan0, eth0 back in the list is not taken again at once
    r.via = 'eth0';
    r.next(cands);
    assert.equal(r.via, 'wwan0');
    assert.equal(r.preferred(cands), undefined);
    now += LinkRotation.HOLD_MIN_MS;
    assert.deepEqual(r.preferred(cands), { to: 'eth0' });
    // failing again doubles the wait
    r.via = 'eth0';
    r.next(cands);
    now += LinkRotation.HOLD_MIN_MS;
    assert.equal(r.preferred(cands), undefined);
    now += LinkRotation.HOLD_MIN_MS;
    assert.deepEqual(r.preferred(cands), { to: 'eth0' });
    // a success forgets the failures
    r.via = 'eth0';
    r.succeeded();
    r.via = 'wwan0';
    assert.deepEqual(r.preferred(cands), { to: 'eth0' });
    // plain, links known again: the best that has not failed
    r.via = null;
    assert.deepEqual(r.preferred(cands), { to: 'eth0' });
    assert.equal(new LinkRotation().preferred([]), undefined, 'plain with no links: stay');
    // two unmetered links: NetworkManager's primary moving between them does not move the connection
    const two = [
      { iface: 'wlan0', metered: false, primary: true },
      { iface: 'eth0', metered: false, primary: false },
    ];
    const r2 = new LinkRotation(() => 0);
    r2.via = 'eth0';
    assert.equal(r2.preferred(two), undefined);
  });
});

describe('socat stream', () => {
  const servers: net.Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  test('over lo with so-bindtodevice: bytes both ways, closed when the peer closes', async () => {
    const srv = net.createServer((c) => c.on('data', (d) => c.end(Buffer.concat([Buffer.from('echo:'), d]))));
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    const s = new SocatStream(socatArgs({ tls: false, host: '127.0.0.1', port }, 'lo', 5));
    assert.equal(await roundTrip(s, 'ping'), 'echo:ping');
  });

  test('an IPv6 hub (a bracketed literal, as a URL gives it) over lo with so-bindtodevice', async () => {
    const srv = net.createServer((c) => c.on('data', (d) => c.end(Buffer.concat([Buffer.from('v6:'), d]))));
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '::1', () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    const host = new URL(`mqtt://[::1]:${port}`).hostname;
    assert.equal(host, '[::1]');
    const s = new SocatStream(socatArgs({ tls: false, host, port }, 'lo', 5));
    assert.equal(await roundTrip(s, 'ping'), 'v6:ping');
  });

  test('a link that does not exist: an error and a close, no hang', async () => {
    const srv = net.createServer();
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    const s = boundStream({ tls: false, host: '127.0.0.1', port }, 'nosuchif9', { connectTimeoutMs: 5000 });
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => s.once('error', resolve));
    assert.equal(err.code, 'ELINKCLOSED');
    if (!s.destroyed) await new Promise((r) => s.once('close', r));
    assert.equal(s.destroyed, true);
  });

  test('socat missing: ENOENT (the hub link then connects plainly)', async () => {
    const s = new SocatStream(['STDIO', 'TCP:127.0.0.1:1'], '/nonexistent/socat');
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => s.once('error', resolve));
    assert.equal(err.code, 'ENOENT');
  });

  test('destroying the stream ends its socat', async () => {
    const srv = net.createServer(() => undefined);
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    const connected = new Promise<net.Socket>((r) => srv.once('connection', r));
    const s = new SocatStream(socatArgs({ tls: false, host: '127.0.0.1', port }, 'lo', 5));
    const sock = await connected;
    sock.resume();
    const peerClosed = new Promise((r) => sock.once('close', r));
    s.destroy();
    await peerClosed;
  });
});

describe('per-link HTTP probe (pre-flight)', () => {
  const servers: net.Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });
  const listen = async (srv: net.Server) => {
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    return { tls: false, host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port };
  };

  test('an HTTP answer over the link is a pass (a 503 too); its path and host are what was asked', async () => {
    const seen: string[] = [];
    const t = await listen(
      http.createServer((req, res) => {
        seen.push(`${req.method} ${req.url} ${req.headers.host}`);
        res.writeHead(503).end('degraded');
      }),
    );
    const r = await probeOverLink(t, 'lo', '/healthz', { timeoutMs: 5000 });
    assert.equal(r.ok, true, r.error);
    assert.equal(r.status, 503);
    assert.equal(typeof r.rttMs, 'number');
    assert.deepEqual(seen, [`GET /healthz 127.0.0.1:${t.port}`]);
  });

  test('no link, no HTTP, no answer, a hostile name: a fail each, none hangs', async () => {
    const t = await listen(http.createServer((_q, res) => res.end('ok')));
    const gone = await probeOverLink(t, 'nosuchif9', '/healthz', { timeoutMs: 5000 });
    assert.equal(gone.ok, false);
    const junk = await listen(net.createServer((c) => c.end('SSH-2.0-OpenSSH\r\n')));
    const notHttp = await probeOverLink(junk, 'lo', '/healthz', { timeoutMs: 5000 });
    assert.deepEqual([notHttp.ok, notHttp.error], [false, 'the answer is not HTTP']);
    const silent = await listen(net.createServer(() => undefined));
    const late = await probeOverLink(silent, 'lo', '/healthz', { timeoutMs: 300 });
    assert.deepEqual([late.ok, late.error], [false, 'no answer within 300 ms']);
    const hostile = await probeOverLink(t, 'lo,fork', '/healthz', { timeoutMs: 1000 });
    assert.equal(hostile.ok, false);
    assert.match(hostile.error ?? '', /interface name refused/);
  });

  test('the uplinks check: links not known, from the sim board, or a hub on this machine pass only when not required', async () => {
    const kitdWith = (links: LinksView | undefined, stale = false) =>
      ({ links, stale }) as unknown as Parameters<typeof uplinksOutcome>[1];
    const nm = view([link('eth0'), link('wwan0', { metered: true })]);
    const cases: [string, Parameters<typeof uplinksOutcome>[1], string][] = [
      ['no kitd', undefined, 'http://hub.example'],
      ['stale kitd', kitdWith(nm, true), 'http://hub.example'],
      ['links unavailable', kitdWith(view([], { state: 'unavailable' })), 'http://hub.example'],
      ['sim links', kitdWith(view([link('eth0')], { source: 'sim' })), 'http://hub.example'],
      ['hub on this machine', kitdWith(nm), 'http://127.0.0.1:8090'],
      ['odd hub host', kitdWith(nm), 'http://a,b:80'],
    ];
    for (const [what, kitd, hubHttpUrl] of cases) {
      const off = await uplinksOutcome({ hubHttpUrl, redundancy: 'off' }, kitd);
      assert.equal(off.ok, true, `${what}: ${off.detail}`);
      const req = await uplinksOutcome({ hubHttpUrl, redundancy: 'required' }, kitd);
      assert.equal(req.ok, false, `${what}: ${req.detail}`);
      assert.match(req.detail, /POPKIT_PREFLIGHT_REDUNDANCY=required/);
    }
  });

  test("hostile interface names in kitd's view never reach socat: not probed, counted as not reaching", async () => {
    const bin = '/nonexistent/socat-must-not-run';
    const kitd = {
      stale: false,
      links: view([link('eth0,fork'), link('eth0\0'), link('x'.repeat(40))]),
    } as unknown as Parameters<typeof uplinksOutcome>[1];
    const r = await uplinksOutcome(
      { hubHttpUrl: 'http://hub.example', redundancy: 'required', socatBin: bin },
      kitd,
    );
    assert.deepEqual(r.data?.['links'], [], 'no probe ran');
    assert.equal(r.ok, false);
    assert.equal(r.data?.['reaching'], 0);
  });
});

describe('configuration', () => {
  const sync = composeConfig(BaseConfig, SyncConfig);
  test('POPKIT_SYNC_BIND_LINKS: auto by default, off; anything else refused', () => {
    assert.equal(loadConfig(sync, {}).POPKIT_SYNC_BIND_LINKS, 'auto');
    assert.equal(loadConfig(sync, { POPKIT_SYNC_BIND_LINKS: 'off' }).POPKIT_SYNC_BIND_LINKS, 'off');
    // unset or empty: the default
    assert.equal(loadConfig(sync, { POPKIT_SYNC_BIND_LINKS: '' }).POPKIT_SYNC_BIND_LINKS, 'auto');
    for (const v of ['AUTO', 'on', '1', 'auto\0', '__proto__', 'x'.repeat(100_000)])
      assert.throws(
        () => loadConfig(sync, { POPKIT_SYNC_BIND_LINKS: v }),
        { code: 'CONFIG_INVALID' },
        v.slice(0, 20),
      );
  });
  test('POPKIT_SYNC_KEEPALIVE_S: 60 by default, 5..3600', () => {
    assert.equal(loadConfig(sync, {}).POPKIT_SYNC_KEEPALIVE_S, 60);
    assert.equal(loadConfig(sync, { POPKIT_SYNC_KEEPALIVE_S: '5' }).POPKIT_SYNC_KEEPALIVE_S, 5);
    for (const v of ['4', '3601', '-1', '1.5', 'NaN', '1e400', '__proto__', ' 60'])
      assert.throws(() => loadConfig(sync, { POPKIT_SYNC_KEEPALIVE_S: v }), { code: 'CONFIG_INVALID' }, v);
  });
  test('POPKIT_PREFLIGHT_REDUNDANCY: off by default, required; anything else refused', () => {
    assert.equal(loadConfig(KitdConfig, {}).POPKIT_PREFLIGHT_REDUNDANCY, 'off');
    assert.equal(
      loadConfig(KitdConfig, { POPKIT_PREFLIGHT_REDUNDANCY: 'required' }).POPKIT_PREFLIGHT_REDUNDANCY,
      'required',
    );
    for (const v of ['REQUIRED', 'yes', 'true', 'required\0', '__proto__', 'constructor', 'required '])
      assert.throws(
        () => loadConfig(KitdConfig, { POPKIT_PREFLIGHT_REDUNDANCY: v }),
        { code: 'CONFIG_INVALID' },
        v,
      );
  });
});

describe('TLS over a bound link (mqtts://, https://)', () => {
  const dir = tmpDir('uplinks-tls');
  const file = (n: string) => path.join(dir, n);
  const servers: net.Server[] = [];
  let port = 0;
  before(async () => {
    makeTestPki(dir, { cas: ['ca', 'other-ca'], san: 'IP:127.0.0.1' });
    const srv = tls.createServer(
      { key: fs.readFileSync(file('server.key')), cert: fs.readFileSync(file('server.crt')) },
      (c) => c.on('data', (d) => c.end(Buffer.concat([Buffer.from('tls:'), d]))),
    );
    srv.on('tlsClientError', () => undefined);
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    port = (srv.address() as net.AddressInfo).port;
  });
  after(() => {
    for (const s of servers) s.close();
  });

  test('the private CA verifies the hub: bytes both ways through socat and TLS', async () => {
    const s = boundStream({ tls: true, host: '127.0.0.1', port }, 'lo', {
      ca: fs.readFileSync(file('ca.crt')),
      connectTimeoutMs: 5000,
    });
    assert.equal(await roundTrip(s, 'ping'), 'tls:ping');
  });

  test('another CA: refused (the certificate does not verify), nothing sent', async () => {
    const s = boundStream({ tls: true, host: '127.0.0.1', port }, 'lo', {
      ca: fs.readFileSync(file('other-ca.crt')),
      connectTimeoutMs: 5000,
    });
    let got = 0;
    s.on('data', () => got++);
    s.write('secret');
    const err = await new Promise<Error>((resolve) => s.once('error', resolve));
    assert.match(err.message, /certificate/i);
    assert.equal(got, 0);
  });

  test("socat failing under TLS: errors on the TLS socket, socat's own to onLinkError, then a close", async () => {
    const linkErrors: string[] = [];
    const s = boundStream({ tls: true, host: '127.0.0.1', port }, 'nosuchif9', {
      connectTimeoutMs: 5000,
      onLinkError: (e) => linkErrors.push(String(e.code)),
    });
    const errors: string[] = [];
    s.on('error', (e: NodeJS.ErrnoException) => errors.push(String(e.code)));
    await new Promise((r) => s.once('close', r));
    assert.ok(errors.length > 0);
    assert.deepEqual(linkErrors, ['ELINKCLOSED']);
    const missing = boundStream({ tls: true, host: '127.0.0.1', port }, 'lo', {
      connectTimeoutMs: 5000,
      socatBin: '/nonexistent/socat',
      onLinkError: (e) => linkErrors.push(String(e.code)),
    });
    missing.on('error', () => undefined);
    await new Promise((r) => missing.once('close', r));
    assert.deepEqual(linkErrors, ['ELINKCLOSED', 'ENOENT']);
  });
});
