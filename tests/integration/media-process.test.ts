// `popkit media` as its own process, as `popkit up` runs it: stats retained on the local bus (a private
// real Mosquitto), commands from the bus move the ladder, SIGTERM ends it with exit code 0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import mqtt from 'mqtt';
import { localTopics } from '../../core/contracts/local-bus.ts';
import { loadGst } from '../../services/media/gst-loader.ts';
import { PlaylistWatch } from '../support/hls-watch.ts';
import { type Mosquitto, mosquitto } from '../support/hub-link.ts';

const root = path.resolve(import.meta.dirname, '../..');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-media-p-'));
const topics = localTopics(`popkit-test/${process.pid}-${Math.random().toString(16).slice(2, 8)}`);
let broker: Mosquitto | undefined;
after(async () => {
  await broker?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('popkit media publishes stats on the local bus and obeys bus commands', {
  skip: !loadGst().ok,
  timeout: 120_000, // its own bound: a hang names this test, not the whole file (tests/integration/gst-bus-poll.test.ts)
}, async () => {
  broker = await mosquitto();
  const child = spawn(process.execPath, [path.join(root, 'bin/popkit.js'), 'media'], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      POPKIT_LOG_LEVEL: 'warn',
      POPKIT_BOARD: 'sim',
      POPKIT_DATA_DIR: dataDir,
      POPKIT_LOCAL_BUS_URL: broker.url,
      POPKIT_LOCAL_BUS_PREFIX: topics.prefix,
      POPKIT_MEDIA_WIDTH: '320',
      POPKIT_MEDIA_HEIGHT: '240',
      POPKIT_MEDIA_BITRATE_KBPS: '500',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const client = await mqtt.connectAsync(broker.url);
  try {
    const stats: Record<string, unknown>[] = [];
    client.on('message', (_t, p) => {
      if (p.length > 0) stats.push(JSON.parse(p.toString()));
    });
    await client.subscribeAsync(topics.mediaStats);
    const waitStats = async (what: string, ok: (s: Record<string, unknown>) => boolean) => {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const hit = stats.find(ok);
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no stats with ${what}; stderr: ${stderr}`);
    };
    const playing = await waitStats('state playing', (s) => s['state'] === 'playing');
    assert.equal(playing['v'], 1);
    assert.equal(playing['board'], 'sim');
    assert.equal(playing['ladderStep'], 0);
    await client.publishAsync(topics.mediaCmd, JSON.stringify({ v: 1, cmd: 'set-step', step: 2 }));
    const down = await waitStats('ladder step 2', (s) => s['ladderStep'] === 2);
    assert.equal(down['state'], 'degraded');
    await client.publishAsync(topics.mediaCmd, 'not json'); // refused, logged, nothing changes
    await client.publishAsync(topics.mediaCmd, JSON.stringify({ v: 1, cmd: 'pause' }));
    await waitStats('paused', (s) => s['state'] === 'paused');
    const status = JSON.parse(fs.readFileSync(path.join(dataDir, 'run/media.json'), 'utf8'));
    assert.equal(status.ladderStep, 5);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    child.kill('SIGKILL');
    await client.endAsync();
  }
});

test('kill -9 of popkit media: the restarted process continues the same playlist', {
  skip: !loadGst().ok,
  timeout: 90_000,
}, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-media-k9-'));
  const start = () =>
    spawn(process.execPath, [path.join(root, 'bin/popkit.js'), 'media'], {
      env: {
        ...process.env,
        NODE_ENV: 'test',
        POPKIT_LOG_LEVEL: 'warn',
        POPKIT_BOARD: 'sim',
        POPKIT_DATA_DIR: dir,
        POPKIT_MEDIA_WIDTH: '320',
        POPKIT_MEDIA_HEIGHT: '240',
        POPKIT_MEDIA_BITRATE_KBPS: '500',
      },
      stdio: 'ignore',
    });
  const watch = new PlaylistWatch(path.join(dir, 'hls/ll.m3u8')).start(20);
  const until = async (what: string, ok: () => boolean) => {
    const deadline = Date.now() + 30_000;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  let child = start();
  try {
    await until('four segments', () => watch.msns().length >= 4);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    watch.sample();
    const before = watch.msns();
    const lastBefore = before[before.length - 1]!;
    child = start();
    await until(
      'three segments from the new process',
      () => watch.msns().filter((k) => k > lastBefore + 1).length >= 3,
    );
    const exited2 = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited2;
  } finally {
    child.kill('SIGKILL');
    watch.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  watch.assertContinuous();
  const msns = watch.msns();
  assert.deepEqual(
    msns,
    msns.map((_, i) => msns[0]! + i),
    `no segment number skipped or reused across the kill: ${msns}`,
  );
  const marked = msns.filter((k) => watch.seen.get(k)!.discontinuity);
  assert.ok(marked.length >= 1, 'the new process starts with a discontinuity');
});
