// Product images from the hub into the kit's data dir (docs/architecture.md#product-media), the lowest
// priority work sync does. After a catalog arrives, every rendition it names by sha256 and that is not
// yet on disk is fetched over HTTP from the hub's GET /v1/images/:sha256:
//  - lowest priority: one file at a time, never while checkout is busy (load.ts: a download in flight
//    is cut and resumes later), never when the data volume is as low as telemetry's give-way mark
//    (core/priorities.ts), never while the primary link is metered (metered.ts: a download in flight
//    is cut, resumes on an unmetered link), and on a connection of its own, so the MQTT link that carries orders never
//    queues behind image bytes;
//  - resumable: bytes go to `<sha256>.part`; the next attempt asks for `Range: bytes=<size>-`;
//  - verified: the whole file's sha256 must equal its name before it is fsynced and renamed into place
//    (the hash comes from a catalog the hub signed); a mismatch is dropped, never served;
//  - within a disk budget: images the current catalog no longer names are evicted (oldest first) to
//    make room; what still does not fit is reported, not fetched.
// Why HTTP and not the MQTT link: ranges give resumption for free, the broker's packet limit and
// persistent session are for small messages that must not be lost, and integrity does not depend on
// the transport (the hash is checked here).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  catalogImageHashes,
  isSha256Hex,
  PRODUCT_MEDIA_STATUS_FILE,
  type ProductMediaStatusT,
  productMediaStatus,
} from '../../core/contracts/product-media.ts';
import { fsyncDir, mkdirDurable, writeFileDurable } from '../../core/durable-file.ts';
import { moduleLogger } from '../../core/logger.ts';
import type { DiskWatch } from '../../core/priorities.ts';
import { type KitStore, readStoredCatalog } from '../../core/store/index.ts';
import type { LoadSignal } from './load.ts';

const log = moduleLogger('sync-media');

/** A rendition is never this large (the hub renders at most 1280 px WebP): a longer answer is cut. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
const RETRY_MS = 10 * 60_000;

export interface MediaFetchOptions {
  /** `<data>/product-media` (core/data-dir.ts) */
  dir: string;
  /** the hub's HTTP API, without a trailing slash */
  hubHttpUrl: string;
  budgetBytes: number;
  /** checkout first: nothing is fetched while it is busy */
  load?: LoadSignal | undefined;
  /** free space: nothing is fetched below telemetry's give-way mark */
  disk?: Pick<DiskWatch, 'givesWay'> | undefined;
  /** the primary link is metered (metered.ts): nothing is fetched, a download in flight is cut */
  uplink?: { holds(): boolean } | undefined;
  /** per request */
  timeoutMs?: number;
  /** after a hash mismatch or an error answer for an image, wait this long before asking again */
  retryMs?: number;
}

type State = ProductMediaStatusT['state'];

export class MediaFetcher {
  private status: ProductMediaStatusT;
  private mismatched = new Set<string>();
  private stopped = false;
  /** hash → when to try again: a damaged copy at the hub or a 404 is not fetched again every pass */
  private notBefore = new Map<string, number>();
  private written = false;
  private current: AbortController | undefined;

  constructor(
    private readonly store: KitStore,
    private readonly opts: MediaFetchOptions,
  ) {
    mkdirDurable(opts.dir);
    this.status = {
      v: 1,
      updatedAt: new Date().toISOString(),
      catalog: null,
      wanted: 0,
      warm: 0,
      bytes: 0,
      budgetBytes: opts.budgetBytes,
      didNotFit: [],
      mismatched: [],
      state: 'idle',
    };
  }

  get lastStatus(): ProductMediaStatusT {
    return this.status;
  }

  /** Abort a download in flight (its part file stays for the next start). */
  stop(): void {
    this.stopped = true;
    this.current?.abort();
  }

