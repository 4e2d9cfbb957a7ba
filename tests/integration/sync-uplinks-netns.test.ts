// Redundant uplinks (#17) on real links: the kit in a network namespace of its own with two veth links
// to this machine, where a private Mosquitto (listening on every address) and a hub on real PostgreSQL
// run. The hub's address is on an interface of its own, reachable over either link. Link A is the venue's
// Ethernet (unmetered), link B the modem (metered); the kernel's default route prefers B (metric 100
// against 200) and kitd names B primary, so only sync's own link choice puts the connection on A.
//
// `popkit sync` runs inside the namespace (`nsenter --net`; not `ip netns exec`, which remounts /sys and
// fails where / is not a mount point, as in a chroot) on the kit's LMDB while the test sells
// orders into it the whole time. kitd's part is a stand-in reading the namespace's interfaces (carrier
// up: connected) into run/kitd.json once every 250 ms, as kitd does from NetworkManager. A link is cut
// at its far end (`ip link set … down` on this machine's side): the kit's interface loses its carrier
// and keeps its route, so the kernel alone would go on sending into the dead link. Which link carries
// the connection is read from the kernel (ss in the namespace: the local address of the established
// connection to the broker), not only from sync's status.
//
// Both up: on A. A cut mid-drain: on B, orders keep reaching the ledger. A back: on A again. B cut: A
// carries on. A cut too: nothing goes. B back: on B, and every order sold is in the ledger exactly once.
// No wall-clock assertion: the waits are failure bounds.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { LinksView } from '../../core/contracts/links.ts';
import { readRunStatus, writeRunStatus } from '../../core/contracts/run-status.ts';
import { mosquittoConfig } from '../../core/embedded-broker.ts';
import type { uplinksOutcome as preflightUplinks } from '../../firmware/preflight.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import {
  dropSchema,
  ledgerOrderIds,
  type Mosquitto,
  makeKit,
  mosquitto,
  REPO,
  startHub,
  syncEnv,
  type TestKit,
  tmpDir,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';
import { kitdRunStatus } from '../support/series.ts';

const execFileAsync = promisify(execFile);
const ROOT = process.getuid?.() === 0;
const SKIP = ROOT ? false : 'needs root: the test makes network namespaces and veth pairs';

const tag = randomBytes(3).toString('hex');
const NS = `popk-${tag}`;
/** the kit's side of each link (in NS) and this machine's side */
const A = { kit: `pka${tag}`, far: `pra${tag}` };
const B = { kit: `pkb${tag}`, far: `prb${tag}` };
const HUB_IF = `prh${tag}`;
// 198.18.0.0/15: the benchmarking range, on no real network
const net = 4 * (randomBytes(1)[0]! % 60);
const NET_A = `198.18.${net}`;
const NET_B = `198.18.${net + 1}`;
const HUB_IP = `198.18.${net + 2}.1`;

const schema = uniqueId('t_uplinks').replace(/-/g, '_');
let broker: Mosquitto | undefined;
let hub: HubService | undefined;
let kit: TestKit | undefined;
let sync: ChildProcess | undefined;
let syncExit: Promise<void> | undefined;
let kitdLoop: NodeJS.Timeout | undefined;
let madeNetns = false;
const syncLog = path.join(tmpDir('uplinks-log'), 'sync.log');

/** nsenter's arguments to run a command in the kit's network namespace (only that: mounts stay as they are) */
function inNs(): string[] {
  return [`--net=/run/netns/${NS}`, '--'];
}
/**
 * `ip …`; `ip -n NS …` runs as `nsenter --net=… ip …`: iproute2's own `-n` (like `ip netns exec`)
 * remounts /sys in a new mount namespace, which fails ("mount --make-rslave /") where / is not a mount
 * point, as in a chroot-like clean root (fresh-check)
 */
function ip(...args: string[]): string {
  const [flag, ns, ...rest] = args;
  const [cmd, argv] =
    flag === '-n' && ns ? ['nsenter', [`--net=/run/netns/${ns}`, '--', 'ip', ...rest]] : ['ip', args];
  return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}
function ipQuiet(...args: string[]): void {
  try {
    ip(...args);
  } catch {
    // already gone
  }
}

