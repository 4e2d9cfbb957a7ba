// Disk-full protection for the kit store. LMDB grows its file as it needs; when the volume is full a
// commit fails (lmdb-js rejects with "Commit failed" and an EIO/ENOSPC behind it) and nothing of that
// transaction is written. We refuse writes a little before that point (a reserve, so sync can still
// commit the deletes that free pages), and map a failed commit to the same STORE_FULL.
import fs from 'node:fs';
import { KitError } from '../../core/errors.ts';

export class StoreGuard {
  private freeBytes = Number.POSITIVE_INFINITY;
  private checkedAt = 0;
  private fullSince: number | null = null;
  /** free bytes seen when the last commit failed: more than this is space returning */
  private freeAtFailure = Number.POSITIVE_INFINITY;

  constructor(
    /** lmdb root: its `committed` thenable lets us observe the failed batch's internal promise */
    private readonly root: { committed: PromiseLike<unknown> } | null,
    private readonly dir: string,
    private readonly reserveBytes: number,
    private readonly intervalMs = 1000,
  ) {}

  private refresh(now: number): void {
    if (now - this.checkedAt < this.intervalMs) return;
    this.checkedAt = now;
    try {
      const s = fs.statfsSync(this.dir);
      this.freeBytes = s.bavail * s.bsize;
    } catch {
      this.freeBytes = Number.POSITIVE_INFINITY;
    }
  }

  /** Throws STORE_FULL while the volume is below its reserve, or while the last commit failed for space. */
  assertWritable(now = Date.now()): void {
    this.refresh(now);
    if (this.freeBytes < this.reserveBytes) {
      throw new KitError('STORE_FULL', 'the data volume is full: orders resume when space returns', {
        freeBytes: this.freeBytes,
        reserveBytes: this.reserveBytes,
      });
    }
    if (this.fullSince !== null && now - this.fullSince < this.intervalMs) {
      throw new KitError('STORE_FULL', 'the data volume is full: orders resume when space returns');
    }
    this.fullSince = null;
  }

  /** Map an lmdb commit failure to STORE_FULL; anything else passes through. */
  translate(err: unknown, now = Date.now()): unknown {
    if (isCommitFailure(err)) {
      // lmdb-js also rejects the failed batch's own commit promise, which nothing else awaits; observe it
      // so that the failure we already answered with 507 does not surface as an unhandled rejection
      this.root?.committed.then(undefined, () => {});
      this.fullSince = now;
      this.checkedAt = 0;
      this.refresh(now);
      this.freeAtFailure = this.freeBytes;
      return new KitError('STORE_FULL', 'the kit store could not commit (volume full?): nothing was written');
    }
    return err;
  }

  /** Full below the reserve, and after a failed commit until the volume shows more free space than then
   *  (or the next order tries again, see assertWritable). */
  status(now = Date.now()): { freeBytes: number | null; reserveBytes: number; full: boolean } {
    this.refresh(now);
    const stillFull = this.fullSince !== null && this.freeBytes <= this.freeAtFailure;
    return {
      freeBytes: Number.isFinite(this.freeBytes) ? this.freeBytes : null,
      reserveBytes: this.reserveBytes,
      full: this.freeBytes < this.reserveBytes || stillFull,
    };
  }
}

export function isCommitFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const e = err as Error & { code?: unknown; commitError?: Promise<unknown> };
  if (e.commitError) {
    // lmdb-js also rejects this promise; we handled the failure here, so keep it from crashing the process
    e.commitError.catch(() => {});
    return true;
  }
  return (
    e.message.includes('Commit failed') ||
    e.message.includes('MDB_MAP_FULL') ||
    e.code === 'ENOSPC' ||
    e.code === 'MDB_MAP_FULL'
  );
}
