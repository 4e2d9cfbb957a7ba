// The kit's network links, for kitd's status and its update lock (issues #14, #17). On balenaOS the
// host's NetworkManager manages the links (venue Ethernet or Wi-Fi, a cellular modem); kitd reads
// them over the host's system D-Bus (docker-compose.yml: `io.balena.features.dbus`,
// DBUS_SYSTEM_BUS_ADDRESS). On the sim board they come from a JSON file a vendor can edit.
//
// Polled, not signal-driven: a reading is a handful of calls every few seconds (GetAll on the manager,
// on each device, on the primary connection, the IPv4 config of connected devices), it heals by itself
// after NetworkManager or the bus restarts (no subscription to lose, no signal missed between a
// subscription and the first read), and the update lock, the only thing acting on it, needs seconds,
// not milliseconds. Every property is checked against core/contracts/links.ts as it arrives; a reading
// that cannot be had (no bus, no NetworkManager, a call that hangs) makes the view `unavailable` with a
// code and a reason. Nothing here throws into kitd.

import type { EventEmitter } from 'node:events';
import fs from 'node:fs';
import * as dbus from '@jellybrick/dbus-next';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import {
  LINK_ADDRESSES_MAX,
  LINK_PROBLEMS_MAX,
  LINKS_MAX,
  type Link,
  type LinkCode,
  type LinkSource,
  type LinksView,
  linkStateFromNm,
  linkTypeFromNm,
  meteredFromNm,
  NM_DEVICE_STATE_UNMANAGED,
  NM_DEVICE_TYPE_LOOPBACK,
  NmActiveProps,
  NmAddressData,
  NmDeviceProps,
  NmManagerProps,
  simLinksFile,
} from '../core/contracts/links.ts';
import { moduleLogger } from '../core/logger.ts';
import { type PollLoop, pollLoop } from '../core/poll-loop.ts';

/** One reading of the links, or why there is none. */
export type LinkReading =
  | { ok: true; links: Link[]; primaryMetered: boolean | null; problems: string[] }
  | { ok: false; code: LinkCode; reason: string };

export interface LinkReader {
  readonly source: Exclude<LinkSource, 'off'>;
  read(): Promise<LinkReading>;
  close(): Promise<void>;
}

/** A coded failure of a reader; LinkMonitor turns it into the `unavailable` view. */
export class LinkReadError extends Error {
  constructor(
    readonly code: LinkCode,
    message: string,
  ) {
    super(message);
  }
}

const clip = (s: string, n = 200) => (s.length > n ? `${s.slice(0, n)}…` : s);
/** a value from outside, shown in a problem line: JSON, clipped, control characters escaped by JSON */
const shown = (v: unknown) => {
  let s: string;
  try {
    s = typeof v === 'bigint' ? `${v}n` : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return clip(s, 60);
};

// --- NetworkManager over D-Bus -------------------------------------------------------------------
const NM = 'org.freedesktop.NetworkManager';
const NM_PATH = '/org/freedesktop/NetworkManager';
const DEVICE_IFACE = 'org.freedesktop.NetworkManager.Device';
const ACTIVE_IFACE = 'org.freedesktop.NetworkManager.Connection.Active';
const IP4_IFACE = 'org.freedesktop.NetworkManager.IP4Config';
const PROPS = 'org.freedesktop.DBus.Properties';

type Checker = { Check(v: unknown): boolean };
const compiled = new Map<TSchema, Checker>();
function checker(schema: TSchema): Checker {
  let c = compiled.get(schema);
  if (!c) {
    c = TypeCompiler.Compile(schema);
    compiled.set(schema, c);
  }
  return c;
}

/**
 * Properties from a GetAll answer (`a{sv}`), each checked against its declared shape. An absent one is
 * undefined; one of the wrong shape is undefined too, with a problem line.
 */
function pickProps<S extends Record<string, TSchema>>(
  raw: unknown,
  shapes: S,
  where: string,
  problems: string[],
): { [K in keyof S]?: unknown } {
  const out: Record<string, unknown> = {};
  if (typeof raw !== 'object' || raw === null) {
    problems.push(`${where}: properties are not a dictionary`);
    return out as { [K in keyof S]?: unknown };
  }
  for (const [name, schema] of Object.entries(shapes)) {
    if (!Object.hasOwn(raw, name)) continue;
    const v = unwrap((raw as Record<string, unknown>)[name]);
    if (checker(schema).Check(v)) out[name] = v;
    else problems.push(`${where}: ${name} refused (${shown(v)})`);
  }
  return out as { [K in keyof S]?: unknown };
}

/** D-Bus variants come as `Variant {signature, value}`; 64-bit integers as bigint. */
function unwrap(v: unknown): unknown {
  if (v instanceof dbus.Variant) return unwrap(v.value);
  if (Array.isArray(v)) return v.map(unwrap);
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) {
    const o: Record<string, unknown> = Object.create(null);
    for (const [k, x] of Object.entries(v)) o[k] = unwrap(x);
    return o;
  }
  return v;
}

