// The order of giving way on a real filling volume (core/priorities.ts DISK_GIVE_WAY): a small tmpfs
// holds the kit's data dir; a ballast file lowers its free space band by band. Telemetry stops first,
// then the live stream (real GStreamer, sim board: its segments are removed), then sync's health and
// stock lanes, while checkout keeps selling; orders stop last, at the reserve (507 STORE_FULL); when
// space returns every writer resumes. Needs root for the tmpfs, as CI has (as
// tests/integration/checkout-store-full.test.ts); the same order with injected free space:
// tests/unit/priorities.test.ts.
//
// Media runs as its own process (`popkit media`), as in production, and is read through its run status
// file: GStreamer in the test process could block its main thread in native code (a pipeline's stop is
// a synchronous state change) or keep its event loop alive, and one full suite run (under coverage, on
// a loaded machine) timed this file out at 300 s although every wait in it was bounded. A child can
// always be killed: SIGTERM, then SIGKILL after 10 s.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { type RunStatus, readRunStatus } from '../../core/contracts/run-status.ts';
import { DiskWatch } from '../../core/priorities.ts';
import { LaneKeeper } from '../../services/sync/lanes.ts';
import { asStaff, auth, BIN, smallCatalog, startCheckout, tempDir } from '../support/checkout.ts';

const MB = 1024 * 1024;
const RESERVE_MB = 2;

function tryMount(dir: string): string | null {
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `mount failed: ${(err as Error).message}`;
  }
}

const mnt = tempDir('popkit-giveway-');
const why = tryMount(mnt);

/** `popkit media` children not yet seen to exit: killed outright if the test itself could not stop them */
const children = new Set<ChildProcess>();
let mounted = !why;
const teardown = () => {
  for (const c of children) c.kill('SIGKILL');
  if (!mounted) return;
  mounted = false;
  try {
    execFileSync('umount', ['-l', mnt], { stdio: 'ignore' });
  } catch (err) {
    console.log(`# could not unmount ${mnt}: ${(err as Error).message}`);
  }
};
after(teardown);
process.once('exit', teardown);
// the runner ends a file that ran over its time with a signal, which skips 'exit': tear down, then die of it
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    teardown();
    fs.rmSync(mnt, { recursive: true, force: true }); // tests/support/tmp.ts removes it on 'exit' only
    process.kill(process.pid, sig);
  });
}

const freeBytes = () => {
  const s = fs.statfsSync(mnt);
  return s.bavail * s.bsize;
};

