// The GStreamer binding's bus poll, as patched (patches/gstreamer-superficial+1.7.4.patch): a stopped
// pipeline gives its libuv worker back, so a process that stopped its pipelines can exit and keeps its
// thread pool. Unpatched, a poll queued just before stop() and picked up just after waited on the
// flushed bus for good: `popkit media` ignored SIGTERM after a ladder move (CI: media-process timed
// out), and every such pipeline held a pool thread until the process ended.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { loadGst } from '../../services/media/gst-loader.ts';

const root = path.resolve(import.meta.dirname, '../..');
const skip = !loadGst().ok;

/** Runs an ES module script in a fresh node; resolves with its exit code, or 'hung' if it outlives the bound. */
function runScript(
  source: string,
  env: NodeJS.ProcessEnv,
  boundMs: number,
): Promise<{ code: number | null | 'hung'; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: 'hung', out });
    }, boundMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const PRELUDE = `
import { createRequire } from 'node:module';
const gst = createRequire(process.cwd() + '/package.json')('gstreamer-superficial');
const desc = 'videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1 ! fakesink sync=true';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
`;

test('pipelines played and stopped in quick succession leave nothing behind: the process exits by itself', {
  skip,
  timeout: 120_000,
}, async () => {
  // unpatched, 40 pipelines played 100 ms each and stopped left the process hanging in 4 runs of 5
  // (2 in 5 at 20-50 ms, 1 in 5 at 0-7 ms)
  const { code, out } = await runScript(
    `${PRELUDE}
     let messages = 0;
     for (let i = 0; i < 60; i++) {
       const p = new gst.Pipeline(desc);
       p.pollBus(() => { messages++; });
       p.play();
       await sleep(100);
       p.stop();
     }
     console.log('stopped all; messages', messages);`,
    {},
    60_000,
  );
  assert.notEqual(code, 'hung', `the process did not exit after stopping its pipelines: ${out}`);
  assert.equal(code, 0, out);
  const m = /messages (\d+)/.exec(out);
  assert.ok(m && Number(m[1]) > 0, `the polls delivered bus messages: ${out}`);
});

test('more playing pipelines than pool threads: file reads still complete, and stop() frees the pool', {
  skip,
  timeout: 120_000,
}, async () => {
  const { code, out } = await runScript(
    `${PRELUDE}
     import fs from 'node:fs';
     const ps = [];
     const seen = new Set();
     for (let i = 0; i < 4; i++) {
       const p = new gst.Pipeline(desc);
       p.pollBus((m) => { if (m.type === 'state-changed') seen.add(i); });
       p.play();
       ps.push(p);
     }
     await sleep(500);
     await fs.promises.readFile(process.cwd() + '/package.json');
     console.log('read while playing; pipelines that posted', seen.size);
     for (const p of ps) p.stop();
     await sleep(300);
     // every pool thread is free again: as many reads at once as there are threads
     await Promise.all([1, 2].map(() => fs.promises.readFile(process.cwd() + '/package.json')));
     console.log('read after stop');`,
    { UV_THREADPOOL_SIZE: '2' },
    60_000,
  );
  assert.notEqual(code, 'hung', `file reads starved or the process did not exit: ${out}`);
  assert.equal(code, 0, out);
  assert.match(out, /read while playing; pipelines that posted 4/);
  assert.match(out, /read after stop/);
});
