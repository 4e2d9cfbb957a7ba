import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeIdTime, ID_PATTERN, MonotonicIds } from '../../core/ids.ts';

describe('MonotonicIds', () => {
  test('ids are unique, well-formed and strictly increasing within one millisecond', () => {
    const ids = new MonotonicIds(0, () => 1_700_000_000_000);
    const out = Array.from({ length: 5000 }, () => ids.next());
    assert.equal(new Set(out).size, out.length);
    for (const id of out) assert.match(id, new RegExp(ID_PATTERN));
    for (let i = 1; i < out.length; i++) assert.ok(out[i - 1]! < out[i]!, `${out[i - 1]} < ${out[i]}`);
    assert.equal(decodeIdTime(out[0]!), 1_700_000_000_000);
  });

  test('a wall clock that jumps backwards does not make ids go backwards', () => {
    let now = 1_800_000_000_000;
    const ids = new MonotonicIds(0, () => now);
    const before = ids.next();
    now -= 3_600_000; // NTP corrects a clock that ran an hour fast
    const after = [ids.next(), ids.next()];
    assert.ok(before < after[0]! && after[0]! < after[1]!);
    now += 7_200_000;
    const later = ids.next();
    assert.ok(after[1]! < later);
    assert.equal(decodeIdTime(later), now);
  });

  test('a restart with an earlier clock continues above the persisted high-water mark', () => {
    const first = new MonotonicIds(0, () => 1_800_000_000_000);
    const last = first.next();
    // the Pi reboots without an RTC: its clock says 1970 + a few seconds
    const second = new MonotonicIds(first.highWater, () => 5_000);
    const next = second.next();
    assert.ok(last < next, `${last} < ${next}`);
  });
});
