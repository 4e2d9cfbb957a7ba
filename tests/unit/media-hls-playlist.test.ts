// The playlist media owns (core/contracts/hls-playlist.ts), against the rules of RFC 8216 and its
// low-latency extension: numbering continuity across runs, the discontinuity sequence as tagged
// segments roll off, PDT on every segment, target durations, part rules, never an ENDLIST.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  LivePlaylist,
  type ParsedPlaylist,
  type PlaylistShape,
  parseMediaPlaylist,
  playlistPosition,
} from '../../core/contracts/hls-playlist.ts';

const shape: PlaylistShape = { targetS: 1, partTargetS: 0.334, partsPerSegment: 3, windowSegments: 5 };
const T0 = Date.UTC(2026, 10, 30, 20, 0, 0);

/** Feed `n` parts of `d` seconds, the clock advancing with them. */
function feed(pl: LivePlaylist, n: number, d = 1 / 3, at = { t: T0 }) {
  for (let i = 0; i < n; i++) {
    pl.addPart(d, at.t, true);
    at.t += d * 1000;
    pl.trim();
  }
}

const parse = (text: string): ParsedPlaylist => {
  const p = parseMediaPlaylist(text);
  assert.ok(p, 'parses');
  return p;
};

/** Every rule that must hold of any playlist we render. */
function checkRules(p: ParsedPlaylist, text: string) {
  assert.equal(p.endList, false, 'no ENDLIST while live');
  assert.doesNotMatch(text, /ENDLIST/);
  for (const s of p.segments) {
    assert.ok(
      Math.round(s.durationS) <= p.targetDuration,
      `EXTINF ${s.durationS} rounds above ${p.targetDuration}`,
    );
    assert.ok(Number.isFinite(s.pdtMs), `segment ${s.uri} has a PROGRAM-DATE-TIME`);
    if (p.partTarget !== undefined) {
      for (const part of s.parts)
        assert.ok(part.durationS <= p.partTarget, `part ${part.uri} over the part target`);
    }
  }
  if (p.partTarget !== undefined) {
    for (const part of p.openParts) assert.ok(part.durationS <= p.partTarget);
    assert.match(text, /#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=([\d.]+)/);
    const hold = Number(/PART-HOLD-BACK=([\d.]+)/.exec(text)?.[1]);
    assert.ok(hold >= 3 * p.partTarget - 1e-9, 'PART-HOLD-BACK is at least three part targets');
    assert.ok(p.preloadHint, 'a preload hint');
  }
}

describe('live playlist', () => {
  test('segments close after three parts; media sequence counts segments; PDT per segment', () => {
    const pl = new LivePlaylist(shape);
    pl.startRun();
    feed(pl, 7);
    const ll = parse(pl.renderLL());
    assert.equal(ll.mediaSequence, 0);
    assert.deepEqual(
      ll.segments.map((s) => [s.uri, s.durationS, s.parts.length]),
      [
        ['seg0.ts', 1, 3],
        ['seg1.ts', 1, 3],
      ],
    );
    assert.equal(ll.openParts.length, 1);
    assert.equal(ll.preloadHint, 'seg2-p1.ts');
    assert.deepEqual(playlistPosition(ll), { lastMsn: 1, openParts: 1 });
    assert.ok(Math.abs(ll.segments[1]!.pdtMs - ll.segments[0]!.pdtMs - 1000) <= 1, 'PDTs one segment apart');
    assert.equal(ll.segments[0]!.discontinuity, false, 'the first run of a new stream is no discontinuity');
    checkRules(ll, pl.renderLL());
    const plain = pl.renderPlain();
    assert.doesNotMatch(plain, /EXT-X-PART|PRELOAD-HINT|SERVER-CONTROL/);
    checkRules(parse(plain), plain);
  });

  test('a new run: the open segment closes short, the next carries DISCONTINUITY, numbers go on', () => {
    const pl = new LivePlaylist(shape);
    pl.startRun();
    feed(pl, 4); // seg0 whole, seg1 has one part
    pl.startRun(); // the pipeline restarted
    feed(pl, 3);
    const p = parse(pl.renderLL());
    assert.deepEqual(
      p.segments.map((s) => [s.msn, s.durationS.toFixed(3), s.discontinuity, s.cc]),
      [
        [0, '1.000', false, 0],
        [1, '0.333', false, 0],
        [2, '1.000', true, 1],
      ],
    );
    assert.equal(p.discontinuitySequence, 0);
  });

  test('runs that end before their first part add no discontinuity number: the sequence stays one per tag', () => {
    const pl = new LivePlaylist({ ...shape, windowSegments: 3 });
    pl.startRun();
    feed(pl, 6); // seg0, seg1 (cc 0)
    pl.startRun(); // a restart...
    pl.startRun(); // ...that never produced a part, restarted again
    pl.startRun();
    feed(pl, 12); // seg2..seg5 (one DISCONTINUITY tag before seg2)
    let p = parse(pl.renderPlain());
    // seg2 is first in the window: DISCONTINUITY-SEQUENCE + its own tag must give the cc it had
    // while seg1 was still listed before it (1), as a player merging the two playlists computes it
    assert.deepEqual(
      p.segments.map((s) => [s.msn, s.discontinuity, s.cc]),
      [
        [3, false, 1],
        [4, false, 1],
        [5, false, 1],
      ],
    );
    const before = new LivePlaylist({ ...shape, windowSegments: 3 });
    before.startRun();
    feed(before, 6);
    before.startRun();
    before.startRun();
    feed(before, 3); // seg0, seg1, DISCONTINUITY seg2
    p = parse(before.renderPlain());
    assert.deepEqual(
      p.segments.map((s) => [s.msn, s.discontinuity, s.cc]),
      [
        [0, false, 0],
        [1, false, 0],
        [2, true, 1],
      ],
    );
    feed(before, 3); // seg3: seg0 rolls off
    feed(before, 3); // seg4: seg1 rolls off, the tagged seg2 is first
    p = parse(before.renderPlain());
    assert.deepEqual(
      p.segments.map((s) => [s.msn, s.discontinuity, s.cc]),
      [
        [2, true, 1],
        [3, false, 1],
        [4, false, 1],
      ],
    );
  });

  test('the discontinuity sequence rises as tagged segments roll off the window', () => {
    const pl = new LivePlaylist({ ...shape, windowSegments: 3 });
    pl.startRun();
    feed(pl, 3);
    pl.startRun();
    feed(pl, 3);
    pl.startRun();
    feed(pl, 3);
    let p = parse(pl.renderPlain());
    assert.deepEqual(
      p.segments.map((s) => s.cc),
      [0, 1, 2],
    );
    assert.equal(p.discontinuitySequence, 0);
    feed(pl, 3); // seg0 rolls off: the first listed segment is the tagged seg1 (cc 1): DSN stays 0
    p = parse(pl.renderPlain());
    assert.equal(p.mediaSequence, 1);
    assert.equal(p.segments[0]!.discontinuity, true);
    assert.equal(p.discontinuitySequence, 0);
    feed(pl, 3); // seg1 rolls off: the first is the tagged seg2 (cc 2): DSN 1
    p = parse(pl.renderPlain());
    assert.equal(p.discontinuitySequence, 1);
    feed(pl, 3); // seg2 rolls off: the first is untagged seg3 (cc 2): DSN 2
    p = parse(pl.renderPlain());
    assert.equal(p.mediaSequence, 3);
    assert.equal(p.discontinuitySequence, 2);
    assert.equal(p.segments[0]!.cc, 2);
  });

  test('continuing from a saved state: numbers never restart at 0, the first segment is a discontinuity', () => {
    const pl = new LivePlaylist(shape, { nextMsn: 128, cc: 7, published: true });
    pl.startRun();
    feed(pl, 3);
    const p = parse(pl.renderLL());
    assert.equal(p.mediaSequence, 128);
    assert.equal(p.discontinuitySequence, 7);
    assert.equal(p.segments[0]!.discontinuity, true);
    assert.equal(p.segments[0]!.cc, 8);
  });

  test('a render parses back to the same segments (used to continue after a process restart)', () => {
    const pl = new LivePlaylist(shape);
    pl.startRun();
    feed(pl, 5);
    pl.startRun();
    feed(pl, 4);
    const p = parse(pl.renderLL());
    const again = new LivePlaylist(shape, {
      nextMsn: p.mediaSequence + p.segments.length,
      cc: p.segments.at(-1)!.cc,
      published: true,
      segments: p.segments,
    });
    assert.equal(parse(again.renderPlain()).mediaSequence, p.mediaSequence);
    assert.deepEqual(
      parse(again.renderPlain()).segments.map((s) => [s.uri, s.cc, s.discontinuity]),
      p.segments.map((s) => [s.uri, s.cc, s.discontinuity]),
    );
  });

  test('parts older than three target durations leave the LL playlist; segments stay', () => {
    const pl = new LivePlaylist(shape);
    pl.startRun();
    feed(pl, 15);
    const p = parse(pl.renderLL());
    assert.equal(p.segments.length, 5);
    assert.deepEqual(
      p.segments.map((s) => s.parts.length),
      [0, 0, 3, 3, 3],
    );
  });

  test('a segment never rounds above the target: long parts close it early', () => {
    const pl = new LivePlaylist({ targetS: 1, partTargetS: 0.6, partsPerSegment: 3, windowSegments: 5 });
    pl.startRun();
    feed(pl, 6, 0.6);
    const p = parse(pl.renderPlain());
    for (const s of p.segments) assert.ok(Math.round(s.durationS) <= 1, `${s.durationS}`);
  });

  test('property: any mix of runs and part lengths keeps every rule and never numbers backwards', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant<'run'>('run'), fc.double({ min: 0.02, max: 0.334, noNaN: true })), {
          minLength: 1,
          maxLength: 120,
        }),
        (ops) => {
          const pl = new LivePlaylist(shape);
          pl.startRun();
          const at = { t: T0 };
          let lastMsn = -1;
          let lastDsn = -1;
          for (const op of ops) {
            if (op === 'run') pl.startRun();
            else feed(pl, 1, op, at);
            for (const text of [pl.renderLL(), pl.renderPlain()]) {
              const p = parse(text);
              checkRules(p, text);
              // msn of every listed segment is consecutive
              for (const [i, s] of p.segments.entries()) assert.equal(s.msn, p.mediaSequence + i);
            }
            const p = parse(pl.renderLL());
            assert.ok(p.mediaSequence >= lastMsn || p.segments.length === 0);
            assert.ok(p.discontinuitySequence >= lastDsn);
            if (p.segments.length > 0) lastMsn = p.mediaSequence;
            lastDsn = p.discontinuitySequence;
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('the parser refuses what is not a playlist and ignores tags it does not know', () => {
    assert.equal(parseMediaPlaylist(''), undefined);
    assert.equal(parseMediaPlaylist('\0\0garbage'), undefined);
    const p = parse('#EXTM3U\n#EXT-X-FUTURE-TAG:1\n#EXT-X-MEDIA-SEQUENCE:9\n#EXTINF:1.0,\na.ts\n');
    assert.equal(p.segments[0]!.msn, 9);
  });
});