/** The kit's interfaces as NetworkManager would show them: carrier up is connected. */
function kitLinks(): LinksView {
  const shown = JSON.parse(ip('-n', NS, '-j', 'link', 'show')) as { ifname: string; operstate: string }[];
  const up = (iface: string) => shown.find((l) => l.ifname === iface)?.operstate === 'UP';
  const aUp = up(A.kit);
  const bUp = up(B.kit);
  // NetworkManager's primary: the default route it prefers, the modem's (metric 100) while it is up
  const primary = bUp ? B.kit : aUp ? A.kit : null;
  const at = new Date().toISOString();
  return {
    source: 'networkmanager',
    state: 'ok',
    links: [
      {
        iface: A.kit,
        type: 'ethernet',
        state: aUp ? 'connected' : 'disconnected',
        metered: false,
        primary: primary === A.kit,
        addresses: [`${NET_A}.2/24`],
      },
      {
        iface: B.kit,
        type: 'modem',
        state: bUp ? 'connected' : 'disconnected',
        metered: true,
        primary: primary === B.kit,
        addresses: [`${NET_B}.2/24`],
      },
    ],
    primaryMetered: primary === null ? null : primary === B.kit,
    checkedAt: at,
    lastOkAt: at,
    problems: [],
  };
}

/** The local addresses of the kit's established connections to the broker, read from the kernel. */
function kitConnections(port: number): string[] {
  const out = execFileSync('nsenter', [...inNs(), 'ss', '-Htn', 'state', 'established'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  }).toString();
  const local: string[] = [];
  for (const line of out.split('\n')) {
    const cols = line.trim().split(/\s+/);
    // Recv-Q Send-Q Local:Port Peer:Port
    // a bound socket's local address reads `198.18.0.2%pka…:port`
    if (cols.length >= 4 && cols[3] === `${HUB_IP}:${port}`)
      local.push(cols[2]!.replace(/:\d+$/, '').replace(/%.*$/, ''));
  }
  return local;
}

before(async () => {
  if (!ROOT) return;
  ip('netns', 'add', NS);
  madeNetns = true;
  // no reverse-path filter in the kit's namespace: replies come back over whichever link asked
  execFileSync('nsenter', [...inNs(), 'sh', '-c', 'echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter']);
  execFileSync('nsenter', [...inNs(), 'sh', '-c', 'echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter']);
  ip('-n', NS, 'link', 'set', 'lo', 'up');
  for (const [l, n] of [
    [A, NET_A],
    [B, NET_B],
  ] as const) {
    ip('link', 'add', l.far, 'type', 'veth', 'peer', 'name', l.kit, 'netns', NS);
    ip('addr', 'add', `${n}.1/24`, 'dev', l.far);
    ip('link', 'set', l.far, 'up');
    ip('-n', NS, 'addr', 'add', `${n}.2/24`, 'dev', l.kit);
    ip('-n', NS, 'link', 'set', l.kit, 'up');
  }
  ip('-n', NS, 'route', 'add', 'default', 'via', `${NET_B}.1`, 'dev', B.kit, 'metric', '100');
  ip('-n', NS, 'route', 'add', 'default', 'via', `${NET_A}.1`, 'dev', A.kit, 'metric', '200');
  // the hub's address on an interface of its own (a veth pair both of whose ends stay here: the dummy
  // driver is not in every kernel)
  ip('link', 'add', HUB_IF, 'type', 'veth', 'peer', 'name', `prg${tag}`);
  ip('addr', 'add', `${HUB_IP}/32`, 'dev', HUB_IF);
  ip('link', 'set', `prg${tag}`, 'up');
  ip('link', 'set', HUB_IF, 'up');

  const dir = tmpDir('uplinks-mosq');
  broker = await mosquitto({
    dir,
    // every address: the kit reaches it over either link
    rawConf: (port) => mosquittoConfig({ host: '0.0.0.0', port, dir }),
  });
  hub = await startHub({
    schema,
    gateway: new SandboxGateway(),
    brokerUrl: broker.url,
    // every address too: pre-flight reaches its /healthz over each link
    env: { POPKIT_HUB_HTTP_HOST: '0.0.0.0' },
  });
  kit = await makeKit(uniqueId('kit-uplinks'));
});

after(async () => {
  if (kitdLoop) clearInterval(kitdLoop);
  if (sync && sync.exitCode === null && sync.signalCode === null) {
    sync.kill('SIGTERM');
    const killer = setTimeout(() => sync?.kill('SIGKILL'), 10_000);
    await syncExit;
    clearTimeout(killer);
  }
  if (madeNetns) {
    ipQuiet('netns', 'del', NS);
    ipQuiet('link', 'del', A.far);
    ipQuiet('link', 'del', B.far);
    ipQuiet('link', 'del', HUB_IF);
  }
  await hub?.stop();
  await broker?.stop();
  await kit?.close();
  if (ROOT) await dropSchema(schema);
});

