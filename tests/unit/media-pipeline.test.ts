import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isKitError } from '../../core/errors.ts';
import { BOARD_IDS, type BoardId, getBoardProfile } from '../../hardware/boards/index.ts';
import { buildLadder, ladderTopFor } from '../../services/media/ladder.ts';
import { buildPipeline, type MediaOutputs } from '../../services/media/pipeline.ts';

const outputs: MediaOutputs = {
  hlsDir: '/data/hls',
  segmentPrefix: 's1-1',
};

function describeFor(board: BoardId, step = 0, extra: Partial<MediaOutputs> = {}) {
  const profile = getBoardProfile(board);
  const steps = buildLadder(ladderTopFor(profile.video));
  return buildPipeline({
    board,
    video: profile.video,
    step: steps[step]!,
    outputs: { ...outputs, ...extra },
  });
}

describe('pipeline per board', () => {
  test('Pi 4: v4l2h264enc with level caps and bitrate in extra-controls, IDR every part (1/3 s)', () => {
    const d = describeFor('pi4');
    assert.match(d, /^v4l2src name=src device="\/dev\/video0"/);
    assert.match(
      d,
      /v4l2h264enc name=enc extra-controls="controls,video_bitrate=\d+,h264_i_frame_period=10,/,
    );
    assert.match(d, /v4l2h264enc[^!]*! video\/x-h264,level=\(string\)4/);
    assert.doesNotMatch(d, /x264enc name|nvv4l2h264enc/);
  });

  test('Pi Zero 2 W: the same hardware encoder, also with level caps', () => {
    assert.match(describeFor('pi-zero-2w'), /v4l2h264enc[^!]*! video\/x-h264,level=\(string\)4/);
  });

  test('Pi 5: libcamera and x264enc zerolatency ultrafast, I420 pinned before it', () => {
    const d = describeFor('pi5');
    assert.match(d, /^libcamerasrc name=src/);
    assert.match(d, /video\/x-raw,format=I420 ! x264enc name=enc tune=zerolatency speed-preset=ultrafast/);
    assert.match(d, /key-int-max=10/);
  });

  test('Orin Nano: x264enc, and no NVENC element anywhere in the description', () => {
    const d = describeFor('jetson-orin-nano');
    assert.match(d, /x264enc name=enc tune=zerolatency speed-preset=ultrafast/);
    assert.doesNotMatch(d, /nvv4l2h264enc|nvvidconv|NVMM/);
  });

  test('Orin NX: nvv4l2h264enc fed through nvvidconv into NVMM, bitrate in bit/s', () => {
    const d = describeFor('jetson-orin-nx');
    assert.match(
      d,
      /nvvidconv ! video\/x-raw\(memory:NVMM\),format=NV12 ! nvv4l2h264enc name=enc bitrate=40000000 /,
    );
    assert.match(d, /iframeinterval=20 idrinterval=20/); // 60 fps top rung: still one IDR a part
    assert.doesNotMatch(d, /videoconvert ! video\/x-raw,format=I420 ! nvvidconv/);
  });

  test('sim: live videotestsrc with a clock overlay, x264enc', () => {
    const d = describeFor('sim');
    assert.match(d, /^videotestsrc name=src is-live=true pattern=ball/);
    assert.match(d, /clockoverlay/);
    assert.match(d, /x264enc name=enc/);
  });

  test('every board: one MPEG-TS part file per GOP from splitmuxsink (no hlssink2), metering sink', () => {
    for (const b of BOARD_IDS) {
      const d = describeFor(b);
      assert.match(d, /splitmuxsink name=hls muxer-factory=mpegtsmux max-size-time=\d+/, b);
      assert.match(d, /location="\/data\/hls\/s1-1-%05d\.ts"/, b);
      assert.doesNotMatch(d, /hlssink2|playlist-location/, b);
      assert.match(d, /fakesink name=meter sync=true qos=true max-lateness=\d+/, b);
    }
  });

  test('a lower rung changes caps and bitrate in the description', () => {
    const top = describeFor('sim', 0);
    const low = describeFor('sim', 4);
    assert.match(top, /width=1280,height=720,framerate=30\/1/);
    assert.match(low, /width=640,height=360,framerate=15\/1/);
    assert.match(low, /key-int-max=5/);
  });

  test('upstream push: SRT through mpegtsmux, RTMP through flvmux; other schemes refused', () => {
    assert.match(
      describeFor('sim', 0, { upstreamUrl: 'srt://hub:9000' }),
      /mpegtsmux ! srtsink uri="srt:\/\/hub:9000"/,
    );
    assert.match(
      describeFor('sim', 0, { upstreamUrl: 'rtmp://a/live/k' }),
      /flvmux streamable=true ! rtmp2sink/,
    );
    assert.throws(
      () => describeFor('sim', 0, { upstreamUrl: 'http://x' }),
      (e) => isKitError(e) && e.code === 'BAD_REQUEST',
    );
  });

  test('values that would break out of the description are refused, not escaped', () => {
    assert.throws(
      () => describeFor('sim', 0, { hlsDir: '/data/"x' }),
      (e) => isKitError(e) && e.code === 'BAD_REQUEST',
    );
    assert.throws(
      () => describeFor('sim', 0, { segmentPrefix: 'a b' }),
      (e) => isKitError(e) && e.code === 'BAD_REQUEST',
    );
    assert.throws(
      () => describeFor('sim', 5),
      (e) => isKitError(e) && /paused/.test(e.message),
    );
  });
});
