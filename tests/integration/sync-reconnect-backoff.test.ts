// Sync's reconnect path (services/sync/link.ts) against a real refused connection: the delays it
// schedules between reconnects grow (each in its doubling band [ceiling/2, ceiling]) until the cap.
// A constant delay, or one that never grows past the first band, fails here.
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { HubLink } from '../../services/sync/link.ts';
import { freePort, waitFor } from '../support/hub-link.ts';

const MIN = 20;
const MAX = 320;

/** The bands a growing backoff's delays must fall in, attempt by attempt. */
function bands(n: number): Array<[number, number]> {
  return Array.from({ length: n }, (_, i) => {
    const ceiling = Math.min(MAX, MIN * 2 ** i);
    return [ceiling / 2, ceiling];
  });
}

function inBands(delays: number[]): string | undefined {
  const b = bands(delays.length);
  for (const [i, d] of delays.entries()) {
    const [lo, hi] = b[i]!;
    if (d < lo || d > hi) return `reconnect ${i}: ${d} ms outside [${lo}, ${hi}] (all: ${delays.join(', ')})`;
  }
  return undefined;
}

test('sync reconnects to a refused hub with growing delays, capped', async () => {
  // self-check of the judge: a constant backoff and a stuck one are refused
  assert.ok(inBands([MIN, MIN, MIN, MIN, MIN, MIN]));
  assert.ok(inBands([15, 20, 40, 40, 40, 40]));
  assert.equal(inBands([10, 40, 80, 160, 320, 320]), undefined);

  const port = await freePort(); // nobody listens: every connect is refused at once
  const timers = mock.method(globalThis, 'setTimeout');
  const link = new HubLink(
    { kitId: 'kit-backoff', hubUrl: `mqtt://127.0.0.1:${port}`, backoffMinMs: MIN, backoffMaxMs: MAX },
    { up: () => {}, down: () => {}, message: () => {}, changed: () => {} },
  );
  try {
    link.open();
    await waitFor(() => link.reconnects >= 8, 20_000, '8 reconnects');
  } finally {
    await link.close();
    timers.mock.restore();
  }
  // the delays link.ts scheduled for its reconnects (not mqtt.js's connect timeouts)
  const delays = timers.mock.calls
    .filter((c) => String(c.arguments[0]).includes('this.reconnect()'))
    .map((c) => c.arguments[1] as number);
  assert.ok(delays.length >= 8, `reconnect delays seen: ${delays.join(', ')}`);
  assert.equal(inBands(delays), undefined, inBands(delays));
  assert.ok(
    delays.slice(-3).every((d) => d >= MAX / 2),
    `capped delays: ${delays.join(', ')}`,
  );
});
