// Keeps a serial link open across unplug/replug: on close or a failed open it retries with a
// growing delay, and recovers by itself when the adapter comes back (Signal K does the same).
import { type BackoffPolicy, backoffDelay } from '../../core/backoff.ts';
import { KitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import type { SerialLink } from './types.ts';

const log = moduleLogger('hardware.serial');

export interface BackoffOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
}

export type LinkState =
  | { state: 'opening'; attempt: number }
  | { state: 'open' }
  | { state: 'closed'; reason: string; retryInMs: number | undefined; openFailed?: boolean };

/** The serial link's retry delays as a policy of the one backoff (core/backoff.ts): 250 ms doubling to 30 s. */
export function serialBackoff(o: BackoffOptions = {}): BackoffPolicy {
  return { initialMs: o.initialDelayMs ?? 250, maxMs: o.maxDelayMs ?? 30_000, factor: o.factor ?? 2 };
}

export class ReconnectingLink implements SerialLink {
  readonly path: string;
  private readonly make: () => SerialLink;
  private readonly backoff: BackoffPolicy;
  private link: SerialLink | undefined;
  private unsubs: Array<() => void> = [];
  private running = false;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly dataCbs = new Set<(chunk: Buffer) => void>();
  private readonly closeCbs = new Set<(err: Error | undefined) => void>();
  private readonly stateCbs = new Set<(s: LinkState) => void>();
  private current: LinkState = { state: 'closed', reason: 'not started', retryInMs: undefined };

  constructor(path: string, make: () => SerialLink, backoff: BackoffOptions = {}) {
    this.path = path;
    this.make = make;
    this.backoff = serialBackoff(backoff);
  }

  get isOpen(): boolean {
    return this.link?.isOpen ?? false;
  }

  get state(): LinkState {
    return this.current;
  }

  /** Starts trying; resolves after the first attempt, open or not (a missing device is a status). */
  async open(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.attempt();
  }

  async close(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const link = this.link;
    this.detach();
    if (link) await link.close().catch(() => {});
    this.setState({ state: 'closed', reason: 'closed', retryInMs: undefined });
  }

  /** A driver saw a valid frame: the device really is back, so the next outage starts from a short delay. */
  markHealthy(): void {
    this.failures = 0;
  }

  /** Drop the current handle and reconnect (e.g. a device that went silent behind an open port). */
  async reopen(reason: string): Promise<void> {
    if (!this.running) return;
    const link = this.link;
    this.detach();
    if (link) await link.close().catch(() => {});
    this.lost(new Error(reason));
  }

  async write(data: Uint8Array): Promise<void> {
    if (!this.link?.isOpen) throw new KitError('HW_SERIAL_CLOSED', `${this.path} is not connected`);
    await this.link.write(data);
  }

  onData(cb: (chunk: Buffer) => void): () => void {
    this.dataCbs.add(cb);
    return () => this.dataCbs.delete(cb);
  }

  onClose(cb: (err: Error | undefined) => void): () => void {
    this.closeCbs.add(cb);
    return () => this.closeCbs.delete(cb);
  }

  onState(cb: (s: LinkState) => void): () => void {
    this.stateCbs.add(cb);
    return () => this.stateCbs.delete(cb);
  }

  private setState(s: LinkState): void {
    this.current = s;
    for (const cb of this.stateCbs) cb(s);
  }

  private async attempt(): Promise<void> {
    this.timer = undefined;
    if (!this.running) return;
    this.setState({ state: 'opening', attempt: this.failures + 1 });
    const link = this.make();
    try {
      await link.open();
    } catch (err) {
      this.schedule((err as Error).message, true);
      return;
    }
    if (!this.running) {
      await link.close().catch(() => {});
      return;
    }
    this.link = link;
    this.unsubs = [
      link.onData((chunk) => {
        for (const cb of this.dataCbs) cb(chunk);
      }),
      link.onClose((err) => {
        if (this.link !== link) return;
        this.detach();
        this.lost(err ?? new Error('closed'));
      }),
    ];
    log.info({ path: this.path }, 'serial link open');
    this.setState({ state: 'open' });
  }

  private lost(err: Error): void {
    log.warn({ path: this.path, err: err.message }, 'serial link lost');
    for (const cb of this.closeCbs) cb(err);
    this.schedule(err.message);
  }

  private schedule(reason: string, openFailed = false): void {
    if (!this.running) return;
    const delay = backoffDelay(this.failures, this.backoff);
    this.failures++;
    this.setState({ state: 'closed', reason, retryInMs: delay, openFailed });
    this.timer = setTimeout(() => void this.attempt(), delay);
  }

  private detach(): void {
    for (const u of this.unsubs) u();
    this.unsubs = [];
    this.link = undefined;
  }
}

/** The stale reason for a port that will not open; always starts with "cannot open". */
export function openFailure(path: string, reason: string): string {
  return reason.startsWith('cannot open') ? reason : `cannot open ${path}: ${reason}`;
}
