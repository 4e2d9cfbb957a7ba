// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// EPEver Tracer end to end over a socat pty pair with the real serialport binding: the driver polls
// at the Tracer's 115200 baud, the simulated controller answers on the other end; killing socat is
// the unplug, restarting it on the same paths the replug.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { EPEVER_BAUD, EpeverSource } from '../../hardware/drivers/epever-tracer.ts';
import { ReconnectingLink } from '../../hardware/serial/reconnecting-link.ts';
import { SerialPortLink } from '../../hardware/serial/serialport-link.ts';
import { BatteryModel } from '../../hardware/sim/battery-model.ts';
import { EpeverSimulator } from '../../hardware/sim/modbus-sims.ts';
import { type PtyPair, startPtyPair } from '../../hardware/sim/pty-pair.ts';
import { ptyHostRoot, until } from '../support/pty.ts';

const { root, env, pairs } = ptyHostRoot('popkit-epever-pty');

async function plug(hostOnDisk: string, deviceOnDisk: string): Promise<PtyPair> {
  const p = await startPtyPair(hostOnDisk, deviceOnDisk);
  pairs.push(p);
  return p;
}

describe('EPEver Tracer over a pty with the real serialport binding', () => {
  test('reads input registers end to end, goes stale on unplug, recovers on replug', async () => {
    const configured = '/dev/serial/by-id/usb-EPEVER_RS485_Cable_TRACER1-if00-port0';
    const hostOnDisk = path.join(root, configured);
    const devicePath = path.join(root, 'sim', 'epever-device');
    let pty = await plug(hostOnDisk, devicePath);
    const b = new BatteryModel({ socPct: 64, loadW: 20, startAtMs: Date.UTC(2024, 5, 1, 12) });
    b.setSolarW(150);
    const deviceLink = new ReconnectingLink(
      devicePath,
      () => new SerialPortLink({ path: devicePath, baudRate: EPEVER_BAUD }, env),
      { initialDelayMs: 50, maxDelayMs: 200 },
    );
    const device = new EpeverSimulator({ link: deviceLink, battery: b, unitId: 1 });
    await device.start();
    const link = new ReconnectingLink(
      configured,
      () => new SerialPortLink({ path: configured, baudRate: EPEVER_BAUD }, env),
      { initialDelayMs: 50, maxDelayMs: 400 },
    );
    const source = new EpeverSource({ device: 'tracer', link, unitId: 1, pollMs: 150, timeoutMs: 200 });
    await source.start();
    try {
      await until('a reading', () => source.latest()?.stale === false);
      const r = source.latest()!;
      assert.equal(r.driver, 'epever');
      assert.equal(r.extras?.['unitId'], 1);
      assert.equal(r.socPct, 64);
      assert.equal(r.solarW, 150);
      assert.equal(r.loadW, 20);
      assert.ok(Math.abs(r.batteryV! - b.snapshot().batteryV) <= 0.01, `batteryV ${r.batteryV}`);
      assert.equal(r.extras?.['running'], true);
      assert.ok(device.requests >= 3, 'three reads (0x3100, 0x311A, 0x3200) per poll crossed the pty');

      await pty.kill(); // unplug
      await until('stale after unplug', () => source.latest()?.stale === true);
      assert.match(source.latest()!.staleReason!, /serial link lost|cannot open|no valid Modbus answer/);

      pty = await plug(hostOnDisk, devicePath); // replug
      await until('fresh reading after replug', () => source.latest()?.stale === false, 10_000);
    } finally {
      await source.stop();
      await device.stop();
      await deviceLink.close();
      await pty.kill();
    }
  });
});
