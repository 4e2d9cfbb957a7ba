// The real serialport binding over socat pseudo-terminal pairs: VE.Direct and Renogy drivers on one
// end, device simulators on the other; killing socat is the unplug, restarting it the replug.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { RenogySource } from '../../hardware/drivers/renogy-rover.ts';
import { VeDirectSource } from '../../hardware/drivers/vedirect.ts';
import type { PowerReading } from '../../hardware/power/reading.ts';
import { ReconnectingLink } from '../../hardware/serial/reconnecting-link.ts';
import { SerialPortLink } from '../../hardware/serial/serialport-link.ts';
import { BatteryModel } from '../../hardware/sim/battery-model.ts';
import { RenogySimulator } from '../../hardware/sim/modbus-sims.ts';
import { type PtyPair, startPtyPair } from '../../hardware/sim/pty-pair.ts';
import { VeDirectSimulator } from '../../hardware/sim/vedirect-sim.ts';
import { ptyHostRoot, until } from '../support/pty.ts';

const run = promisify(execFile);
const { root, env, pairs } = ptyHostRoot('popkit-pty');

/** A by-id style path under the fake host root, as the driver is configured on a board. */
function byId(name: string): { configured: string; onDisk: string } {
  const configured = `/dev/serial/by-id/${name}`;
  return { configured, onDisk: path.join(root, configured) };
}

async function plug(hostOnDisk: string, deviceOnDisk: string): Promise<PtyPair> {
  const p = await startPtyPair(hostOnDisk, deviceOnDisk);
  pairs.push(p);
  return p;
}

const battery = () => {
  const b = new BatteryModel({ socPct: 58, loadW: 14, startAtMs: Date.UTC(2024, 5, 1, 12) });
  b.setSolarW(110);
  return b;
};

describe('VE.Direct over a pty with the real serialport binding', () => {
  test('reads, goes stale on unplug, recovers on replug', async () => {
    const host = byId('usb-VictronEnergy_BV_VE_Direct_cable_VE1234-if00-port0');
    const devicePath = path.join(root, 'sim', 'vedirect-device');
    let pty = await plug(host.onDisk, devicePath);
    const b = battery();
    const deviceLink = new ReconnectingLink(
      devicePath,
      () => new SerialPortLink({ path: devicePath, baudRate: 19200 }, env),
      {
        initialDelayMs: 50,
        maxDelayMs: 200,
      },
    );
    const device = new VeDirectSimulator({ link: deviceLink, battery: b, periodMs: 200 });
    await device.start();
    const link = new ReconnectingLink(
      host.configured,
      () => new SerialPortLink({ path: host.configured, baudRate: 19200 }, env),
      {
        initialDelayMs: 50,
        maxDelayMs: 400,
      },
    );
    const source = new VeDirectSource({ device: 'mppt', link, periodMs: 200 });
    const seen: PowerReading[] = [];
    source.onReading((r) => seen.push(r));
    await source.start();
    try {
      await until('a reading', () => source.latest()?.stale === false);
      const r = source.latest()!;
      assert.ok(Math.abs(r.batteryV! - b.snapshot().batteryV) < 0.002);
      assert.equal(r.solarW, 110);
      assert.equal(r.chargeState, 'bulk');
      assert.equal(r.extras?.['serial'], 'HQ2242SIMUL');

      // HEX frames and a ":" checksum over the real port change nothing.
      device.inject({ hexAfterChecksum: true, colonChecksum: true });
      const before = source.parser.stats.accepted;
      await until('more blocks', () => source.parser.stats.accepted >= before + 3);
      assert.equal(source.parser.stats.rejectedChecksum, 0);
      device.clearFaults();

      await pty.kill(); // unplug
      await until('stale after unplug', () => source.latest()?.stale === true);
      assert.match(source.latest()!.staleReason!, /serial link lost|cannot open|no valid VE.Direct block/);
      assert.equal(link.isOpen, false);

      pty = await plug(host.onDisk, devicePath); // replug: new /dev/pts numbers behind the same paths
      await until('fresh reading after replug', () => source.latest()?.stale === false, 10_000);
      assert.ok(seen.some((x) => x.stale));
    } finally {
      await source.stop();
      await device.stop();
      await deviceLink.close();
      await pty.kill();
    }
  });

  test('popkit power read --driver vedirect --port <by-id> --once --json', async () => {
    const host = byId('usb-VictronEnergy_BV_VE_Direct_cable_CLI-if00-port0');
    const devicePath = path.join(root, 'sim', 'vedirect-cli-device');
    const pty = await plug(host.onDisk, devicePath);
    const deviceLink = new SerialPortLink({ path: devicePath, baudRate: 19200 }, env);
    const device = new VeDirectSimulator({
      link: deviceLink,
      battery: battery(),
      periodMs: 250,
      kind: 'bmv',
    });
    await device.start();
    try {
      const { stdout } = await run(
        process.execPath,
        [
          'bin/popkit.js',
          'power',
          'read',
          '--driver',
          'vedirect',
          '--port',
          host.configured,
          '--once',
          '--json',
        ],
        { env: { ...env, NODE_ENV: 'test' }, cwd: path.join(import.meta.dirname, '..', '..') },
      );
      const r = JSON.parse(stdout.trim()) as PowerReading;
      assert.equal(r.driver, 'vedirect');
      assert.equal(r.stale, false);
      assert.equal(r.socPct, 58);
      assert.ok(r.batteryV! > 12 && r.batteryV! < 14.5);
    } finally {
      await device.stop();
      await deviceLink.close();
      await pty.kill();
    }
  });
});

