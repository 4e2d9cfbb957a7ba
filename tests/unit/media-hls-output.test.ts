// services/media/hls-output.ts without GStreamer: the splitmuxsink bus messages it learns parts from
// (as gstreamer-superficial delivers them), the files it renames and concatenates, the playlists it
// writes, and where a new process continues: the same boot gaplessly, a new boot above the durable
// reservation, a state file that is not ours above everything on disk. Real files in a temp dir.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { type ParsedPlaylist, parseMediaPlaylist } from '../../core/contracts/hls-playlist.ts';
import { HlsOutput } from '../../services/media/hls-output.ts';
import { loadHlsState, RESERVE } from '../../services/media/hls-state.ts';
import { tempDir } from '../support/checkout.ts';

const silent = { info() {}, warn() {}, error() {}, debug() {} } as never;
const shape = { targetS: 1, partTargetS: 0.334, partsPerSegment: 3, windowSegments: 5 };
const PART_NS = 333_333_333;

function setup(root: string, bootId = 'boot-a', now = () => Date.now()) {
  const hlsDir = path.join(root, 'hls');
  const out = new HlsOutput({
    hlsDir,
    stateFile: path.join(root, 'run', 'media-hls.json'),
    bootId,
    shape,
    log: silent,
    now,
  });
  out.open();
  return { out, hlsDir };
}

/** One pipeline run producing `n` parts, each its own bytes, as splitmuxsink reports them. */
function run(out: HlsOutput, hlsDir: string, prefix: string, n: number, opts: { closeLast?: boolean } = {}) {
  out.startRun(prefix, Date.now());
  for (let i = 0; i < n; i++) {
    const loc = path.join(hlsDir, `${prefix}-${String(i).padStart(5, '0')}.ts`);
    fs.writeFileSync(loc, Buffer.from(`${prefix}:${i};`));
    out.onMessage({
      type: 'element',
      name: 'splitmuxsink-fragment-opened',
      location: loc,
      'running-time': String(i * PART_NS),
    });
    out.onMessage({
      type: 'element',
      name: 'splitmuxsink-fragment-closed',
      location: loc,
      'running-time': String((i + 1) * PART_NS),
    });
  }
  // the file being written when the run ends: never listed
  fs.writeFileSync(path.join(hlsDir, `${prefix}-${String(n).padStart(5, '0')}.ts`), 'half');
  if (opts.closeLast !== false) out.endRun();
}

const ll = (hlsDir: string): ParsedPlaylist =>
  parseMediaPlaylist(fs.readFileSync(path.join(hlsDir, 'll.m3u8'), 'utf8'))!;

test('parts become files and segments; a segment is its parts concatenated; the raw names go', () => {
  const root = tempDir('popkit-hlsout-');
  const { out, hlsDir } = setup(root);
  run(out, hlsDir, 'wabc-1', 4, { closeLast: false });
  const p = ll(hlsDir);
  assert.deepEqual(
    p.segments.map((s) => s.uri),
    ['seg0.ts'],
  );
  assert.equal(fs.readFileSync(path.join(hlsDir, 'seg0.ts'), 'utf8'), 'wabc-1:0;wabc-1:1;wabc-1:2;');
  assert.equal(fs.readFileSync(path.join(hlsDir, 'seg1-p0.ts'), 'utf8'), 'wabc-1:3;');
  assert.deepEqual(
    p.openParts.map((x) => x.uri),
    ['seg1-p0.ts'],
  );
  assert.equal(p.preloadHint, 'seg1-p1.ts');
  const plain = parseMediaPlaylist(fs.readFileSync(path.join(hlsDir, 'index.m3u8'), 'utf8'))!;
  assert.equal(plain.segments.length, 1);
  out.endRun();
  assert.equal(fs.readFileSync(path.join(hlsDir, 'seg1.ts'), 'utf8'), 'wabc-1:3;', 'closed short at run end');
  assert.ok(!fs.readdirSync(hlsDir).some((n) => n.startsWith('wabc-1-')), 'the unfinished part is gone');
  assert.ok(!fs.readFileSync(path.join(hlsDir, 'll.m3u8'), 'utf8').includes('ENDLIST'));
});

