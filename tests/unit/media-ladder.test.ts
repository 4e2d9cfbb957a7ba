import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseMediaCommand } from '../../core/contracts/media.ts';
import { isKitError } from '../../core/errors.ts';
import { getBoardProfile } from '../../hardware/boards/index.ts';
import {
  buildLadder,
  DegradationLadder,
  type LadderPolicy,
  ladderTopFor,
  liveBitrateSetting,
  planTransition,
  settingTook,
  v4l2Controls,
} from '../../services/media/ladder.ts';
import { buildPipeline } from '../../services/media/pipeline.ts';

const top = { width: 1280, height: 720, fps: 30, bitrateKbps: 2000 };
const calm = { dropRatio: 0, cpuLoad: 0.2 };
const hot = { dropRatio: 0.2, cpuLoad: 0.5 };
const policy: Partial<LadderPolicy> = { downAfter: 2, upAfter: 3, minDwellMs: 1000, ordersHigh: 10 };

describe('ladder rungs', () => {
  test('bitrate falls first, then frame rate, then resolution, then paused', () => {
    const s = buildLadder(top);
    assert.equal(s.length, 6);
    assert.deepEqual(
      s.map((x) => x.index),
      [0, 1, 2, 3, 4, 5],
    );
    assert.ok(s[1]!.bitrateKbps < s[0]!.bitrateKbps && s[2]!.bitrateKbps < s[1]!.bitrateKbps);
    assert.deepEqual([s[1]!.fps, s[2]!.fps, s[1]!.width], [30, 30, 1280]);
    assert.deepEqual([s[3]!.fps, s[3]!.width], [15, 1280]);
    assert.deepEqual([s[4]!.width, s[4]!.height, s[4]!.fps], [640, 360, 15]);
    assert.equal(s[5]!.paused, true);
    assert.ok(s.slice(0, 5).every((x) => !x.paused));
  });

  test('the top rung is the wish clamped to what the board can carry', () => {
    const zero = getBoardProfile('pi-zero-2w').video;
    assert.deepEqual(ladderTopFor(zero, { width: 1920, height: 1080, fps: 60, bitrateKbps: 9000 }), {
      width: 1280,
      height: 720,
      fps: 30,
      bitrateKbps: 4000,
    });
  });
});

describe('planTransition', () => {
  const s = buildLadder(top);
  const pi4 = getBoardProfile('pi4').video;
  const pi5 = getBoardProfile('pi5').video;
  test('a bitrate-only move is live where the encoder allows it', () => {
    assert.deepEqual(planTransition(pi5, s[0]!, s[1]!), {
      kind: 'live-bitrate',
      bitrateKbps: s[1]!.bitrateKbps,
    });
  });
  test('Pi 4 steps its bitrate live too (extra-controls, patched binding); a profile without runtimeBitrate rebuilds', () => {
    assert.equal(planTransition(pi4, s[0]!, s[1]!).kind, 'live-bitrate');
    assert.deepEqual(planTransition({ ...pi4, runtimeBitrate: false }, s[0]!, s[1]!), {
      kind: 'rebuild',
      why: 'bitrate-fixed-while-playing',
    });
  });
  test('frame rate or resolution changes rebuild on every board; pause and resume', () => {
    assert.deepEqual(planTransition(pi5, s[2]!, s[3]!), { kind: 'rebuild', why: 'caps-change' });
    assert.deepEqual(planTransition(pi5, s[3]!, s[4]!), { kind: 'rebuild', why: 'caps-change' });
    assert.deepEqual(planTransition(pi5, s[4]!, s[5]!), { kind: 'pause' });
    assert.deepEqual(planTransition(pi5, s[5]!, s[0]!), { kind: 'resume' });
    assert.deepEqual(planTransition(pi5, s[1]!, s[1]!), { kind: 'none' });
  });
});