export interface NmReaderOptions {
  /** a D-Bus address, `unix:path=/host/run/dbus/system_bus_socket` */
  address: string;
  /** one reading must finish within this, or the connection is dropped and the view unavailable */
  timeoutMs?: number;
}

export class NetworkManagerReader implements LinkReader {
  readonly source = 'networkmanager' as const;
  private bus: dbus.MessageBus | undefined;
  /** rejects when the current connection fails or ends: calls in flight on it never answer */
  private failed: Promise<never> | undefined;
  private readonly log = moduleLogger('kitd');
  private readonly timeoutMs: number;

  constructor(private readonly opts: NmReaderOptions) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
  }

  async read(): Promise<LinkReading> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new LinkReadError('LINKS_TIMEOUT', `no answer on the system bus within ${this.timeoutMs} ms`),
          ),
        this.timeoutMs,
      );
    });
    try {
      const reading = this.readOnce();
      // a reading that lost the race must not become an unhandled rejection
      reading.catch(() => undefined);
      return await Promise.race([reading, timeout, ...(this.failed ? [this.failed] : [])]);
    } catch (err) {
      // whatever went wrong, the next reading starts on a fresh connection
      this.dropBus();
      if (err instanceof LinkReadError) return { ok: false, code: err.code, reason: err.message };
      return { ok: false, ...classify(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.dropBus();
  }

  private connect(): dbus.MessageBus {
    if (this.bus) return this.bus;
    // sessionBus() is the library's "connect to this address" (systemBus() would read the environment)
    const bus = dbus.sessionBus({ busAddress: this.opts.address });
    let fail: (err: LinkReadError) => void = () => undefined;
    const failed = new Promise<never>((_, reject) => {
      fail = reject;
    });
    failed.catch(() => undefined);
    // a bus that is missing or goes away emits 'error' on the connection: without a listener that
    // would be an uncaught exception in kitd
    // (the library emits 'error' on the bus though its event types do not declare it)
    (bus as unknown as EventEmitter).on('error', (err: unknown) => {
      this.log.debug({ err }, 'system bus error');
      fail(new LinkReadError('LINKS_BUS_UNAVAILABLE', `system bus unreachable: ${clip(errText(err), 200)}`));
      if (this.bus === bus) this.dropBus();
    });
    // the bus closing its end (dbus-daemon stopped) is not forwarded by MessageBus; its connection
    // (the pinned library's private `_connection`) says so
    const conn = (bus as unknown as { _connection?: { on?(e: string, f: () => void): void } })._connection;
    conn?.on?.('end', () => {
      fail(new LinkReadError('LINKS_BUS_UNAVAILABLE', 'system bus closed the connection'));
      if (this.bus === bus) this.dropBus();
    });
    this.bus = bus;
    this.failed = failed;
    return bus;
  }

  private dropBus(): void {
    const bus = this.bus;
    this.bus = undefined;
    this.failed = undefined;
    if (!bus) return;
    try {
      bus.disconnect();
    } catch {
      // already gone
    }
  }

  private async call(path: string, iface: string, member: string, signature = '', body: unknown[] = []) {
    const bus = this.connect();
    const reply = await bus.call(
      new dbus.Message({ destination: NM, path, interface: iface, member, signature, body }),
    );
    return reply?.body ?? [];
  }

  private async getAll(path: string, iface: string): Promise<unknown> {
    const body = await this.call(path, PROPS, 'GetAll', 's', [iface]);
    return body[0];
  }

  private async readOnce(): Promise<LinkReading> {
    const problems: string[] = [];
    const mgr = pickProps(await this.getAll(NM_PATH, NM), NmManagerProps, 'NetworkManager', problems);
    let devices = mgr.Devices as string[] | undefined;
    if (!devices) {
      const body = await this.call(NM_PATH, NM, 'GetDevices');
      const d = unwrap(body[0]);
      if (!checker(NmManagerProps.Devices).Check(d))
        throw new LinkReadError('LINKS_NM_INVALID', `GetDevices answered ${shown(d)}`);
      devices = d as string[];
    }
    const primaryPath = mgr.PrimaryConnection as string | undefined;
    const primaryDevices = new Set<string>();
    if (primaryPath && primaryPath !== '/') {
      try {
        const a = pickProps(
          await this.getAll(primaryPath, ACTIVE_IFACE),
          NmActiveProps,
          'primary connection',
          problems,
        );
        for (const d of (a.Devices as string[] | undefined) ?? []) primaryDevices.add(d);
      } catch (err) {
        // the primary connection went away between the two calls: no primary this reading
        problems.push(`primary connection: ${clip(errText(err), 120)}`);
      }
    }

    const links: Link[] = [];
    for (const path of devices) {
      if (links.length >= LINKS_MAX) {
        problems.push(`more than ${LINKS_MAX} links: the rest are not listed`);
        break;
      }
      let raw: unknown;
      try {
        raw = await this.getAll(path, DEVICE_IFACE);
      } catch (err) {
        if (isBusGone(err)) throw err;
        // a device removed between GetDevices and its GetAll
        problems.push(`${path}: ${clip(errText(err), 120)}`);
        continue;
      }
      const dev = pickProps(raw, NmDeviceProps, path, problems);
      const state = dev.State as number | undefined;
      const type = dev.DeviceType as number | undefined;
      if (state === NM_DEVICE_STATE_UNMANAGED || type === NM_DEVICE_TYPE_LOOPBACK) continue;
      if (dev.Interface === undefined) {
        problems.push(`${path}: left out, no valid interface name`);
        continue;
      }
      const link: Link = {
        iface: dev.Interface as string,
        type: type === undefined ? 'other' : linkTypeFromNm(type),
        state: state === undefined ? 'unavailable' : linkStateFromNm(state),
        metered: dev.Metered === undefined ? null : meteredFromNm(dev.Metered as number),
        primary: primaryDevices.has(path),
      };
      const ip4 = dev.Ip4Config as string | undefined;
      if (link.state === 'connected' && ip4 && ip4 !== '/') {
        const addresses = await this.addresses(ip4, link.iface, problems);
        if (addresses.length > 0) link.addresses = addresses;
      }
      links.push(link);
    }
    const primary = links.find((l) => l.primary);
    const primaryMetered =
      mgr.Metered !== undefined ? meteredFromNm(mgr.Metered as number) : (primary?.metered ?? null);
    return {
      ok: true,
      links,
      primaryMetered,
      problems: problems.slice(0, LINK_PROBLEMS_MAX).map((p) => clip(p, 300)),
    };
  }

  private async addresses(ip4: string, iface: string, problems: string[]): Promise<string[]> {
    let raw: unknown;
    try {
      raw = await this.getAll(ip4, IP4_IFACE);
    } catch (err) {
      if (isBusGone(err)) throw err;
      problems.push(`${iface} IPv4 config: ${clip(errText(err), 120)}`);
      return [];
    }
    const p = pickProps(raw, { AddressData: NmAddressData }, `${iface} IPv4 config`, problems);
    const data = (p.AddressData ?? []) as Array<{ address: string; prefix: number }>;
    return data.slice(0, LINK_ADDRESSES_MAX).map((a) => `${a.address}/${a.prefix}`);
  }
}

function errText(err: unknown): string {
  if (err instanceof Error) return `${(err as { type?: string }).type ?? err.name}: ${err.message}`;
  return String(err);
}

function isBusGone(err: unknown): boolean {
  const type = (err as { type?: unknown }).type;
  if (typeof type === 'string')
    return (
      type === 'org.freedesktop.DBus.Error.ServiceUnknown' || type === 'org.freedesktop.DBus.Error.NoReply'
    );
  return true; // not a D-Bus error reply: the connection itself failed
}

/** A failed reading, by what failed: the bus itself, or NetworkManager on it. */
function classify(err: unknown): { code: LinkCode; reason: string } {
  const type = (err as { type?: unknown }).type;
  const text = clip(errText(err), 200);
  if (
    type === 'org.freedesktop.DBus.Error.ServiceUnknown' ||
    type === 'org.freedesktop.DBus.Error.NameHasNoOwner'
  )
    return { code: 'LINKS_NM_ABSENT', reason: `NetworkManager is not on the system bus (${text})` };
  if (typeof type === 'string')
    return { code: 'LINKS_NM_INVALID', reason: `NetworkManager answered ${text}` };
  return { code: 'LINKS_BUS_UNAVAILABLE', reason: `system bus unreachable: ${text}` };
}

// --- the sim board --------------------------------------------------------------------------------
/** What the sim board shows when its links file does not exist: venue Ethernet up, the modem idle. */
export const SIM_DEFAULT_LINKS: Link[] = [
  {
    iface: 'eth0',
    type: 'ethernet',
    state: 'connected',
    metered: false,
    primary: true,
    addresses: ['192.0.2.20/24'],
  },
  { iface: 'wwan0', type: 'modem', state: 'disconnected', metered: true, primary: false },
];

/** The sim board's links: the file's contents (re-read at every poll, so an edit shows), or the default. */
export class SimLinkReader implements LinkReader {
  readonly source = 'sim' as const;
  constructor(private readonly file: string) {}

  async read(): Promise<LinkReading> {
    let raw: string;
    try {
      const st = fs.statSync(this.file);
      if (st.size > 64 * 1024)
        return { ok: false, code: 'LINKS_SIM_INVALID', reason: `${this.file} is larger than 64 KiB` };
      raw = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        return { ok: true, links: SIM_DEFAULT_LINKS, primaryMetered: false, problems: [] };
      return {
        ok: false,
        code: 'LINKS_SIM_INVALID',
        reason: `cannot read ${this.file}: ${clip(errText(err))}`,
      };
    }
    const parsed = simLinksFile.parse(raw);
    if (!parsed) {
      let why = 'not JSON';
      try {
        why = simLinksFile.errors(JSON.parse(raw), 3).join('; ');
      } catch {
        // stays "not JSON"
      }
      return { ok: false, code: 'LINKS_SIM_INVALID', reason: clip(`${this.file}: ${why}`, 300) };
    }
    if (parsed.links.filter((l) => l.primary).length > 1)
      return { ok: false, code: 'LINKS_SIM_INVALID', reason: `${this.file}: more than one primary link` };
    const primary = parsed.links.find((l) => l.primary);
    const primaryMetered =
      parsed.primaryMetered !== undefined ? parsed.primaryMetered : (primary?.metered ?? null);
    return { ok: true, links: parsed.links, primaryMetered, problems: [] };
  }

  async close(): Promise<void> {}
}

// --- the monitor ----------------------------------------------------------------------------------
export interface LinkMonitorOptions {
  everyMs: number;
  /**
   * After the source stops answering, a metered verdict still holds the update lock this long: a
   * NetworkManager restart must not open a window for a download over the modem.
   */
  graceMs: number;
  now(): number;
}

/** Polls a reader and keeps the view kitd shows; `meteredHold()` is what the update control asks. */
export class LinkMonitor {
  private readonly log = moduleLogger('kitd');
  private loop: PollLoop | undefined;
  private current: LinksView;
  private lastOk: { at: number; primaryMetered: boolean | null } | undefined;

  constructor(
    private readonly reader: LinkReader | undefined,
    private readonly opts: LinkMonitorOptions,
  ) {
    this.current = {
      source: reader?.source ?? 'off',
      state: reader ? 'unavailable' : 'off',
      ...(reader ? { reason: 'not read yet' } : {}),
      links: [],
      primaryMetered: null,
      checkedAt: null,
      lastOkAt: null,
      problems: [],
    };
  }

  start(): void {
    if (!this.reader || this.loop) return;
    const onError = (err: unknown) => this.log.warn({ err }, 'link reading failed');
    this.loop = pollLoop(this.opts.everyMs, () => this.poll(), { immediate: true, unref: true, onError });
  }

  async stop(): Promise<void> {
    this.loop?.stop();
    this.loop = undefined;
    await this.reader?.close().catch(() => undefined);
  }

  /** One reading now; public so tests and `popkit status` need not wait for the loop. */
  async poll(): Promise<LinksView> {
    if (!this.reader) return this.current;
    let r: LinkReading;
    try {
      r = await this.reader.read();
    } catch (err) {
      r = { ok: false, code: 'LINKS_BUS_UNAVAILABLE', reason: clip(errText(err)) };
    }
    const now = this.opts.now();
    const at = new Date(now).toISOString();
    const was = this.current;
    if (r.ok) {
      this.lastOk = { at: now, primaryMetered: r.primaryMetered };
      this.current = {
        source: this.reader.source,
        state: 'ok',
        links: r.links,
        primaryMetered: r.primaryMetered,
        checkedAt: at,
        lastOkAt: at,
        problems: r.problems,
      };
      if (
        was.state !== 'ok' ||
        was.primaryMetered !== r.primaryMetered ||
        primaryOf(was) !== primaryOf(this.current)
      )
        this.log.info({ primary: primaryOf(this.current), primaryMetered: r.primaryMetered }, 'links read');
    } else {
      this.current = {
        source: this.reader.source,
        state: 'unavailable',
        code: r.code,
        reason: r.reason,
        links: [],
        primaryMetered: null,
        checkedAt: at,
        lastOkAt: was.lastOkAt,
        problems: [],
      };
      if (was.state !== 'unavailable' || was.code !== r.code)
        this.log.warn({ code: r.code, reason: r.reason }, 'links unavailable');
    }
    return this.current;
  }

  view(): LinksView {
    return this.current;
  }

  /** The primary link is metered, or was at the last good reading less than `graceMs` ago. */
  meteredHold(): boolean {
    return meteredHold(this.current, this.lastOk, this.opts.now(), this.opts.graceMs);
  }
}

function primaryOf(v: LinksView): string | null {
  return v.links.find((l) => l.primary)?.iface ?? null;
}

/** The rule of `LinkMonitor.meteredHold`, pure for its unit test. */
export function meteredHold(
  view: Pick<LinksView, 'state' | 'primaryMetered'>,
  lastOk: { at: number; primaryMetered: boolean | null } | undefined,
  now: number,
  graceMs: number,
): boolean {
  if (view.state === 'ok') return view.primaryMetered === true;
  if (view.state === 'off' || !lastOk) return false;
  return lastOk.primaryMetered === true && now - lastOk.at < graceMs;
}

// --- configuration --------------------------------------------------------------------------------
/** balena's mount of the host's system bus with the `io.balena.features.dbus` label */
export const BALENA_HOST_DBUS_SOCKET = '/host/run/dbus/system_bus_socket';
export const SYSTEM_DBUS_SOCKET = '/run/dbus/system_bus_socket';

export interface LinkSettings {
  mode: 'auto' | LinkSource;
  busAddress?: string | undefined;
  /** the sim board's links file; firmware/main.ts defaults it to <data>/links-sim.json */
  simFile?: string;
  everyMs: number;
  graceMs: number;
}

/** The system bus kitd reads: DBUS_SYSTEM_BUS_ADDRESS, else balena's host socket when present, else the usual one. */
export function systemBusAddress(
  given: string | undefined,
  exists: (p: string) => boolean = fs.existsSync,
): string {
  if (given) return given;
  return `unix:path=${exists(BALENA_HOST_DBUS_SOCKET) ? BALENA_HOST_DBUS_SOCKET : SYSTEM_DBUS_SOCKET}`;
}

/**
 * POPKIT_LINKS=auto: the sim board's links file on the sim board; NetworkManager on balena (without
 * the dbus label the view then says the bus is unreachable, which is the fix to make) or wherever a
 * system bus is given or its socket exists; else off.
 */
export function resolveLinkSource(
  s: Pick<LinkSettings, 'mode' | 'busAddress'>,
  ctx: { sim: boolean; balena: boolean; exists?: (p: string) => boolean },
): LinkSource {
  if (s.mode !== 'auto') return s.mode;
  if (ctx.sim) return 'sim';
  const exists = ctx.exists ?? fs.existsSync;
  if (ctx.balena || s.busAddress || exists(BALENA_HOST_DBUS_SOCKET) || exists(SYSTEM_DBUS_SOCKET))
    return 'networkmanager';
  return 'off';
}

export function createLinkMonitor(
  s: LinkSettings,
  ctx: { sim: boolean; balena: boolean; now(): number },
): LinkMonitor {
  const source = resolveLinkSource(s, ctx);
  const reader =
    source === 'networkmanager'
      ? new NetworkManagerReader({ address: systemBusAddress(s.busAddress) })
      : source === 'sim'
        ? new SimLinkReader(s.simFile ?? 'links-sim.json')
        : undefined;
  return new LinkMonitor(reader, { everyMs: s.everyMs, graceMs: s.graceMs, now: ctx.now });
}
