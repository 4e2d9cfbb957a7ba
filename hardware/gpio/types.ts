// The GPIO seam: firmware talks to lines by board-profile name; a provider (onoff, libgpiod, or the
// simulator) turns a {chip label, line offset} into something readable, writable and watchable.
import type { GpioLineRef } from '../boards/index.ts';

export type GpioValue = 0 | 1;
export type GpioEdge = 'none' | 'rising' | 'falling' | 'both';

export interface GpioLine {
  /** The board-profile name the line was opened under (`ledGreen`, `buttonA` …). */
  readonly name: string;
  read(): Promise<GpioValue>;
  write(v: GpioValue): Promise<void>;
  /** Called on every (debounced) edge the line was opened for; returns an unsubscribe function. */
  watch(cb: (value: GpioValue, atMs: number) => void): () => void;
  close(): Promise<void>;
}

export interface GpioOpenOptions {
  direction: 'in' | 'out';
  edge?: GpioEdge;
  debounceMs?: number;
  activeLow?: boolean;
}

export interface GpioChipProvider {
  open(name: string, ref: GpioLineRef, opts: GpioOpenOptions): Promise<GpioLine>;
}
