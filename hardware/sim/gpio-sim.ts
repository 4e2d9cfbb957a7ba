// A simulated GPIO chip: LED states are readable, button presses injectable. It applies edge
// filtering, debounce and active-low the way the kernel/onoff do, on timers that node:test's
// mock.timers can drive.
import { KitError } from '../../core/errors.ts';
import type { GpioLineRef } from '../boards/index.ts';
import type { GpioChipProvider, GpioLine, GpioOpenOptions, GpioValue } from '../gpio/types.ts';

export interface GpioWrite {
  value: GpioValue;
  atMs: number;
}

interface SimLineState {
  name: string;
  ref: GpioLineRef | undefined;
  opts: GpioOpenOptions | undefined;
  /** Electrical level on the pin. */
  physical: GpioValue;
  /** Last value reported to watchers, so repeated levels are not reported twice. */
  reported: GpioValue;
  open: boolean;
  injected: boolean;
  history: GpioWrite[];
  watchers: Set<(value: GpioValue, atMs: number) => void>;
  debounce: ReturnType<typeof setTimeout> | undefined;
}

const invert = (v: GpioValue): GpioValue => (v === 1 ? 0 : 1);

export class SimGpio implements GpioChipProvider {
  private readonly lines = new Map<string, SimLineState>();
  private readonly historyLimit: number;

  constructor(opts: { historyLimit?: number } = {}) {
    this.historyLimit = opts.historyLimit ?? 10_000;
  }

  async open(name: string, ref: GpioLineRef, opts: GpioOpenOptions): Promise<GpioLine> {
    const existing = this.lines.get(name);
    if (existing?.open) throw new KitError('HW_UNAVAILABLE', `GPIO line '${name}' is already open (busy)`);
    const st = existing ?? this.blank(name);
    st.ref = ref;
    st.opts = opts;
    st.open = true;
    // An input keeps whatever was injected before it was opened (a button held at boot); otherwise
    // it rests released, which on an active-low (pulled-up) line is a high pin.
    if (opts.direction === 'out' || !st.injected) st.physical = opts.activeLow ? 1 : 0;
    st.reported = this.logical(st);
    this.lines.set(name, st);
    return this.handle(st);
  }

  /** The logical value the application sees (active-low applied). Unknown lines read 0. */
  level(name: string): GpioValue {
    const st = this.lines.get(name);
    return st ? this.logical(st) : 0;
  }

  /** The electrical level on the pin. */
  physical(name: string): GpioValue {
    return this.lines.get(name)?.physical ?? 0;
  }

  /** Every logical value written to an output, with its time (Date.now(), so mock-able). */
  history(name: string): GpioWrite[] {
    return [...(this.lines.get(name)?.history ?? [])];
  }

  clearHistory(name?: string): void {
    for (const st of this.lines.values()) if (!name || st.name === name) st.history.length = 0;
  }

  isOpen(name: string): boolean {
    return this.lines.get(name)?.open ?? false;
  }

  /** Drive an input to a logical value (1 = pressed, whatever the wiring polarity). */
  setInput(name: string, v: GpioValue): void {
    const st = this.lines.get(name) ?? this.blank(name);
    this.lines.set(name, st);
    if (st.opts && st.opts.direction !== 'in') {
      throw new KitError('BAD_REQUEST', `GPIO line '${name}' is an output; cannot inject input`);
    }
    const physical = st.opts?.activeLow ? invert(v) : v;
    st.injected = true;
    if (physical === st.physical) return;
    st.physical = physical;
    this.edge(st);
  }

  /** Press for `ms` then release; resolves after release (advance mock timers to get there). */
  press(name: string, ms = 100): Promise<void> {
    this.setInput(name, 1);
    return new Promise((resolve) => {
      setTimeout(() => {
        this.setInput(name, 0);
        resolve();
      }, ms);
    });
  }

  /** Contact bounce: toggles every `intervalMs` for `toggles` times, ending on `finalValue`. */
  bounce(name: string, finalValue: GpioValue, toggles = 5, intervalMs = 1): void {
    let v: GpioValue = invert(finalValue);
    for (let i = 0; i < toggles; i++) {
      const value = v;
      setTimeout(() => this.setInput(name, value), i * intervalMs);
      v = invert(v);
    }
    setTimeout(() => this.setInput(name, finalValue), toggles * intervalMs);
  }

  private blank(name: string): SimLineState {
    return {
      name,
      ref: undefined,
      opts: undefined,
      physical: 0,
      reported: 0,
      open: false,
      injected: false,
      history: [],
      watchers: new Set(),
      debounce: undefined,
    };
  }

  private logical(st: SimLineState): GpioValue {
    return st.opts?.activeLow ? invert(st.physical) : st.physical;
  }

  private edge(st: SimLineState): void {
    if (!st.open || !st.opts) return;
    const debounceMs = st.opts.debounceMs ?? 0;
    if (debounceMs <= 0) {
      this.report(st);
      return;
    }
    // Report only once the level has held for debounceMs, the way onoff's debounceTimeout does.
    if (st.debounce) clearTimeout(st.debounce);
    st.debounce = setTimeout(() => {
      st.debounce = undefined;
      this.report(st);
    }, debounceMs);
  }

  private report(st: SimLineState): void {
    const value = this.logical(st);
    if (value === st.reported) return;
    st.reported = value;
    const edge = st.opts?.edge ?? 'none';
    const wanted =
      edge === 'both' || (edge === 'rising' && value === 1) || (edge === 'falling' && value === 0);
    if (!wanted) return;
    const at = Date.now();
    for (const cb of [...st.watchers]) cb(value, at);
  }

  private handle(st: SimLineState): GpioLine {
    const closedError = () => new KitError('HW_UNAVAILABLE', `GPIO line '${st.name}' is closed`);
    return {
      name: st.name,
      read: async () => {
        if (!st.open) throw closedError();
        return this.logical(st);
      },
      write: async (v: GpioValue) => {
        if (!st.open) throw closedError();
        if (st.opts?.direction !== 'out') {
          throw new KitError('BAD_REQUEST', `GPIO line '${st.name}' is an input; cannot write`);
        }
        if (v !== 0 && v !== 1)
          throw new KitError('BAD_REQUEST', `GPIO value must be 0 or 1, got ${String(v)}`);
        st.physical = st.opts.activeLow ? invert(v) : v;
        st.history.push({ value: v, atMs: Date.now() });
        if (st.history.length > this.historyLimit)
          st.history.splice(0, st.history.length - this.historyLimit);
        this.report(st);
      },
      watch: (cb) => {
        st.watchers.add(cb);
        return () => st.watchers.delete(cb);
      },
      close: async () => {
        if (st.debounce) clearTimeout(st.debounce);
        st.debounce = undefined;
        st.watchers.clear();
        st.open = false;
      },
    };
  }
}
