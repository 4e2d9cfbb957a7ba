// Redundant uplinks (#17): sync's hub connection goes out over one named link at a time (venue
// Ethernet, Wi-Fi, a cellular modem), the unmetered first, and moves to the next when a connection
// fails, drops, or kitd says its link went away; once a better link is back it moves back to it.
//
// The links are kitd's (run/kitd.json `links`; sync reads them once a second in services/sync/metered.ts,
// `popkit preflight` from the kit's /v1/status, firmware/preflight.ts); only a fresh view from NetworkManager counts (the sim board's links file names interfaces
// this machine may not have). Binding a connection to an interface needs SO_BINDTODEVICE: a source
// address alone does not choose the egress interface without policy routing, and Node's `net` cannot
// set it. socat can (`so-bindtodevice`); each connection is one socat child whose stdio is the stream
// mqtt.js speaks over (TLS on top for mqtts://), and a socat that exits is a closed connection.
//
// Interface names come from a file: they are checked again here, stricter than the contract (socat
// splits its address at `,` `:` and reads `!!` `\` quotes and brackets), before they reach socat's
// command line. The hub's host is checked the same way. A hub on this machine (the embedded hub), a
// WebSocket hub URL or POPKIT_SYNC_BIND_LINKS=off: plain connections, as before #17.
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { LinksView } from './contracts/links.ts';
/** POPKIT_SYNC_BIND_LINKS */
export const BIND_LINK_MODES = ['auto', 'off'] as const;
export type BindLinksMode = (typeof BIND_LINK_MODES)[number];

/** A link sync may connect over, in kitd's words. */
export interface UplinkCandidate {
  iface: string;
  metered: boolean | null;
  primary: boolean;
}

/**
 * An interface name that may go on socat's command line: what Linux allows (IFNAMSIZ 15, no `/`, `:`,
 * white space) narrowed to letters, digits, `_`, `.`, `-` (every name NetworkManager gives an Ethernet,
 * Wi-Fi or modem data interface), not `.` or `..`. Anything else (a NUL, `,`, a quote, a non-string) is
 * refused.
 */
export function bindableIface(v: unknown): v is string {
  return (
    typeof v === 'string' &&
    v.length >= 1 &&
    v.length <= 15 &&
    /^[A-Za-z0-9_.-]+$/.test(v) &&
    v !== '.' &&
    v !== '..'
  );
}

/** lower is better: unmetered, then not known, then metered */
export function meteredRank(c: Pick<UplinkCandidate, 'metered'>): number {
  return c.metered === false ? 0 : c.metered === null ? 1 : 2;
}

/** lower is better: unmetered, then not known, then metered; within each the primary first */
export function linkRank(c: Pick<UplinkCandidate, 'metered' | 'primary'>): number {
  return meteredRank(c) * 2 + (c.primary ? 0 : 1);
}

/** This network namespace's interfaces and their addresses (os.networkInterfaces()'s shape). */
export type LocalInterfaces = Partial<Record<string, { address: string }[] | undefined>>;

/**
 * The links sync may connect over, best first: connected, from NetworkManager, with a name socat may
 * be given (each name once). `view` must already be fresh and `ok` (metered.ts decides that). With
 * `local`, only links that are this process's own: an interface of that name here carrying one of the
 * addresses kitd lists for it. In a container on a bridge network (its own namespace, whose `eth0` is
 * not the host's) no link matches, and sync connects as before; with the host's network all do. Pure.
 */
export function orderUplinks(
  view: Pick<LinksView, 'source' | 'state' | 'links'> | undefined,
  local?: LocalInterfaces,
): UplinkCandidate[] {
  if (view?.source !== 'networkmanager' || view.state !== 'ok' || !Array.isArray(view.links)) return [];
  const seen = new Set<string>();
  const out: (UplinkCandidate & { at: number })[] = [];
  view.links.forEach((l, at) => {
    if (!l || typeof l !== 'object' || l.state !== 'connected' || !bindableIface(l.iface)) return;
    if (seen.has(l.iface)) return;
    if (local && !isLocalLink(l, local)) return;
    seen.add(l.iface);
    const metered = l.metered === true || l.metered === false ? l.metered : null;
    out.push({ iface: l.iface, metered, primary: l.primary === true, at });
  });
  out.sort((a, b) => linkRank(a) - linkRank(b) || a.at - b.at);
  return out.map(({ iface, metered, primary }) => ({ iface, metered, primary }));
}

