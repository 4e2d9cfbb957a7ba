import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import { loadGst } from '../../services/media/gst-loader.ts';
import { parsePlaylist } from '../../services/media/hls-files.ts';
import { ladderTopFor } from '../../services/media/ladder.ts';
import { MediaService } from '../../services/media/media-service.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-media-u-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('GStreamer absent', () => {
  test('a failing binding loader gives one clear reason, not a throw', () => {
    const r = loadGst(() => {
      throw new Error("Cannot find module 'gstreamer-superficial'\nRequire stack: ...");
    });
    assert.equal(r.ok, false);
    assert.ok(
      !r.ok && /GStreamer binding unavailable \(Cannot find module 'gstreamer-superficial'\)/.test(r.reason),
    );
    assert.ok(!r.ok && !r.reason.includes('\n'));
  });

  test('the service starts, reports unavailable with the reason in its status, and stops cleanly', async () => {
    const dataDir = tmp();
    const board = getBoardProfile('sim');
    const service = new MediaService({
      gst: loadGst(() => {
        throw new Error('libgstreamer-1.0.so.0: cannot open shared object file');
      }),
      board,
      dataDir,
      settings: {
        top: ladderTopFor(board.video),
        segmentSeconds: 1,
        playlistLength: 5,
        maxFiles: 10,
        maxRestarts: 3,
      },
    });
    service.start();
    try {
      const s = readRunStatus(dataDir, 'media');
      assert.equal(s?.state, 'unavailable');
      assert.match(String(s?.reason), /cannot open shared object file/);
      assert.equal(s?.board, 'sim');
      assert.equal(s?.encoder, 'x264enc');
      // commands are accepted and change the ladder even with no pipeline; nothing crashes
      service.handleCommand({ v: 1, cmd: 'step-down' });
      assert.equal(readRunStatus(dataDir, 'media')?.ladderStep, 1);
    } finally {
      await service.stop();
    }
    assert.equal(readRunStatus(dataDir, 'media')?.state, 'unavailable');
    assert.equal(fs.existsSync(path.join(dataDir, 'hls')), false, 'no HLS output without GStreamer');
  });
});

describe('HLS files', () => {
  test('parsePlaylist reads EXTINF durations and URIs', () => {
    const text =
      '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-TARGETDURATION:1\n\n#EXTINF:1.0,\na-00004.ts\n#EXTINF:0.966,\na-00005.ts\n';
    assert.deepEqual(parsePlaylist(text), [
      { uri: 'a-00004.ts', durationS: 1 },
      { uri: 'a-00005.ts', durationS: 0.966 },
    ]);
  });
});
