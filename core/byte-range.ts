// One `Range: bytes=…` request header against a resource of `size` bytes, for the two places that serve
// content-addressed images (the hub's /v1/images/:sha256 and checkout's /media/:sha256). Only a single
// range is honoured: that is what a resuming download sends; anything else gets the whole body.
import { KitError } from './errors.ts';

export type ByteRange = { start: number; end: number } | undefined;

/**
 * undefined: answer the whole body (no header, or a form we do not serve); {start, end} inclusive:
 * answer 206. A range that starts at or past the end throws RANGE_NOT_SATISFIABLE.
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  let start: number;
  let end: number;
  if (a === '') {
    // a suffix: the last N bytes
    const n = Number(b);
    if (n === 0) throw new KitError('RANGE_NOT_SATISFIABLE', 'empty suffix range', { size });
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return undefined;
  }
  if (start >= size)
    throw new KitError('RANGE_NOT_SATISFIABLE', `range starts at ${start} of ${size} bytes`, { size });
  return { start, end };
}