/** `l` is an interface of this namespace: one of kitd's addresses for it is on the interface here. */
function isLocalLink(
  l: Pick<LinksView['links'][number], 'iface' | 'addresses'>,
  local: LocalInterfaces,
): boolean {
  const here = Object.hasOwn(local, l.iface) ? local[l.iface] : undefined;
  if (!Array.isArray(here) || !Array.isArray(l.addresses)) return false;
  const mine = new Set(here.map((a) => a?.address));
  return l.addresses.some((a) => typeof a === 'string' && mine.has(a.replace(/\/\d+$/, '')));
}

/** Where a link-bound connection goes: the hub URL's host and port, checked for socat. */
export interface HubTarget {
  tls: boolean;
  host: string;
  port: number;
}

/** URL schemes a link-bound connection speaks, and their default ports */
const SCHEMES = {
  mqtt: { plain: { 'mqtt:': 1883, 'tcp:': 1883 }, tls: { 'mqtts:': 8883, 'ssl:': 8883, 'tls:': 8883 } },
  http: { plain: { 'http:': 80 }, tls: { 'https:': 443 } },
} as const satisfies Record<string, { plain: Record<string, number>; tls: Record<string, number> }>;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;

function isLoopbackHost(h: string): boolean {
  const x = h.replace(/^\[|\]$/g, '').toLowerCase();
  return x === 'localhost' || x === '::1' || /^127\./.test(x);
}

/** A host socat reads as one: a host name, an IPv4 address or a bracketed IPv6 one. */
export function bindableHost(host: unknown): host is string {
  if (typeof host !== 'string') return false;
  if (/^\[[0-9A-Fa-f:.]+\]$/.test(host)) return net.isIPv6(host.slice(1, -1));
  return HOSTNAME.test(host);
}

/**
 * The hub URL as a link-bound connection's target, or undefined when it is not bound: a scheme other
 * than `kind`'s (a WebSocket hub URL), a hub on this machine, a host socat could misread.
 */
export function hubTarget(hubUrl: string, kind: keyof typeof SCHEMES = 'mqtt'): HubTarget | undefined {
  let u: URL;
  try {
    u = new URL(hubUrl);
  } catch {
    return undefined;
  }
  const plain: Record<string, number> = SCHEMES[kind].plain;
  const secure: Record<string, number> = SCHEMES[kind].tls;
  const isTls = Object.hasOwn(secure, u.protocol);
  if (!isTls && !Object.hasOwn(plain, u.protocol)) return undefined;
  const host = u.hostname;
  if (!host || isLoopbackHost(host) || !bindableHost(host)) return undefined;
  const port = u.port ? Number(u.port) : isTls ? secure[u.protocol]! : plain[u.protocol]!;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { tls: isTls, host, port };
}

/** socat's arguments for one connection to `t` bound to `iface` (both checked again here). */
export function socatArgs(t: HubTarget, iface: string, connectTimeoutS: number): string[] {
  if (!bindableIface(iface)) throw new Error(`interface name refused: ${JSON.stringify(iface)}`);
  if (!bindableHost(t.host)) throw new Error(`hub host refused: ${JSON.stringify(t.host)}`);
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new Error('hub port refused');
  const timeout = Math.max(1, Math.round(connectTimeoutS));
  return ['STDIO', `TCP:${t.host}:${t.port},so-bindtodevice=${iface},connect-timeout=${timeout},nodelay`];
}

/** A connection through one socat child: its stdout is what the hub sent, its stdin what we send. */
export class SocatStream extends Duplex {
  private readonly child: ChildProcess;
  private exited = false;
  private stderr = '';

  constructor(args: string[], bin = 'socat') {
    super();
    this.child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const { stdout, stdin, stderr } = this.child;
    stdout?.on('data', (d: Buffer) => {
      if (!this.push(d)) stdout.pause();
    });
    stdin?.on('error', () => undefined); // EPIPE once socat is gone: its exit says why
    stderr?.on('data', (d: Buffer) => {
      if (this.stderr.length < 2000) this.stderr += d.toString('utf8');
    });
    this.child.once('error', (err) => {
      this.exited = true;
      this.destroy(err);
    });
    this.child.once('close', (code, signal) => {
      this.exited = true;
      if (this.destroyed) return;
      this.push(null);
      const why = this.stderr.trim().split('\n').pop() ?? '';
      // SO_BINDTODEVICE refused (a kernel before 5.7 without CAP_NET_RAW): no link can be bound here
      const denied =
        /so-?bindtodevice|SO_BINDTODEVICE/i.test(this.stderr) && /not permitted/i.test(this.stderr);
      const err =
        code === 0
          ? undefined
          : Object.assign(new Error(`socat ended (${code ?? signal}): ${why.slice(0, 300)}`), {
              code: denied ? 'EPERM' : 'ELINKCLOSED',
            });
      this.destroy(err);
    });
  }

