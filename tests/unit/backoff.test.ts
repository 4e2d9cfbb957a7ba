// core/backoff.ts: the one backoff (sync's reconnects use it with equal jitter, the hub's ledger
// writes retry through it without).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff, backoffDelay, retryWithBackoff } from '../../core/backoff.ts';

const reconnect = { initialMs: 100, maxMs: 1000, jitter: 'equal' } as const;

test('backoff doubles up to its ceiling, with jitter in the upper half', () => {
  const lo = new Backoff(reconnect, () => 0);
  assert.deepEqual(
    [lo.next(), lo.next(), lo.next(), lo.next(), lo.next(), lo.next()],
    [50, 100, 200, 400, 500, 500],
  );
  const hi = new Backoff(reconnect, () => 1);
  assert.deepEqual([hi.next(), hi.next(), hi.next(), hi.next(), hi.next()], [100, 200, 400, 800, 1000]);
  hi.reset();
  assert.equal(hi.next(), 100);
  assert.equal(hi.attempts, 1);
});

test('with real jitter every delay stays in its band and the delays grow until the ceiling', () => {
  const rounds = 400;
  const means: number[] = [];
  for (let attempt = 0; attempt < 6; attempt++) {
    const ceiling = Math.min(1000, 100 * 2 ** attempt);
    let sum = 0;
    for (let i = 0; i < rounds; i++) {
      const d = backoffDelay(attempt, reconnect);
      assert.ok(
        d >= ceiling / 2 && d <= ceiling,
        `attempt ${attempt}: ${d} outside [${ceiling / 2}, ${ceiling}]`,
      );
      sum += d;
    }
    means.push(sum / rounds);
  }
  // the band doubles, so the mean delay of each attempt is well above the one before, up to the cap
  for (let a = 1; a < 4; a++) {
    assert.ok(means[a]! > means[a - 1]! * 1.5, `attempt ${a} does not grow: ${means.join(', ')}`);
  }
  // past the ceiling the band stops moving
  assert.ok(Math.abs(means[5]! - means[4]!) < 100, `capped attempts differ: ${means.join(', ')}`);
  // one stateful sequence grows too: its ceilings (peek) double until the cap
  const b = new Backoff(reconnect);
  const ceilings: number[] = [];
  for (let i = 0; i < 6; i++) {
    ceilings.push(b.peek());
    b.next();
  }
  assert.deepEqual(ceilings, [100, 200, 400, 800, 1000, 1000]);
});

test('retryWithBackoff waits 100 ms doubling to 5 s without jitter, and gives up on what is not retryable', async () => {
  const waits: number[] = [];
  let calls = 0;
  const result = await retryWithBackoff(
    async () => {
      if (++calls < 9) throw Object.assign(new Error('connection lost'), { code: '08006' });
      return 'committed';
    },
    {
      policy: { initialMs: 100, maxMs: 5000 },
      retryable: () => true,
      sleep: async (ms) => {
        waits.push(ms);
      },
    },
  );
  assert.equal(result, 'committed');
  assert.deepEqual(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);

  const refused = Object.assign(new Error('violates check constraint'), { code: '23514' });
  await assert.rejects(
    retryWithBackoff(
      async () => {
        throw refused;
      },
      { policy: { initialMs: 100, maxMs: 5000 }, retryable: () => false, sleep: async () => {} },
    ),
    (err) => err === refused,
  );
  let stop = false;
  let tries = 0;
  await assert.rejects(
    retryWithBackoff(
      async () => {
        tries++;
        stop = true;
        throw new Error('down');
      },
      {
        policy: { initialMs: 100, maxMs: 5000 },
        retryable: () => true,
        shouldStop: () => stop,
        sleep: async () => {},
      },
    ),
    /down/,
  );
  assert.equal(tries, 1, 'a stopping caller is not retried');
});