test('messages that are not ours, or malformed, change nothing', () => {
  const root = tempDir('popkit-hlsout-bad-');
  const { out, hlsDir } = setup(root);
  out.startRun('wx-1', Date.now());
  const loc = path.join(hlsDir, 'wx-1-00000.ts');
  fs.writeFileSync(loc, 'x');
  for (const m of [
    { type: 'element', name: 'splitmuxsink-fragment-closed', location: loc, 'running-time': '1000' }, // never opened
    { type: 'element', name: 'splitmuxsink-fragment-opened', location: '/etc/passwd', 'running-time': '0' },
    { type: 'element', name: 'splitmuxsink-fragment-opened', location: loc, 'running-time': 'NaN' },
    { type: 'element', name: 'splitmuxsink-fragment-opened', location: 42, 'running-time': '0' },
    { type: 'qos', name: 'splitmuxsink-fragment-closed', location: loc, 'running-time': '5' },
  ]) {
    assert.equal(out.onMessage(m), false);
  }
  out.onMessage({
    type: 'element',
    name: 'splitmuxsink-fragment-opened',
    location: loc,
    'running-time': '500',
  });
  assert.equal(
    out.onMessage({
      type: 'element',
      name: 'splitmuxsink-fragment-closed',
      location: loc,
      'running-time': '400',
    }),
    false,
    'an end before its start',
  );
  assert.equal(out.parts, 0);
  assert.ok(fs.existsSync('/etc/passwd'));
});

test('a new process on the same boot continues gaplessly and finishes the unfinished segment', () => {
  const root = tempDir('popkit-hlsout-same-');
  const a = setup(root);
  run(a.out, a.hlsDir, 'wa-1', 8, { closeLast: false }); // seg0, seg1 whole; seg2 has two parts; then kill -9
  const before = ll(a.hlsDir);
  const b = setup(root);
  const after = ll(b.hlsDir);
  assert.deepEqual(
    after.segments.map((s) => [s.msn, s.durationS.toFixed(3)]),
    [
      [0, '1.000'],
      [1, '1.000'],
      [2, '0.666'], // two parts as listed (milliseconds)
    ],
  );
  assert.equal(fs.readFileSync(path.join(b.hlsDir, 'seg2.ts'), 'utf8'), 'wa-1:6;wa-1:7;');
  assert.equal(after.mediaSequence, before.mediaSequence);
  run(b.out, b.hlsDir, 'wb-1', 3);
  const next = ll(b.hlsDir);
  const seg3 = next.segments.find((s) => s.msn === 3)!;
  assert.equal(seg3.discontinuity, true, 'the new process starts with a discontinuity');
  assert.equal(seg3.cc, 1);
});

test('a new boot continues above the durable reservation; old files go', () => {
  const root = tempDir('popkit-hlsout-boot-');
  const a = setup(root, 'boot-1');
  run(a.out, a.hlsDir, 'wa-1', 6);
  const state = loadHlsState(path.join(root, 'run', 'media-hls.json'))!;
  assert.ok(state.msnReserved >= 2 + 1);
  const b = setup(root, 'boot-2');
  assert.deepEqual(
    fs.readdirSync(b.hlsDir).filter((n) => n.endsWith('.ts')),
    [],
  );
  run(b.out, b.hlsDir, 'wb-1', 3);
  const p = ll(b.hlsDir);
  assert.equal(p.mediaSequence, state.msnReserved);
  assert.equal(p.segments[0]!.discontinuity, true);
  assert.ok(p.segments[0]!.cc > state.cc);
});

test('the reservation renews durably before a number beyond it is published', () => {
  const root = tempDir('popkit-hlsout-res-');
  const a = setup(root);
  run(a.out, a.hlsDir, 'wa-1', 3 * (RESERVE + 2));
  const st = loadHlsState(path.join(root, 'run', 'media-hls.json'))!;
  const last = ll(a.hlsDir).segments.at(-1)!.msn;
  assert.ok(st.msnReserved > last + 1, `${st.msnReserved} > ${last + 1}`);
});