  override _read(): void {
    this.child.stdout?.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const stdin = this.child.stdin;
    // a broken pipe means socat is ending: its exit says why (ELINKCLOSED with its reason, EPERM), so
    // the write waits for it rather than failing the stream first with the symptom (EPIPE)
    const failed = (err: Error) => {
      const done = () => cb(this.destroyed ? null : err);
      if (this.exited) done();
      else this.child.once('close', done);
    };
    if (!stdin || stdin.destroyed) {
      failed(Object.assign(new Error('link closed'), { code: 'EPIPE' }));
      return;
    }
    stdin.write(chunk, (err) => (err ? failed(err) : cb(null)));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin?.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.exited) this.child.kill('SIGTERM');
    cb(err);
  }
}

/** A stream to the hub over `iface`: socat, with TLS on top for mqtts:// (the CA as for a plain one). */
export function boundStream(
  t: HubTarget,
  iface: string,
  opts: {
    ca?: Buffer | undefined;
    connectTimeoutMs: number;
    socatBin?: string;
    /** socat's own error (ENOENT: not installed; EPERM: binding refused), whatever TLS made of it */
    onLinkError?: (err: NodeJS.ErrnoException) => void;
  },
): Duplex {
  const raw = new SocatStream(socatArgs(t, iface, opts.connectTimeoutMs / 1000), opts.socatBin);
  if (opts.onLinkError) raw.once('error', opts.onLinkError);
  if (!t.tls) return raw;
  const host = t.host.replace(/^\[|\]$/g, '');
  const s = tls.connect({
    socket: raw,
    host,
    ...(net.isIP(host) === 0 ? { servername: host } : {}),
    ...(opts.ca ? { ca: opts.ca } : {}),
    rejectUnauthorized: true,
  });
  // socat's end is the connection's: its error (ENOENT, EPERM, a refused connect) becomes the TLS
  // socket's, which mqtt.js listens to; a raw stream error with no listener would end the process
  raw.on('error', (err) => s.destroy(err));
  raw.once('close', () => s.destroy());
  s.once('close', () => raw.destroy());
  return s;
}

/**
 * Which link the next connection uses, and when a connected link should give way to a better one.
 * Failed links wait before sync moves back to them by preference (30 s, doubling to 15 min while they
 * keep failing), so a link that NetworkManager calls connected but that does not reach the hub costs
 * a reconnect now and then, not one a second.
 */