  /** One pass over the current catalog's images; what it did is written to status.json. */
  async pass(): Promise<ProductMediaStatusT> {
    const cat = readStoredCatalog(this.store);
    const wanted = cat ? catalogImageHashes(cat.items) : [];
    const wantedSet = new Set(wanted);
    const didNotFit: string[] = [];
    let state: State = 'idle';
    let lastError: string | undefined;
    this.dropStrayParts(wantedSet);
    for (const hash of wanted) {
      if (this.stopped) break;
      if (this.has(hash)) continue;
      if ((this.notBefore.get(hash) ?? 0) > Date.now()) continue;
      if (this.opts.load?.busy()) {
        state = 'waiting-for-checkout';
        break;
      }
      if (this.opts.disk?.givesWay('telemetry')) {
        state = 'disk-low';
        break;
      }
      if (this.opts.uplink?.holds()) {
        state = 'held-metered';
        break;
      }
      const outcome = await this.fetchOne(hash, wantedSet).catch((err: Error) => ({
        kind: 'error' as const,
        message: err.message,
      }));
      if (outcome.kind === 'done') {
        this.mismatched.delete(hash);
        this.notBefore.delete(hash);
      } else if (outcome.kind === 'no-room') didNotFit.push(hash);
      else if (outcome.kind === 'mismatch') {
        this.mismatched.add(hash);
        this.notBefore.set(hash, Date.now() + (this.opts.retryMs ?? RETRY_MS));
        lastError = `MEDIA_HASH_MISMATCH: ${hash}`;
      } else if (outcome.kind === 'busy') {
        state = 'waiting-for-checkout';
        break;
      } else if (outcome.kind === 'metered') {
        state = 'held-metered';
        break;
      } else if (outcome.kind === 'unreachable' && 'message' in outcome) {
        state = 'hub-unreachable';
        lastError = outcome.message;
        break;
      } else if ('message' in outcome) {
        // the hub answered, but not with this image: later, not next pass
        this.notBefore.set(hash, Date.now() + (this.opts.retryMs ?? RETRY_MS));
        lastError = outcome.message;
      }
    }
    const warm = wanted.filter((h) => this.has(h)).length;
    if (state === 'idle' && warm < wanted.length && didNotFit.length === 0 && !lastError) state = 'fetching';
    const next: ProductMediaStatusT = {
      v: 1,
      updatedAt: new Date().toISOString(),
      catalog: cat ? { eventId: cat.eventId, version: cat.version } : null,
      wanted: wanted.length,
      warm,
      bytes: this.usedBytes(),
      budgetBytes: this.opts.budgetBytes,
      didNotFit,
      mismatched: [...this.mismatched].filter((h) => wantedSet.has(h) && !this.has(h)),
      state,
      ...(lastError ? { lastError } : {}),
    };
    // written when something changed, not every pass: its fsyncs would compete with checkout's commits
    const same =
      JSON.stringify({ ...next, updatedAt: '' }) === JSON.stringify({ ...this.status, updatedAt: '' });
    this.status = next;
    if (same && this.written) return this.status;
    try {
      // the file preflight reads: written only in the declared shape
      if (!productMediaStatus.check(this.status))
        throw new Error(productMediaStatus.errors(this.status).join('; '));
      writeFileDurable(
        path.join(this.opts.dir, PRODUCT_MEDIA_STATUS_FILE),
        `${JSON.stringify(this.status)}\n`,
      );
      this.written = true;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'product media status not written');
    }
    return this.status;
  }

  private file(hash: string): string {
    return path.join(this.opts.dir, hash);
  }

  private part(hash: string): string {
    return path.join(this.opts.dir, `${hash}.part`);
  }

  private has(hash: string): boolean {
    return fs.existsSync(this.file(hash));
  }

  /** Verified images and parts in the dir: name, bytes, mtime. */
  private entries(): { name: string; hash: string; bytes: number; mtimeMs: number }[] {
    const out: { name: string; hash: string; bytes: number; mtimeMs: number }[] = [];
    for (const name of fs.readdirSync(this.opts.dir)) {
      const hash = name.endsWith('.part') ? name.slice(0, -5) : name;
      if (!isSha256Hex(hash)) continue;
      try {
        const st = fs.statSync(path.join(this.opts.dir, name));
        out.push({ name, hash, bytes: st.size, mtimeMs: st.mtimeMs });
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  private usedBytes(): number {
    return this.entries().reduce((n, e) => n + e.bytes, 0);
  }

  /** A partial download of an image the catalog no longer names is worth nothing. */
  private dropStrayParts(wanted: Set<string>): void {
    for (const e of this.entries()) {
      if (e.name.endsWith('.part') && !wanted.has(e.hash))
        fs.rmSync(path.join(this.opts.dir, e.name), { force: true });
    }
  }

  /** Make room for `need` more bytes by evicting unreferenced images, oldest first; false if it cannot. */
  private makeRoom(need: number, wanted: Set<string>): boolean {
    const entries = this.entries();
    let used = entries.reduce((n, e) => n + e.bytes, 0);
    if (used + need <= this.opts.budgetBytes) return true;
    const evictable = entries.filter((e) => !wanted.has(e.hash)).sort((a, b) => a.mtimeMs - b.mtimeMs);
    const freeable = evictable.reduce((n, e) => n + e.bytes, 0);
    if (used - freeable + need > this.opts.budgetBytes) return false;
    for (const e of evictable) {
      if (used + need <= this.opts.budgetBytes) break;
      fs.rmSync(path.join(this.opts.dir, e.name), { force: true });
      used -= e.bytes;
      log.info({ hash: e.hash, bytes: e.bytes }, 'evicted an image the catalog no longer names');
    }
    return true;
  }

  private async fetchOne(
    hash: string,
    wanted: Set<string>,
  ): Promise<
    | { kind: 'done' | 'no-room' | 'mismatch' | 'busy' | 'metered' }
    | { kind: 'unreachable' | 'error'; message: string }
  > {
    const part = this.part(hash);
    let have = 0;
    try {
      have = fs.statSync(part).size;
    } catch {
      have = 0;
    }
    const ac = new AbortController();
    this.current = ac;
    const timeout = setTimeout(() => ac.abort(new Error('timed out')), this.opts.timeoutMs ?? 60_000);
    try {
      let res: Response;
      try {
        res = await fetch(`${this.opts.hubHttpUrl}/v1/images/${hash}`, {
          signal: ac.signal,
          headers: have > 0 ? { range: `bytes=${have}-` } : {},
        });
      } catch (err) {
        return { kind: 'unreachable', message: `hub ${this.opts.hubHttpUrl}: ${(err as Error).message}` };
      }
      if (res.status === 416) {
        // the part is already whole (or longer than the image): the hash decides below
        await res.body?.cancel();
        return this.finish(hash);
      }
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel();
        return { kind: 'error', message: `hub answered ${res.status} for image ${hash}` };
      }
      let append = false;
      let total = Number(res.headers.get('content-length') ?? Number.NaN);
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== have) {
          await res.body?.cancel();
          fs.rmSync(part, { force: true });
          return { kind: 'error', message: `hub answered a range other than asked for image ${hash}` };
        }
        append = true;
        total = Number(m[3]);
      }
      if (!Number.isSafeInteger(total) || total > MAX_FILE_BYTES) {
        await res.body?.cancel();
        return { kind: 'error', message: `image ${hash}: size ${total} not acceptable` };
      }
      const need = total - (append ? have : 0);
      if (!append) fs.rmSync(part, { force: true });
      if (!this.makeRoom(need, wanted)) {
        await res.body?.cancel();
        fs.rmSync(part, { force: true });
        return { kind: 'no-room' };
      }
      const fd = fs.openSync(part, append ? 'a' : 'w', 0o644);
      let written = append ? have : 0;
      let cut: 'busy' | 'metered' | undefined;
      try {
        if (res.body) {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            written += chunk.length;
            if (written > total) throw new Error(`image ${hash}: hub sent more than ${total} bytes`);
            for (let off = 0; off < chunk.length; ) off += fs.writeSync(fd, chunk, off, chunk.length - off);
            // checkout started selling: stop here, the part continues next time
            if (this.opts.load?.busy()) {
              cut = 'busy';
              ac.abort();
              break;
            }
            // the primary link turned metered: the part continues on an unmetered one
            if (this.opts.uplink?.holds()) {
              cut = 'metered';
              ac.abort();
              break;
            }
          }
        }
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      if (cut) return { kind: cut };
      if (written < total) return { kind: 'error', message: `image ${hash}: ${written} of ${total} bytes` };
      return this.finish(hash);
    } catch (err) {
      // a cut connection leaves what was written in the part file
      if (this.stopped) return { kind: 'busy' };
      return { kind: 'unreachable', message: `image ${hash}: ${(err as Error).message}` };
    } finally {
      clearTimeout(timeout);
      this.current = undefined;
    }
  }

  /** The part's sha256 against its name: into place (durably) or dropped. */
  private async finish(hash: string): Promise<{ kind: 'done' | 'mismatch' }> {
    const part = this.part(hash);
    const h = createHash('sha256');
    for await (const chunk of fs.createReadStream(part)) h.update(chunk as Buffer);
    if (h.digest('hex') !== hash) {
      fs.rmSync(part, { force: true });
      log.warn({ code: 'MEDIA_HASH_MISMATCH', hash }, 'image bytes do not match their hash: dropped');
      return { kind: 'mismatch' };
    }
    // the part was fsynced when its last byte was written; the rename makes it visible whole
    fs.renameSync(part, this.file(hash));
    fsyncDir(this.opts.dir);
    return { kind: 'done' };
  }
}