describe('Renogy Rover over a pty with the real serialport binding', () => {
  test('polls, switches the load, goes stale on unplug, recovers on replug', async () => {
    const host = byId('usb-Prolific_Technology_Inc._USB-Serial_Controller-if00-port0');
    const devicePath = path.join(root, 'sim', 'renogy-device');
    let pty = await plug(host.onDisk, devicePath);
    const b = battery();
    const deviceLink = new ReconnectingLink(
      devicePath,
      () => new SerialPortLink({ path: devicePath, baudRate: 9600 }, env),
      {
        initialDelayMs: 50,
        maxDelayMs: 200,
      },
    );
    const device = new RenogySimulator({ link: deviceLink, battery: b, unitId: 255 });
    await device.start();
    const link = new ReconnectingLink(
      host.configured,
      () => new SerialPortLink({ path: host.configured, baudRate: 9600 }, env),
      {
        initialDelayMs: 50,
        maxDelayMs: 400,
      },
    );
    const source = new RenogySource({ device: 'rover', link, unitId: 'scan', pollMs: 150, timeoutMs: 100 });
    await source.start();
    try {
      await until('a reading (after discovering unit 255)', () => source.latest()?.stale === false);
      const r = source.latest()!;
      assert.equal(r.extras?.['unitId'], 255);
      assert.equal(r.socPct, 58);
      assert.equal(r.solarW, 110);
      assert.equal(r.loadW, 14);
      await source.setLoad(false);
      assert.equal(b.snapshot().loadOn, false);
      await until('load off reported', () => source.latest()?.extras?.['loadOn'] === false);
      await source.setLoad(true);

      await pty.kill();
      await until('stale after unplug', () => source.latest()?.stale === true);
      pty = await plug(host.onDisk, devicePath);
      await until('fresh reading after replug', () => source.latest()?.stale === false, 10_000);
      assert.equal(source.latest()!.extras?.['loadOn'], true);
    } finally {
      await source.stop();
      await device.stop();
      await deviceLink.close();
      await pty.kill();
    }
  });
});

describe('popkit power read streaming', () => {
  test('--sim --json streams readings until SIGINT, then exits 0', async () => {
    const child = spawn(
      process.execPath,
      ['bin/popkit.js', 'power', 'read', '--driver', 'max17048', '--sim', '--json', '--interval', '100'],
      {
        env: { ...process.env, NODE_ENV: 'test' },
        cwd: path.join(import.meta.dirname, '..', '..'),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until('three readings', () => out.split('\n').filter(Boolean).length >= 3, 15_000);
    } finally {
      child.kill('SIGINT');
    }
    assert.equal(await exited, 0);
    const lines = out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as PowerReading);
    // the simulated battery starts at 80 % and moves while the command runs (load drains it, the sun by the
    // time of day charges it); MAX17048's 1/256 % steps show that within a reading or two
    assert.ok(lines.length >= 3);
    for (const r of lines) {
      assert.equal(r.driver, 'max17048');
      assert.equal(r.stale, false);
      assert.ok(r.socPct !== undefined && Math.abs(r.socPct - 80) < 1, `socPct ${r.socPct}`);
    }
  });
});