describe('live bitrate per board profile', () => {
  const s = buildLadder(top);
  test('x264enc takes kbit/s, nvv4l2h264enc bit/s, v4l2h264enc a whole extra-controls structure', () => {
    assert.deepEqual(liveBitrateSetting(getBoardProfile('pi5').video, 1500, 10), {
      property: 'bitrate',
      value: 1500,
    });
    assert.deepEqual(liveBitrateSetting(getBoardProfile('jetson-orin-nx').video, 1500, 10), {
      property: 'bitrate',
      value: 1_500_000,
    });
    // the same controls the pipeline starts with (IDR per part kept), only the bitrate moves
    assert.deepEqual(liveBitrateSetting(getBoardProfile('pi4').video, 1500, 10), {
      property: 'extra-controls',
      value: 'controls,video_bitrate=1500000,h264_i_frame_period=10,repeat_sequence_header=1',
    });
    assert.equal(
      liveBitrateSetting({ ...getBoardProfile('pi4').video, runtimeBitrate: false }, 1500, 10),
      undefined,
    );
  });
  test('a live setting is trusted only when the encoder reads it back', () => {
    const set = { property: 'extra-controls', value: v4l2Controls(1500, 10) };
    assert.equal(
      settingTook(set, 'controls, video_bitrate=(int)1500000, h264_i_frame_period=(int)10;'),
      true,
    );
    // an unpatched binding leaves the old structure in place
    assert.equal(
      settingTook(set, 'controls, video_bitrate=(int)2000000, h264_i_frame_period=(int)10;'),
      false,
    );
    assert.equal(settingTook(set, 'controls, video_bitrate=(int)15000000;'), false);
    assert.equal(settingTook(set, undefined), false);
    assert.equal(settingTook({ property: 'bitrate', value: 1500 }, 1500), true);
    assert.equal(settingTook({ property: 'bitrate', value: 1500 }, 2000), false);
  });
  test('Pi 4 step-down: the rebuilt pipeline issues the new bitrate in extra-controls, same part GOP', () => {
    const pi4 = getBoardProfile('pi4');
    const desc = (i: number) =>
      buildPipeline({
        board: 'pi4',
        video: pi4.video,
        step: s[i]!,
        outputs: { hlsDir: '/data/hls', segmentPrefix: 'w1-2' },
      });
    assert.match(
      desc(0),
      /extra-controls="controls,video_bitrate=2000000,h264_i_frame_period=10,repeat_sequence_header=1"/,
    );
    assert.match(
      desc(1),
      /extra-controls="controls,video_bitrate=1200000,h264_i_frame_period=10,repeat_sequence_header=1"/,
    );
    assert.match(
      desc(3),
      /h264_i_frame_period=5,/,
      'half the frame rate: still a third of a second per part',
    );
  });
});