test('pre-flight reaches the hub over each link on its own; redundancy required fails with one', {
  skip: SKIP,
  timeout: 120_000,
}, async () => {
  // the check runs inside the kit's namespace, as `popkit preflight` on the kit would: its real socat,
  // and the namespace's own interfaces
  const hubHttpUrl = `http://${HUB_IP}:${new URL(hub!.httpUrl).port}`;
  const kitd = () => ({ ...kitdRunStatus({ links: kitLinks() }), stale: false });
  type Kitd = ReturnType<typeof kitd>;
  const uplinksOutcome = async (o: { redundancy: 'required' | 'off' }, k: Kitd) => {
    const code =
      `const { uplinksOutcome } = await import(${JSON.stringify(path.join(REPO, 'firmware/preflight.ts'))});` +
      'const a = JSON.parse(process.env.PF_ARGS);' +
      'process.stdout.write(JSON.stringify(await uplinksOutcome(a.o, a.kitd)));';
    // not execFileSync: the hub answering the probes runs in this process
    const { stdout } = await execFileAsync(
      'nsenter',
      [...inNs(), process.execPath, '--import', 'tsx', '--input-type=module', '-e', code],
      {
        env: {
          ...process.env,
          PF_ARGS: JSON.stringify({ o: { ...o, hubHttpUrl, linkProbeMs: 5000 }, kitd: k }),
        },
        cwd: REPO,
      },
    );
    return JSON.parse(stdout) as Awaited<ReturnType<typeof preflightUplinks>>;
  };
  const both = await uplinksOutcome({ redundancy: 'required' }, kitd());
  assert.equal(both.ok, true, both.detail);
  assert.equal(both.data?.['reaching'], 2);
  assert.match(both.detail, new RegExp(`${A.kit} ok .*${B.kit} ok`));

  // A's far end loses its address: the carrier stays up and NetworkManager still calls the link
  // connected, but nothing answers beyond it (a venue router whose uplink died)
  ip('addr', 'del', `${NET_A}.1/24`, 'dev', A.far);
  try {
    assert.equal(kitLinks().links.find((l) => l.iface === A.kit)?.state, 'connected');
    const view = kitd();
    const one = await uplinksOutcome({ redundancy: 'required' }, view);
    assert.equal(one.ok, false, one.detail);
    assert.equal(one.data?.['reaching'], 1);
    assert.match(one.detail, new RegExp(`${A.kit} FAILED .*${B.kit} ok|${B.kit} ok .*${A.kit} FAILED`));
    assert.match(one.detail, /POPKIT_PREFLIGHT_REDUNDANCY=required/);
    // not required: listed, passes
    const off = await uplinksOutcome({ redundancy: 'off' }, view);
    assert.equal(off.ok, true, off.detail);
    assert.equal(off.data?.['reaching'], 1);
  } finally {
    ip('addr', 'add', `${NET_A}.1/24`, 'dev', A.far);
  }
  // A cut at its far end: the kit's interface loses its carrier, kitd calls it disconnected; not
  // probed, still one short
  ip('link', 'set', A.far, 'down');
  try {
    await waitFor(
      () => kitLinks().links.find((l) => l.iface === A.kit)?.state === 'disconnected',
      10_000,
      'A without carrier',
    );
    const known = await uplinksOutcome({ redundancy: 'required' }, kitd());
    assert.equal(known.ok, false, known.detail);
    assert.equal(known.data?.['reaching'], 1);
    assert.match(known.detail, new RegExp(`${A.kit} disconnected`));
  } finally {
    ip('link', 'set', A.far, 'up');
  }
});

