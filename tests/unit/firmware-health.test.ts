import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  combineHealth,
  fsyncProbe,
  type HealthComponent,
  networkProbe,
  readLoadPerCore,
  scoreBattery,
  scoreCpu,
  scoreDisk,
  scoreNetwork,
  scoreServices,
} from '../../firmware/health.ts';

const c = (score: number, weight = 1): HealthComponent => ({ score, weight, detail: '' });

describe('health scoring', () => {
  test('each component falls from 100 to 0 across its band', () => {
    assert.equal(scoreCpu(0.2), 100);
    assert.equal(scoreCpu(2.5), 0);
    assert.ok(scoreCpu(1.2) > 0 && scoreCpu(1.2) < 100);
    assert.equal(scoreDisk(5), 100);
    assert.equal(scoreDisk(1500), 0);
    assert.ok(scoreDisk(200) > scoreDisk(600));
    assert.equal(scoreNetwork({ sent: 5, received: 5, lossPct: 0, rttMs: 20, jitterMs: 3 }), 100);
    assert.equal(scoreNetwork({ sent: 5, received: 0, lossPct: 100 }), 0);
    assert.ok(scoreNetwork({ sent: 5, received: 4, lossPct: 20, rttMs: 20, jitterMs: 3 }) <= 60);
    assert.ok(scoreNetwork({ sent: 5, received: 5, lossPct: 0, rttMs: 20, jitterMs: 300 }) < 70);
    assert.equal(scoreBattery({ socPct: 80 }), 100);
    assert.equal(scoreBattery({ socPct: 4 }), 0);
    assert.equal(scoreBattery({}), 50);
    assert.equal(
      scoreBattery({ socPct: 90, ttgMin: 60, neededMin: 240 }),
      0,
      'full but too short for the event',
    );
    assert.equal(scoreBattery({ socPct: 90, ttgMin: 600, neededMin: 240 }), 100);
    assert.equal(scoreServices({ down: 0, recentRestarts: 0 }), 100);
    assert.equal(scoreServices({ down: 1, recentRestarts: 1 }), 50);
  });

  test('one failing component cannot hide behind healthy ones', () => {
    assert.equal(combineHealth({ a: c(100), b: c(100), d: c(100), e: c(100) }), 100);
    assert.equal(combineHealth({ a: c(100), b: c(100), d: c(100), e: c(0) }), 50);
    assert.equal(combineHealth({ a: c(80, 3), b: c(40, 1) }), 70);
    assert.equal(combineHealth({}), 0);
  });

  test('load per core comes from /proc/loadavg under the host root', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-proc-'));
    fs.mkdirSync(path.join(root, 'proc'));
    fs.writeFileSync(path.join(root, 'proc/loadavg'), `${os.cpus().length * 1.5} 0.5 0.5 1/100 999\n`);
    assert.equal(readLoadPerCore({ POPKIT_HOST_ROOT: root }), 1.5);
    fs.rmSync(root, { recursive: true });
  });

  test('the fsync probe writes, syncs and reuses one small file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-fsync-'));
    const a = await fsyncProbe(dir);
    const b = await fsyncProbe(dir);
    assert.ok(a >= 0 && b >= 0);
    assert.deepEqual(fs.readdirSync(dir), ['.fsync-probe']);
    assert.equal(fs.statSync(path.join(dir, '.fsync-probe')).size, 4096);
    fs.rmSync(dir, { recursive: true });
  });

  test('network probe measures loss and jitter against a real HTTP server that drops every other request', async () => {
    let n = 0;
    const server = http.createServer((req, res) => {
      n++;
      if (n % 2 === 0) {
        req.socket.destroy();
        return;
      }
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
    const s = await networkProbe(url, { count: 6, timeoutMs: 1000 });
    assert.equal(s.sent, 6);
    assert.equal(s.received, 3);
    assert.equal(s.lossPct, 50);
    assert.ok(s.jitterMs !== undefined && s.jitterMs >= 0);
    assert.ok(s.dateHeader && !Number.isNaN(Date.parse(s.dateHeader)));
    await new Promise<void>((r) => server.close(() => r()));
    const gone = await networkProbe(url, { count: 2, timeoutMs: 300 });
    assert.equal(gone.received, 0);
    assert.equal(gone.lossPct, 100);
    assert.equal(scoreNetwork(gone), 0);
  });
});