describe('DegradationLadder', () => {
  test('commands move the floor; step-down past the last playing rung pauses; step-up unpauses', () => {
    const l = new DegradationLadder(buildLadder(top), policy);
    assert.equal(l.command({ cmd: 'step-down' }, 0).step.index, 1);
    assert.equal(l.command({ cmd: 'set-step', step: 4 }, 0).step.index, 4);
    const d = l.command({ cmd: 'step-down' }, 0);
    assert.equal(d.step.paused, true);
    assert.equal(d.changed, true);
    assert.equal(l.command({ cmd: 'step-up' }, 0).step.index, 4);
    assert.equal(l.command({ cmd: 'pause' }, 0).step.paused, true);
    assert.equal(l.command({ cmd: 'resume' }, 0).step.index, 4);
    assert.equal(l.command({ cmd: 'step-up' }, 0).step.index, 3);
  });

  test('set-step out of range is a coded error and changes nothing', () => {
    const l = new DegradationLadder(buildLadder(top), policy);
    l.command({ cmd: 'set-step', step: 2 }, 0);
    assert.throws(
      () => l.command({ cmd: 'set-step', step: 9 }, 0),
      (e) => isKitError(e) && e.code === 'BAD_REQUEST',
    );
    assert.equal(l.current.index, 2);
  });

  test('drops step down only after downAfter pressured samples, and not again within the dwell', () => {
    const l = new DegradationLadder(buildLadder(top), policy);
    assert.equal(l.sample(hot, 0).changed, false);
    const d = l.sample(hot, 1000);
    assert.deepEqual([d.changed, d.step.index, d.reason], [true, 1, 'frame drops']);
    l.sample(hot, 1500);
    assert.equal(l.sample(hot, 1900).changed, false, 'within the dwell');
    assert.equal(l.sample(hot, 2100).step.index, 2);
  });

  test('a single pressured sample between calm ones does nothing (hysteresis)', () => {
    const l = new DegradationLadder(buildLadder(top), policy);
    for (let t = 0; t < 10_000; t += 1000) {
      const d = l.sample(t % 2000 === 0 ? hot : calm, t);
      assert.equal(d.step.index, 0);
    }
  });

  test('CPU load steps down; recovery needs upAfter calm samples and climbs one rung at a time', () => {
    const l = new DegradationLadder(buildLadder(top), policy);
    l.sample({ dropRatio: 0, cpuLoad: 0.99 }, 0);
    assert.equal(l.sample({ dropRatio: 0, cpuLoad: 0.99 }, 1000).reason, 'cpu load');
    l.sample({ dropRatio: 0, cpuLoad: 0.99 }, 2000);
    assert.equal(l.sample({ dropRatio: 0, cpuLoad: 0.99 }, 3000).step.index, 2);
    // between calm and high: neither down nor up
    for (let t = 4000; t < 20_000; t += 1000)
      assert.equal(l.sample({ dropRatio: 0, cpuLoad: 0.8 }, t).step.index, 2);
    assert.equal(l.sample(calm, 20_000).changed, false);
    assert.equal(l.sample(calm, 21_000).changed, false);
    assert.equal(l.sample(calm, 22_000).step.index, 1);
    assert.equal(l.sample(calm, 23_000).changed, false);
    l.sample(calm, 24_000);
    assert.equal(l.sample(calm, 25_000).step.index, 0);
  });

  test('a checkout spike yields at once, skipping the wait and the dwell', () => {
    const l = new DegradationLadder(buildLadder(top), policy);
    l.command({ cmd: 'step-down' }, 0);
    const d = l.sample({ ...calm, ordersPerSec: 25 }, 10);
    assert.deepEqual([d.changed, d.step.index, d.reason], [true, 2, 'checkout load']);
  });

  test('load never pauses the stream; only a command does', () => {
    const l = new DegradationLadder(buildLadder(top), { ...policy, minDwellMs: 0, downAfter: 1 });
    for (let t = 0; t < 50; t++) l.sample({ dropRatio: 1, cpuLoad: 1, ordersPerSec: 100 }, t * 1000);
    assert.equal(l.current.index, 4);
    assert.equal(l.current.paused, false);
  });

  test('the commanded floor holds while load eases', () => {
    const l = new DegradationLadder(buildLadder(top), { ...policy, upAfter: 1, minDwellMs: 0 });
    l.command({ cmd: 'set-step', step: 2 }, 0);
    for (let t = 1; t < 20; t++) l.sample(calm, t * 1000);
    assert.equal(l.current.index, 2);
    assert.equal(l.commandedFloor, 2);
  });
});

describe('media commands on the bus', () => {
  test('valid commands parse', () => {
    assert.deepEqual(parseMediaCommand('{"v":1,"cmd":"step-down"}'), { v: 1, cmd: 'step-down' });
    assert.deepEqual(parseMediaCommand(Buffer.from('{"v":1,"cmd":"set-step","step":3}')), {
      v: 1,
      cmd: 'set-step',
      step: 3,
    });
  });
  test('bad ones are coded errors', () => {
    for (const bad of [
      'nope',
      '{"cmd":"step-down"}',
      '{"v":2,"cmd":"step-down"}',
      '{"v":1,"cmd":"set-step"}',
      '{"v":1,"cmd":"explode"}',
    ]) {
      assert.throws(
        () => parseMediaCommand(bad),
        (e) => isKitError(e) && ['BAD_REQUEST', 'VALIDATION'].includes(e.code),
        bad,
      );
    }
  });
});
