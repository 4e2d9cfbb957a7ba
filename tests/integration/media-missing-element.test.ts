// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// A pipeline that names an element this machine lacks: media says which element and which package
// provides it, not a bare "unavailable" (issue #14). Everything is real: the board profile's pipeline,
// the binding's gst_parse_launch, gst-inspect-1.0 --exists. The boards are ones whose elements Debian
// on x86 does not have (the Orin NX's L4T encoder; the Pi 5's libcamerasrc where it is not installed).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { readRunStatus } from '../../core/contracts/run-status.ts';
import { type BoardId, getBoardProfile } from '../../hardware/boards/index.ts';
import {
  elementInParseError,
  elementPresence,
  missingElements,
  missingElementsReason,
} from '../../services/media/gst-elements.ts';
import { loadGst } from '../../services/media/gst-loader.ts';
import { ladderTopFor } from '../../services/media/ladder.ts';
import { MediaService } from '../../services/media/media-service.ts';

const gst = loadGst();
const noBinding = gst.ok ? false : `GStreamer binding missing: ${gst.ok ? '' : gst.reason}`;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function statusOn(board: BoardId) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-media-missing-'));
  dirs.push(dataDir);
  const profile = getBoardProfile(board);
  const service = new MediaService({
    gst,
    board: profile,
    dataDir,
    settings: { top: ladderTopFor(profile.video), segmentSeconds: 1, playlistLength: 5, maxRestarts: 3 },
  });
  service.start();
  try {
    return readRunStatus(dataDir, 'media');
  } finally {
    await service.stop();
  }
}

describe('the lookup itself', () => {
  test('gst-inspect says a made-up element is missing and a core one present', () => {
    assert.equal(elementPresence('popkitnosuchelement'), 'missing');
    assert.equal(elementPresence('fakesink'), 'present');
  });

  test('a hostile name is never handed to gst-inspect', () => {
    for (const bad of ['', 'a b', 'x;rm -rf /', '--help', '-h', '$(id)', 'a\nb', '../x']) {
      assert.equal(elementPresence(bad), 'unknown', JSON.stringify(bad));
    }
  });

  test('the binding names the first missing element; the sweep finds all of them', {
    skip: noBinding,
  }, () => {
    assert.ok(gst.ok);
    const desc = 'videotestsrc ! popkitnosuchfilter ! popkitnosuchsink';
    let message = '';
    try {
      new gst.gst.Pipeline(desc);
    } catch (err) {
      message = (err as Error).message;
    }
    assert.equal(elementInParseError(message), 'popkitnosuchfilter', message);
    assert.deepEqual(missingElements(desc, message), ['popkitnosuchfilter', 'popkitnosuchsink']);
    assert.match(
      missingElementsReason('sim', ['popkitnosuchfilter']),
      /popkitnosuchfilter: not in Popkit's package table/,
    );
  });

  test('a parse error that names no element, or a hostile one, gives no name', () => {
    assert.equal(elementInParseError('could not link a to b'), undefined);
    assert.equal(elementInParseError('no element "x; rm -rf /"'), undefined);
  });
});

describe('media status names the element and its package', () => {
  test('Jetson Orin NX pipeline here: the L4T elements, not in Debian', { skip: noBinding }, async () => {
    const s = await statusOn('jetson-orin-nx');
    assert.equal(s?.state, 'unavailable');
    const reason = String(s?.reason);
    assert.match(
      reason,
      /GStreamer elements missing for the jetson-orin-nx pipeline: nvvidconv, nvv4l2h264enc;/,
    );
    assert.match(reason, /nvv4l2h264enc: NVIDIA L4T \(not in Debian\)/);
    assert.doesNotMatch(reason, /x264enc:|v4l2src:/, 'installed elements are not listed as missing');
  });

  test('Pi 5 pipeline here: libcamerasrc and apt-get install gstreamer1.0-libcamera', {
    skip:
      noBinding ||
      (elementPresence('libcamerasrc') === 'present' ? 'libcamerasrc is installed on this machine' : false),
  }, async () => {
    const s = await statusOn('pi5');
    assert.equal(s?.state, 'unavailable');
    assert.match(
      String(s?.reason),
      /GStreamer element missing for the pi5 pipeline: libcamerasrc; libcamerasrc: apt-get install gstreamer1\.0-libcamera/,
    );
  });

  test('the sim pipeline builds here: no missing-element reason', { skip: noBinding }, async () => {
    const s = await statusOn('sim');
    assert.notEqual(s?.state, 'unavailable', String(s?.reason));
    assert.doesNotMatch(String(s?.reason ?? ''), /missing/);
  });
});
