// A power cut while media writes its stream (tests/support/pcfs.ts: a filesystem that forgets every
// write not made durable): `popkit media` runs on pcfs, is killed with SIGKILL mid-stream (the power
// goes), every non-durable write is rolled back, and media starts again after the "reboot" (a new boot
// id, as a real power cut brings). The segment numbers a player saw never come back, the restart is a
// discontinuity, no ENDLIST, and no playlist a player could read was ever torn. Real GStreamer.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { parseMediaPlaylist } from '../../core/contracts/hls-playlist.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { loadGst } from '../../services/media/gst-loader.ts';
import { loadHlsState } from '../../services/media/hls-state.ts';
import { BIN, startCheckout, tempDir } from '../support/checkout.ts';
import { PlaylistWatch } from '../support/hls-watch.ts';
import { quietSimMedia } from '../support/media.ts';
import { mountPcfs } from '../support/pcfs.ts';

const gst = loadGst();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 40_000) {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(40);
  }
}

test('power cut mid-stream: numbers never go back, the restart is marked, nothing torn', {
  skip: !gst.ok,
  timeout: 120_000,
}, async () => {
  const root = tempDir('popkit-media-cut-');
  const backing = path.join(root, 'backing');
  const fsys = await mountPcfs(backing, path.join(root, 'mnt'));
  const before = new PlaylistWatch(path.join(dataLayout(fsys.mount).hls, 'll.m3u8')).start(15);
  const plainBefore = new PlaylistWatch(path.join(dataLayout(fsys.mount).hls, 'index.m3u8')).start(15);
  const child = spawn(process.execPath, [BIN, 'media'], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      POPKIT_LOG_LEVEL: 'warn',
      POPKIT_BOARD: 'sim',
      POPKIT_DATA_DIR: fsys.mount,
      POPKIT_MEDIA_WIDTH: '320',
      POPKIT_MEDIA_HEIGHT: '240',
      POPKIT_MEDIA_BITRATE_KBPS: '400',
      POPKIT_STORE_RESERVE_MB: '0',
    },
    stdio: 'ignore',
  });
  let cutResult: Awaited<ReturnType<typeof fsys.cut>>;
  try {
    // long enough that the numbering passes one durable reservation (64 segments would take a minute:
    // a few segments are enough to show the rollback; the reservation is what makes them safe)
    await until('five segments on pcfs', () => before.msns().length >= 5);
    await sleep(Math.random() * 700); // mid-part, mid-segment: anywhere
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  } finally {
    child.kill('SIGKILL');
    before.stop();
    plainBefore.stop();
    cutResult = await fsys.cut();
  }
  assert.equal(cutResult.cut, true);
  assert.ok(cutResult.bytes_rolled_back > 0, 'the cut really lost writes (segments are not fsynced)');
  before.assertContinuous();
  plainBefore.assertContinuous();
  const seen = before.msns();
  const maxSeen = seen[seen.length - 1]!;
  const maxCc = Math.max(...[...before.seen.values()].map((s) => s.cc));

  // What survived: the numbering state, whole (durable); the playlists maybe not (atomic, not durable).
  const layout = dataLayout(backing);
  const state = loadHlsState(path.join(layout.run, 'media-hls.json'));
  assert.ok(state, 'the numbering state survives the cut whole');
  assert.ok(
    state.msnReserved > maxSeen + 1,
    `reservation ${state.msnReserved} covers every number seen (${maxSeen})`,
  );

  // checkout never serves what the cut left of a playlist if it is not a whole one
  const kit = await startCheckout({}, backing);
  try {
    for (const name of ['ll.m3u8', 'index.m3u8']) {
      const res = await kit.app.inject({ method: 'GET', url: `/live/${name}` });
      if (res.statusCode === 200) assert.ok(parseMediaPlaylist(res.body), `${name} served whole`);
      else assert.equal(res.statusCode, 404);
    }
  } finally {
    await kit.kit.close();
  }

  // The reboot: media starts again on what the disk kept.
  const after = new PlaylistWatch(path.join(layout.hls, 'll.m3u8')).start(15);
  const service = quietSimMedia({
    gst,
    dataDir: backing,
    bootId: 'boot-after-the-power-cut',
    bitrateKbps: 400,
  });
  service.start();
  try {
    await until('three segments after the reboot', () => after.msns().length >= 3);
  } finally {
    after.stop();
    await service.stop();
  }
  after.assertContinuous();
  const first = after.versions[0]!;
  assert.ok(first.mediaSequence > maxSeen, `numbers continue above ${maxSeen}: ${first.mediaSequence}`);
  assert.ok(first.discontinuitySequence >= maxCc, 'the discontinuity sequence does not go back');
  const firstSeg = after.seen.get(after.msns()[0]!)!;
  assert.equal(firstSeg.discontinuity, true, 'the restart is marked with EXT-X-DISCONTINUITY');
  assert.ok(firstSeg.cc > maxCc);
  for (const v of after.versions) assert.equal(v.endList, false);
  // no old segment number names a new file
  for (const k of after.msns()) assert.ok(!before.seen.has(k), `segment ${k} reused`);
});