/** `popkit media` on the sim board with a small stream, giving way at 3 × RESERVE_MB (its own DiskWatch). */
function spawnMedia(dataDir: string) {
  const env: NodeJS.ProcessEnv = {};
  // the runner's environment (PATH, coverage) without any kit setting of the machine's
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('POPKIT_')) env[k] = v;
  Object.assign(env, {
    NODE_ENV: 'test',
    POPKIT_LOG_LEVEL: 'warn',
    POPKIT_BOARD: 'sim',
    POPKIT_DATA_DIR: dataDir,
    POPKIT_STORE_RESERVE_MB: String(RESERVE_MB),
    POPKIT_MEDIA_WIDTH: '160',
    POPKIT_MEDIA_HEIGHT: '120',
    POPKIT_MEDIA_FPS: '10',
    POPKIT_MEDIA_BITRATE_KBPS: '100',
    POPKIT_MEDIA_SEGMENT_S: '1',
    POPKIT_MEDIA_PLAYLIST_LENGTH: '3',
    POPKIT_MEDIA_MAX_FILES: '4',
  });
  const child = spawn(process.execPath, [BIN, 'media'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  let exit: string | undefined;
  const exited = new Promise<void>((resolve) => {
    const done = (what: string) => {
      exit ??= what;
      children.delete(child);
      resolve();
    };
    child.once('exit', (code, signal) => done(`exit code ${code}, signal ${signal}`));
    child.once('error', (err) => done(`spawn error: ${err.message}`));
  });
  /** resolves true when the child exited within `ms` */
  const exitWithin = (ms: number) =>
    new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      void exited.then(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  return {
    /** why it ended, once it has */
    exit: () => exit,
    stderr: () => stderr,
    /** SIGTERM, SIGKILL if it has not exited within 10 s; never waits longer than 15 s in all */
    async stop(): Promise<void> {
      if (exit) return;
      child.kill('SIGTERM');
      if (await exitWithin(10_000)) return;
      console.log('# cleanup: popkit media did not exit within 10 s of SIGTERM: SIGKILL');
      child.kill('SIGKILL');
      if (!(await exitWithin(5_000))) console.log('# cleanup: popkit media still not gone after SIGKILL');
    },
  };
}

type MediaStatus = RunStatus<'media'>;
const streaming = (s: MediaStatus | undefined) => s?.state === 'playing' || s?.state === 'degraded';
const gaveWay = (s: MediaStatus | undefined) => s?.state === 'paused' && /volume low/.test(s.reason ?? '');

test('as the volume fills: telemetry, then media, then sync give way; orders last, at the reserve; all resume', {
  skip: why ?? false,
  timeout: 180_000,
}, async (t) => {
  const dataDir = path.join(mnt, 'data');
  const kit = await startCheckout(
    { POPKIT_STORE_RESERVE_MB: String(RESERVE_MB), POPKIT_RISK_MAX_UNSYNCED_ORDERS: '1000000' },
    dataDir,
  );
  const disk = new DiskWatch(dataDir, RESERVE_MB * MB, { intervalMs: 0 });
  const big = { ttlMs: 1e12, quotaBytes: 1e12 };
  const lanes = new LaneKeeper(kit.kit.store, { stock: big, health: big, telemetry: big }, Date.now, disk);
  const ballast = path.join(mnt, 'ballast');
  /** free space down to `mb` (the middle of a band), with the ballast file; returns when it was done */
  const fillTo = (mb: number) => {
    const have = fs.existsSync(ballast) ? fs.statSync(ballast).size : 0;
    const size = Math.max(0, have + freeBytes() - mb * MB);
    fs.writeFileSync(ballast, Buffer.alloc(size));
    return Date.now();
  };
  const order = async () =>
    (
      await asStaff(kit.app)({
        method: 'POST',
        url: '/v1/orders',
        payload: { lines: [{ sku: 'A', qty: 1 }], payment: { method: 'cash' } },
      })
    ).statusCode;
  // checkout's guard reads free space at most once a second: each band is a fresh look
  const guardLooks = () => new Promise((r) => setTimeout(r, 1100));
  const segments = () => {
    try {
      return fs.readdirSync(path.join(dataDir, 'hls')).filter((f) => f.endsWith('.ts'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  };
  let media: ReturnType<typeof spawnMedia> | undefined;
  /** media's last status (run/media.json); throws at once when media exited or says it cannot stream */
  const mediaStatus = (): MediaStatus | undefined => {
    const exit = media?.exit();
    if (exit) throw new Error(`popkit media ended (${exit}); its stderr: ${media?.stderr()}`);
    const s = readRunStatus(dataDir, 'media');
    if (s?.state === 'unavailable') throw new Error(`media is unavailable: ${s.reason}`);
    return s;
  };
  /** poll `fn` until it gives something; fails after `ms`, when the test is cancelled, or when `fn` throws */
  const until = async <T>(what: string, ms: number, fn: () => T | undefined | false): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (t.signal.aborted || Date.now() > deadline) {
        const last = readRunStatus(dataDir, 'media');
        throw new Error(
          `${t.signal.aborted ? 'cancelled' : `timed out after ${ms} ms`} waiting for ${what}; ` +
            `media's last status: ${JSON.stringify(last)}; its stderr: ${media?.stderr()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  /**
   * Media's first status from a tick that began at least a second after `since`: its DiskWatch reads
   * the volume at most once a second, so that tick decided on free space read after `since`. A status
   * written that late only says its tick ended late; the one after it began later still.
   */
  const mediaLookedSince = (since: number) => {
    let mark: number | undefined;
    return until('media to look at the volume again', 20_000, () => {
      const s = mediaStatus();
      if (!s) return undefined;
      const at = Date.parse(s.updatedAt);
      if (mark === undefined) {
        if (at >= since + 1000) mark = at;
        return undefined;
      }
      return at > mark ? s : undefined;
    });
  };
  try {
    const put = await asStaff(kit.app)({
      method: 'PUT',
      url: '/v1/catalog',
      headers: auth,
      payload: smallCatalog({ A: 1_000_000 }),
    });
    assert.equal(put.statusCode, 200, put.body);
    media = spawnMedia(dataDir);
    // the ladder may step down on a loaded machine: degraded is streaming too
    await until('media to stream', 60_000, () => streaming(mediaStatus()) && segments().length > 0);
    assert.equal(await order(), 201);
    assert.ok(await lanes.enqueue('telemetry', 'telemetry', { n: 1 }));

    // 7 MB free: below telemetry's line (4 × 2 MB), above the rest
    const at7 = fillTo(7);
    assert.equal(await lanes.enqueue('telemetry', 'telemetry', { n: 2 }), undefined, 'telemetry gives way');
    assert.ok(await lanes.enqueue('health', 'health', { n: 1 }), 'health still queues');
    const seen7 = await mediaLookedSince(at7);
    assert.ok(!gaveWay(seen7), `media does not give way at 7 MB: ${JSON.stringify(seen7)}`);
    // a pipeline restart on a loaded machine passes through `restarting`: wait it out, never a give-way
    await until('media to stream at 7 MB', 20_000, () => {
      const s = mediaStatus();
      assert.ok(!gaveWay(s), `media does not give way at 7 MB: ${JSON.stringify(s)}`);
      return streaming(s) && segments().length > 0;
    });
    await guardLooks();
    assert.equal(await order(), 201);

    // 5 MB: media gives way too (3 × 2 MB): the stream stops and its segments go
    fillTo(5);
    const paused = await until('media to give way', 20_000, () => {
      const s = mediaStatus();
      return s?.state === 'paused' ? s : undefined;
    });
    assert.match(paused.reason ?? '', /volume low/);
    assert.deepEqual(segments(), [], 'the segments were removed');
    assert.ok(await lanes.enqueue('health', 'health', { n: 2 }), 'health still queues');
    await guardLooks();
    assert.equal(await order(), 201);

    // 3 MB: sync's own lanes give way (2 × 2 MB); orders still sell
    const at3 = fillTo(3);
    assert.equal(await lanes.enqueue('health', 'health', { n: 3 }), undefined, 'health gives way');
    assert.equal(await lanes.snapshotStock(), false, 'no stock snapshot');
    await guardLooks();
    assert.equal(await order(), 201, 'orders sell while everything else has given way');
    const seen3 = await mediaLookedSince(at3);
    assert.ok(gaveWay(seen3), `media stays paused: ${JSON.stringify(seen3)}`);
    assert.deepEqual(segments(), []);

    // 1 MB: below the reserve, orders too
    fillTo(1);
    await guardLooks();
    assert.equal(await order(), 507);
    assert.deepEqual(lanes.heldBack, { stock: 1, health: 1, telemetry: 1 });

    // space returns: everyone resumes
    fs.rmSync(ballast);
    await guardLooks();
    assert.equal(await order(), 201);
    assert.ok(await lanes.enqueue('telemetry', 'telemetry', { n: 3 }));
    await until('media to stream again', 30_000, () => streaming(mediaStatus()) && segments().length > 0);
  } finally {
    // space first, so that nothing below writes to a full volume; each step is bounded and none throws
    fs.rmSync(ballast, { force: true });
    await media?.stop();
    await Promise.race([
      kit.kit.close().catch((err) => console.log(`# cleanup: the kit store close failed: ${err}`)),
      new Promise((r) => setTimeout(r, 15_000).unref()).then(() =>
        console.log('# cleanup: the kit store close did not finish in 15 s'),
      ),
    ]);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
