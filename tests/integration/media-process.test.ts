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