export class LinkRotation {
  static readonly HOLD_MIN_MS = 30_000;
  static readonly HOLD_MAX_MS = 15 * 60_000;
  /** the link of the last attempt; null: a plain connection (the kernel's routing) */
  via: string | null = null;
  private readonly holds = new Map<string, { failures: number; until: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The first attempt, or one after a success: the best link (plain when none is known). */
  first(cands: readonly UplinkCandidate[]): string | null {
    this.via = cands[0]?.iface ?? null;
    return this.via;
  }

  /**
   * The attempt after one that failed or dropped: the next link in today's order, then a plain
   * connection (in case the binding itself is what fails), then the best again. `wrapped`: the
   * rotation went round (the caller moves to its next hub URL).
   */
  next(cands: readonly UplinkCandidate[]): { via: string | null; wrapped: boolean } {
    if (this.via !== null) this.failed(this.via);
    if (cands.length === 0) {
      this.via = null;
      return { via: null, wrapped: true };
    }
    if (this.via === null) {
      this.via = cands[0]!.iface;
      return { via: this.via, wrapped: true };
    }
    const at = cands.findIndex((c) => c.iface === this.via);
    const nxt = at === -1 ? cands[0] : cands[at + 1];
    this.via = nxt?.iface ?? null;
    return { via: this.via, wrapped: false };
  }

  /** A connection over `via` came up. */
  succeeded(): void {
    if (this.via !== null) this.holds.delete(this.via);
  }

  private failed(iface: string): void {
    const h = this.holds.get(iface);
    const failures = (h?.failures ?? 0) + 1;
    const hold = Math.min(LinkRotation.HOLD_MAX_MS, LinkRotation.HOLD_MIN_MS * 2 ** (failures - 1));
    this.holds.set(iface, { failures, until: this.now() + hold });
    if (this.holds.size > 64) this.holds.delete(this.holds.keys().next().value as string);
  }

  private held(iface: string): boolean {
    const h = this.holds.get(iface);
    return h !== undefined && this.now() < h.until;
  }

  /**
   * While connected (or connecting) over `via`: the link to move to now, or undefined to stay. Its link
   * is gone from kitd's usable links: the best one (plain when none). A link in a cheaper class
   * (unmetered over not known over metered) that has not failed lately: that one.
   */
  preferred(cands: readonly UplinkCandidate[]): { to: string | null } | undefined {
    if (this.via === null) {
      const best = cands.find((c) => !this.held(c.iface));
      return best ? { to: best.iface } : undefined;
    }
    const cur = cands.find((c) => c.iface === this.via);
    if (!cur) {
      const best = cands.find((c) => !this.held(c.iface)) ?? cands[0];
      return { to: best?.iface ?? null };
    }
    // only a link that costs less: NetworkManager moving its primary between two unmetered links is no
    // reason to drop a working connection
    const better = cands.find((c) => meteredRank(c) < meteredRank(cur) && !this.held(c.iface));
    return better ? { to: better.iface } : undefined;
  }
}

/** What one HTTP probe over one link found. */
export interface LinkProbe {
  iface: string;
  ok: boolean;
  /** the HTTP status the hub answered with (any answer proves the path) */
  status?: number;
  rttMs?: number;
  error?: string;
}

/** a probe's answer is read up to this much (the status line is all it needs) */
const PROBE_MAX_BYTES = 16 * 1024;

/**
 * GET `path` from the hub's HTTP API over `iface` only (socat, SO_BINDTODEVICE; TLS for https). Any
 * HTTP answer proves the link reaches the hub; no answer within `timeoutMs`, a refused or unbound
 * connection, or something that is not HTTP does not.
 */
export function probeOverLink(
  t: HubTarget,
  iface: string,
  path: string,
  opts: { timeoutMs: number; ca?: Buffer | undefined; socatBin?: string; now?: () => number },
): Promise<LinkProbe> {
  const now = opts.now ?? (() => performance.now());
  const t0 = now();
  return new Promise((resolve) => {
    let s: Duplex;
    try {
      s = boundStream(t, iface, {
        ca: opts.ca,
        connectTimeoutMs: opts.timeoutMs,
        ...(opts.socatBin ? { socatBin: opts.socatBin } : {}),
      });
    } catch (err) {
      resolve({ iface, ok: false, error: (err as Error).message });
      return;
    }
    let got = Buffer.alloc(0);
    let done = false;
    const finish = (r: Omit<LinkProbe, 'iface'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ iface, ...r });
    };
    const timer = setTimeout(
      () => finish({ ok: false, error: `no answer within ${opts.timeoutMs} ms` }),
      opts.timeoutMs,
    );
    const judge = () => {
      const m = /^HTTP\/1\.[01] ([1-5][0-9]{2})[ \r]/.exec(got.subarray(0, 64).toString('latin1'));
      if (m) finish({ ok: true, status: Number(m[1]), rttMs: Math.round((now() - t0) * 10) / 10 });
      else if (got.length >= 64 || got.includes(10)) finish({ ok: false, error: 'the answer is not HTTP' });
    };
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]).subarray(0, PROBE_MAX_BYTES);
      judge();
    });
    s.once('error', (err: Error) => finish({ ok: false, error: err.message.slice(0, 300) }));
    s.once('close', () => {
      judge();
      finish({ ok: false, error: 'closed without an answer' });
    });
    const hostHeader = t.port === (t.tls ? 443 : 80) ? t.host : `${t.host}:${t.port}`;
    s.write(
      `GET ${path} HTTP/1.0\r\nHost: ${hostHeader}\r\nUser-Agent: popkit-preflight\r\nConnection: close\r\n\r\n`,
    );
  });
}
