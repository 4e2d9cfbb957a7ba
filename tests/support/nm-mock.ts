// A stand-in for the host's system bus and its NetworkManager, speaking the real protocol: a private
// dbus-daemon on a socket in a temp dir, and python3-dbusmock's `networkmanager` template on it
// (dbusmock puts a template whose SYSTEM_BUS flag is set on the bus named by DBUS_SYSTEM_BUS_ADDRESS).
// The test drives the mock through its org.freedesktop.DBus.Mock methods over the same bus. Both
// processes are killed by stop(), and at the latest when the test process exits.
import { type ChildProcess, spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import path from 'node:path';
import * as dbus from '@jellybrick/dbus-next';
import { waitFor } from './hub-link.ts';
import { makeTempDir } from './tmp.ts';

export const NM = 'org.freedesktop.NetworkManager';
export const NM_PATH = '/org/freedesktop/NetworkManager';
export const MOCK_MAIN = '/org/freedesktop';
export const DEVICE_IFACE = 'org.freedesktop.NetworkManager.Device';
export const ACTIVE_IFACE = 'org.freedesktop.NetworkManager.Connection.Active';
export const IP4_IFACE = 'org.freedesktop.NetworkManager.IP4Config';
const MOCK_IFACE = 'org.freedesktop.DBus.Mock';

/** Debian's python3-dbusmock is installed for the system Python (setup.sh), not for a pyenv one. */
const PYTHON = '/usr/bin/python3';

const alive = new Set<ChildProcess>();
let hooked = false;
function track(p: ChildProcess): ChildProcess {
  alive.add(p);
  p.once('exit', () => alive.delete(p));
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of alive) c.kill('SIGKILL');
    });
  }
  return p;
}

async function stopChild(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}

export const v = (signature: string, value: unknown) => new dbus.Variant(signature, value);

export interface NmMock {
  /** the private bus, `unix:path=…` */
  address: string;
  dir: string;
  /** a call to the mock (the NetworkManager name) over the private bus */
  call(path: string, iface: string, member: string, signature?: string, body?: unknown[]): Promise<unknown[]>;
  /** org.freedesktop.DBus.Mock.<member> on object `path` */
  mock(path: string, member: string, signature: string, body: unknown[]): Promise<unknown[]>;
  /** a device object of our own making (the template has no modem), listed in the manager's Devices */
  addDevice(name: string, props: Record<string, dbus.Variant>): Promise<string>;
  /** Properties.Set on an object of the mock (emits PropertiesChanged) */
  set(path: string, iface: string, name: string, value: dbus.Variant): Promise<void>;
  /** stop NetworkManager (the mock) only; the bus stays */
  stopNm(): Promise<void>;
  /** stop the bus (and with it the mock) */
  stopBus(): Promise<void>;
  stop(): Promise<void>;
}

export async function startNmMock(): Promise<NmMock> {
  const dir = makeTempDir('nm-mock-');
  const address = `unix:path=${path.join(dir, 'system_bus_socket')}`;
  // the session configuration: a bus that lets its (one) user own any name, on our socket only
  const daemon = track(
    spawn('dbus-daemon', ['--session', '--nofork', '--print-address', `--address=${address}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let printed = '';
  daemon.stdout?.on('data', (b: Buffer) => {
    printed += b.toString();
  });
  let daemonErr = '';
  daemon.stderr?.on('data', (b: Buffer) => {
    daemonErr += b.toString();
  });
  await waitFor(() => printed.includes('unix:') || daemon.exitCode !== null, 10_000, 'dbus-daemon address');
  if (daemon.exitCode !== null) throw new Error(`dbus-daemon exited: ${daemonErr}`);

  let nm: ChildProcess | undefined;
  let nmErr = '';
  const client = dbus.sessionBus({ busAddress: address });
  (client as unknown as EventEmitter).on('error', () => undefined);
  const call = async (p: string, iface: string, member: string, signature = '', body: unknown[] = []) => {
    const reply = await client.call(
      new dbus.Message({ destination: NM, path: p, interface: iface, member, signature, body }),
    );
    return reply?.body ?? [];
  };
  const startNm = async () => {
    nmErr = '';
    nm = track(
      spawn(PYTHON, ['-m', 'dbusmock', '--template', 'networkmanager'], {
        env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: address, PYTHONDONTWRITEBYTECODE: '1' },
        stdio: ['ignore', 'ignore', 'pipe'],
      }),
    );
    nm.stderr?.on('data', (b: Buffer) => {
      nmErr += b.toString();
    });
    let up = false;
    await waitFor(
      async () => {
        if (nm?.exitCode !== null) throw new Error(`dbusmock exited: ${nmErr}`);
        try {
          await call(NM_PATH, 'org.freedesktop.DBus.Properties', 'GetAll', 's', [NM]);
          up = true;
        } catch {
          up = false;
        }
        return up;
      },
      15_000,
      'NetworkManager mock on the bus',
    );
  };
  await startNm();

  const mock = (p: string, member: string, signature: string, body: unknown[]) =>
    call(p, MOCK_IFACE, member, signature, body);
  const set = async (p: string, iface: string, name: string, value: dbus.Variant) => {
    await call(p, 'org.freedesktop.DBus.Properties', 'Set', 'ssv', [iface, name, value]);
  };
  const devicePaths = async (): Promise<string[]> => {
    const [all] = (await call(NM_PATH, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [NM, 'Devices'])) as [
      dbus.Variant<string[]>,
    ];
    return all.value;
  };

  return {
    address,
    dir,
    call,
    mock,
    set,
    async addDevice(name, props) {
      const p = `${NM_PATH}/Devices/${name}`;
      await mock(MOCK_MAIN, 'AddObject', 'ssa{sv}a(ssss)', [p, DEVICE_IFACE, props, []]);
      await set(NM_PATH, NM, 'Devices', v('ao', [...(await devicePaths()), p]));
      return p;
    },
    async stopNm() {
      await stopChild(nm);
    },
    async stopBus() {
      client.disconnect();
      await stopChild(daemon);
      await stopChild(nm);
    },
    async stop() {
      try {
        client.disconnect();
      } catch {
        // already gone
      }
      await stopChild(nm);
      await stopChild(daemon);
    },
  };
}