test('a state file that is not ours, or a doctored playlist, never makes numbers go back', () => {
  for (const bad of [
    '',
    '\0\0',
    '{"v":1,"bootId":"boot-a","msnReserved":-5,"cc":0}',
    '{"__proto__":{"v":1}}',
    'null',
    '[]',
  ]) {
    const root = tempDir('popkit-hlsout-hostile-');
    const a = setup(root);
    run(a.out, a.hlsDir, 'wa-1', 9); // seg0..seg2
    fs.writeFileSync(path.join(root, 'run', 'media-hls.json'), bad);
    const b = setup(root);
    run(b.out, b.hlsDir, 'wb-1', 3);
    const p = ll(b.hlsDir);
    assert.ok(p.segments.at(-1)!.msn > 2, `${JSON.stringify(bad)}: continued at ${p.segments.at(-1)!.msn}`);
    assert.ok(loadHlsState(path.join(root, 'run', 'media-hls.json')), 'a sound state written again');
  }
  // same boot, but the playlist claims sequence 0 while seg5 exists: continue above the files
  const root = tempDir('popkit-hlsout-doctored-');
  const a = setup(root);
  run(a.out, a.hlsDir, 'wa-1', 18); // seg0..seg5
  fs.writeFileSync(
    path.join(a.hlsDir, 'll.m3u8'),
    '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nseg0.ts\n',
  );
  const b = setup(root);
  run(b.out, b.hlsDir, 'wb-1', 3);
  assert.ok(ll(b.hlsDir).segments[0]!.msn > 5);
});

test('segments leave the playlist but stay fetchable for the playlist duration plus a segment', () => {
  const root = tempDir('popkit-hlsout-sweep-');
  let t = 1_000_000;
  const { out, hlsDir } = setup(root, 'boot-a', () => t);
  run(out, hlsDir, 'wa-1', 3 * 8); // 8 segments, window 5: seg0..seg2 left
  assert.deepEqual(
    ll(hlsDir).segments.map((s) => s.msn),
    [3, 4, 5, 6, 7],
  );
  out.sweep();
  assert.ok(fs.existsSync(path.join(hlsDir, 'seg0.ts')), 'still fetchable right after removal');
  t += (shape.windowSegments + 1) * shape.targetS * 1000;
  out.sweep();
  assert.ok(fs.existsSync(path.join(hlsDir, 'seg0.ts')), 'still there after playlist + segment duration');
  t += 2000;
  assert.ok(out.sweep() >= 3 * 4);
  assert.ok(!fs.existsSync(path.join(hlsDir, 'seg0.ts')));
  assert.ok(!fs.existsSync(path.join(hlsDir, 'seg0-p0.ts')));
  assert.ok(fs.existsSync(path.join(hlsDir, 'seg3.ts')));
});

test('a process that died before its run wrote a part: the next one tags one discontinuity, numbered one up', () => {
  const root = tempDir('popkit-hlsout-emptyrun-');
  const a = setup(root);
  run(a.out, a.hlsDir, 'wa-1', 6); // seg0, seg1 (cc 0)
  // a second run begins (the state file records its discontinuity number) and dies before a part
  a.out.startRun('wa-2', Date.now());
  const b = setup(root); // same boot: the next process
  run(b.out, b.hlsDir, 'wb-1', 15, { closeLast: false }); // seg2..seg6; the window (5) starts at seg2
  const p = ll(b.hlsDir);
  // a player that saw seg2 behind seg1 numbered it 1 (one tag after cc 0); with seg2 first in the
  // window, EXT-X-DISCONTINUITY-SEQUENCE plus its tag must say the same, or hls.js refuses the playlist
  assert.deepEqual(
    p.segments.map((s) => [s.msn, s.discontinuity, s.cc]),
    [
      [2, true, 1],
      [3, false, 1],
      [4, false, 1],
      [5, false, 1],
      [6, false, 1],
    ],
    'one tag, one number: the run that wrote nothing counts for nothing',
  );
});
