// Where a sale window stands at an instant. The instant must come from the kit's trusted clock
// (docs/drops.md#trusted-time): a kit whose clock is not trusted sells no time-boxed SKU.
import { parseIsoTime } from './contracts/catalog.ts';
import type { SaleWindow } from './store/open.ts';

export type SaleState = 'open' | 'upcoming' | 'ended' | 'clock_untrusted';

/** `open` when there is no window; `clock_untrusted` for a window when the clock is not trusted. */
export function saleStateAt(window: SaleWindow | undefined, now: number, clockTrusted: boolean): SaleState {
  if (!window) return 'open';
  if (!clockTrusted) return 'clock_untrusted';
  if (now < parseIsoTime(window.startsAt)) return 'upcoming';
  if (now >= parseIsoTime(window.endsAt)) return 'ended';
  return 'open';
}