test('sync over two links: the unmetered first, moved off a cut link mid-drain and back, every order in the ledger once', {
  skip: SKIP,
  timeout: 240_000,
}, async () => {
  const k = kit!;
  const port = broker!.port;
  const kitdWrite = () => writeRunStatus(k.dataDir, 'kitd', kitdRunStatus({ links: kitLinks() }));
  kitdWrite();
  kitdLoop = setInterval(() => {
    try {
      kitdWrite();
    } catch {
      // the namespace is gone at the end
    }
  }, 250);

  // orders are sold the whole time, one every 20 ms
  const sold: string[] = [];
  let selling = true;
  const seller = (async () => {
    while (selling) {
      sold.push(await k.place());
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const inLedger = async () => (await ledgerOrderIds(schema, k.kitId)).rows;
  const ledgerPast = async (n: number, what: string) =>
    waitFor(async () => (await inLedger()) > n, 60_000, what);
  const via = () => readRunStatus(k.dataDir, 'sync')?.uplink?.via ?? null;
  const onLink = (l: typeof A, n: string, what: string) =>
    waitFor(
      () => {
        const c = kitConnections(port);
        return via() === l.kit && c.length === 1 && c[0] === `${n}.2`;
      },
      60_000,
      what,
    );

  const log = fs.openSync(syncLog, 'a');
  sync = spawn('nsenter', [...inNs(), process.execPath, path.join(REPO, 'bin/popkit.js'), 'sync'], {
    env: {
      ...process.env,
      ...syncEnv(k, `mqtt://${HUB_IP}:${port}`, {
        POPKIT_HUB_ALLOW_PLAINTEXT: '1',
        POPKIT_SYNC_BIND_LINKS: 'auto',
        POPKIT_MEDIA_CACHE_MB: '0',
        POPKIT_SYNC_SERIES: '0',
      }),
    },
    stdio: ['ignore', log, log],
  });
  syncExit = new Promise((resolve) => sync!.once('exit', () => resolve()));

  try {
    // both links up: the unmetered Ethernet, though the kernel and NetworkManager prefer the modem
    await onLink(A, NET_A, 'sync on link A (unmetered) with both up');
    await ledgerPast(20, 'orders in the ledger over A');
    const s1 = readRunStatus(k.dataDir, 'sync')!;
    assert.equal(s1.uplink?.via, A.kit);
    assert.equal(s1.uplink?.metered, false, 'the link in use is not metered');
    assert.equal(s1.uplink?.basis, 'unmetered');
    assert.equal(s1.uplink?.primary, B.kit, "kitd's primary is the modem");

    // A cut at its far end while orders flow: sync moves to B and the orders keep coming
    ip('link', 'set', A.far, 'down');
    const atCutA = await inLedger();
    await onLink(B, NET_B, 'sync on link B after A was cut');
    await ledgerPast(atCutA + 20, 'orders in the ledger over B');
    assert.equal(readRunStatus(k.dataDir, 'sync')?.uplink?.metered, true, 'on the metered modem');

    // A back: sync returns to the unmetered link
    ip('link', 'set', A.far, 'up');
    await onLink(A, NET_A, 'sync back on link A once it is up again');
    const backOnA = await inLedger();
    await ledgerPast(backOnA + 20, 'orders in the ledger over A again');

    // B cut: A carries on, untouched
    ip('link', 'set', B.far, 'down');
    const atCutB = await inLedger();
    await ledgerPast(atCutB + 20, 'orders in the ledger over A with B cut');
    assert.deepEqual(kitConnections(port), [`${NET_A}.2`], 'still on A');

    // A cut too: no link reaches the hub; then B back: sync goes over B and drains what waited
    ip('link', 'set', A.far, 'down');
    await waitFor(() => via() !== A.kit || kitConnections(port).length === 0, 60_000, 'A given up');
    ip('link', 'set', B.far, 'up');
    await onLink(B, NET_B, 'sync on link B once it is back');
    selling = false;
    await seller;
    await waitFor(async () => (await inLedger()) >= sold.length, 120_000, 'every order in the ledger');
    const ledger = await ledgerOrderIds(schema, k.kitId);
    assert.deepEqual(ledger.ids, [...sold].sort());
    assert.equal(ledger.rows, sold.length, 'each order exactly once');
    const last = await waitFor(
      () => {
        const s = readRunStatus(k.dataDir, 'sync');
        return s && s.backlog['orders'] === 0 ? s : undefined;
      },
      60_000,
      'the orders lane empty',
    );
    assert.ok(last.reconnects >= 3, `sync moved between links (${last.reconnects} reconnects)`);
  } catch (err) {
    selling = false;
    const tail = fs.existsSync(syncLog) ? fs.readFileSync(syncLog, 'utf8').split('\n').slice(-40) : [];
    throw new Error(`${(err as Error).message}\n--- sync log (last lines) ---\n${tail.join('\n')}`);
  } finally {
    selling = false;
    await seller;
    fs.closeSync(log);
  }
});
