// Order ids: 26-char Crockford base32 (ULID layout: 48-bit ms time + 80 bits), unique, sortable by
// creation, and still increasing when the wall clock jumps backwards (a Pi has no RTC and boots with
// a wrong clock until NTP). The generator never goes below its high-water mark, which the caller
// persists with each order so a reboot with an earlier clock does not go backwards either.
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TIME_LEN = 10;
const RAND_LEN = 16;

function encodeTime(ms: number): string {
  let out = '';
  let t = ms;
  for (let i = 0; i < TIME_LEN; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

export function decodeIdTime(id: string): number {
  let t = 0;
  for (const ch of id.slice(0, TIME_LEN)) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) return Number.NaN;
    t = t * 32 + v;
  }
  return t;
}

export const ID_PATTERN = '^[0-9A-HJKMNP-TV-Z]{26}$';

export class MonotonicIds {
  private lastTime: number;
  private rand: number[] = [];
  private readonly clock: () => number;

  /** `highWater` is the time part of the last id issued (persisted); `clock` is injectable for tests. */
  constructor(highWater = 0, clock: () => number = Date.now) {
    this.lastTime = highWater;
    this.clock = clock;
  }

  /** The time part of the most recent id: persist it with the order that carries the id. */
  get highWater(): number {
    return this.lastTime;
  }

  next(): string {
    const now = this.clock();
    if (now > this.lastTime) {
      this.lastTime = now;
      this.rand = Array.from(randomBytes(RAND_LEN), (b) => b & 31);
      // leave headroom so that increments within one millisecond never overflow in practice
      this.rand[0] = (this.rand[0] ?? 0) & 15;
    } else {
      this.increment();
    }
    return encodeTime(this.lastTime) + this.rand.map((v) => ALPHABET[v]).join('');
  }

  private increment(): void {
    if (this.rand.length === 0) {
      // first id after a restart whose clock is behind the persisted mark: we do not know the random
      // part of the last id issued, so step past its millisecond instead
      this.lastTime += 1;
      this.rand = Array.from(randomBytes(RAND_LEN), (b) => b & 15);
      return;
    }
    for (let i = RAND_LEN - 1; i >= 0; i--) {
      const v = (this.rand[i] ?? 0) + 1;
      if (v < 32) {
        this.rand[i] = v;
        return;
      }
      this.rand[i] = 0;
    }
    // 80 bits exhausted within one millisecond: borrow the next millisecond
    this.lastTime += 1;
  }
}
