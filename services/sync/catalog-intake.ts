// Catalogs from the hub: sync follows the catalog topic of the kit's active event, verifies each
// signed catalog against the hub's public key before it reads anything inside, and hands a verified
// one to the store (core/store/catalog.ts replaceCatalog, which refuses a version that is not newer).
// A valid signature is not enough: the store takes a hub catalog only for the event the kit runs at
// that moment and above every version it ever accepted for that event (core/store/catalog-epoch.ts),
// so an old signed catalog replayed after an event switch is refused with CATALOG_REPLAY.
// A refused catalog leaves the current one in place and is kept, with its code, for /v1/status, and
// counted per code. An accepted catalog's signed issue time raises the kit's time floor, in the same
// transaction (docs/drops.md#trusted-time): a wall clock below it is wrong.
import type { KeyObject } from 'node:crypto';
import { verifySignedCatalog } from '../../core/catalog-signing.ts';
import { type ClockSources, systemClockSources } from '../../core/clock-trust.ts';
import { parseIsoTime } from '../../core/contracts/catalog.ts';
import { topics } from '../../core/contracts/hub-wire.ts';
import type { ErrorCode } from '../../core/errors.ts';
import { isKitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import { recordHubTimeInTxn } from '../../core/store/clock.ts';
import {
  admitHubCatalogInTxn,
  type KitStore,
  readEventState,
  readStoredCatalog,
  replaceCatalog,
} from '../../core/store/index.ts';

const log = moduleLogger('sync');
const KEPT_REFUSALS = 20;

export interface CatalogRefusal {
  code: string;
  message: string;
  at: string;
}

/** The catalog subscription's side of the hub link. */
export interface CatalogTopics {
  connected: boolean;
  subscribe(topics: string[]): void;
  unsubscribe(topic: string): void;
}

export class CatalogIntake {
  /** the event whose catalog topic is subscribed (set on connect) */
  subscribed: string | undefined;
  accepted: { eventId: string; version: number; acceptedAt: string } | null = null;
  readonly refusals: CatalogRefusal[] = [];
  /** every refusal since start, per code */
  readonly refusedCount: Record<string, number> = Object.create(null);

  private readonly clock: Pick<ClockSources, 'wall' | 'mono' | 'bootId'>;

  constructor(
    private readonly store: KitStore,
    private readonly opts: {
      hubPublicKey?: KeyObject | undefined;
      eventId?: string | undefined;
      /** the kit's clocks when a catalog arrives (the time floor); tests inject them */
      clock?: Pick<ClockSources, 'wall' | 'mono' | 'bootId'>;
    },
  ) {
    this.clock = opts.clock ?? systemClockSources();
  }

  /** The live event wins, then the configured one, then the event of the catalog the kit already sells. */
  activeEventId(): string {
    return (
      readEventState(this.store).eventId ??
      this.opts.eventId ??
      readStoredCatalog(this.store)?.eventId ??
      'default'
    );
  }

  /** The catalog topic to subscribe on (re)connect. */
  topicOnConnect(): string {
    this.subscribed = this.activeEventId();
    return topics.catalog(this.subscribed);
  }

  /** Follow the live event's catalog when the host starts an event with another id. */
  follow(link: CatalogTopics): void {
    const active = this.activeEventId();
    if (!link.connected || !this.subscribed || active === this.subscribed) return;
    link.unsubscribe(topics.catalog(this.subscribed));
    this.subscribed = active;
    link.subscribe([topics.catalog(active)]);
  }

  async receive(topic: string, payload: Buffer): Promise<void> {
    const eventId = topic.split('/')[3] ?? '';
    if (eventId !== this.subscribed || payload.length === 0) return;
    if (!this.opts.hubPublicKey) {
      this.refuse('CATALOG_UNVERIFIABLE', 'no hub public key configured (POPKIT_HUB_PUBLIC_KEY)');
      return;
    }
    let verified: ReturnType<typeof verifySignedCatalog>;
    try {
      verified = verifySignedCatalog(this.opts.hubPublicKey, payload, eventId);
    } catch (err) {
      this.refuse(isKitError(err) ? err.code : 'CATALOG_MALFORMED', (err as Error).message);
      return;
    }
    const cur = readStoredCatalog(this.store);
    if (cur && cur.eventId === verified.eventId && cur.version === verified.version && cur.source === 'hub') {
      return; // the retained copy, delivered again on reconnect
    }
    // the signature covers issuedAt; a value that is not an ISO time with a zone raises no floor
    const issuedAt = parseIsoTime(verified.issuedAt);
    const arrived = { receivedAt: this.clock.wall(), mono: this.clock.mono(), bootId: this.clock.bootId() };
    try {
      await replaceCatalog(this.store, verified.catalog, {
        source: 'hub',
        requireNewer: true,
        // the event is read again inside the transaction: a switch since the message arrived counts
        inTxn: () => {
          admitHubCatalogInTxn(this.store, verified, this.activeEventId());
          if (Number.isFinite(issuedAt)) recordHubTimeInTxn(this.store, { issuedAt, ...arrived });
        },
      });
    } catch (err) {
      this.refuse(refusalCode(err), (err as Error).message);
      return;
    }
    this.accepted = { eventId, version: verified.version, acceptedAt: new Date().toISOString() };
    log.info({ eventId, version: verified.version }, 'catalog from hub accepted');
  }

  private refuse(code: ErrorCode, message: string): void {
    log.warn({ code, message }, 'catalog refused, the current one stays');
    this.refusals.push({ code, message, at: new Date().toISOString() });
    this.refusedCount[code] = (this.refusedCount[code] ?? 0) + 1;
    if (this.refusals.length > KEPT_REFUSALS) this.refusals.shift();
  }
}

/** The store refuses a version that is not newer with CONFLICT: for a hub catalog that is CATALOG_STALE. */
function refusalCode(err: unknown): ErrorCode {
  if (!isKitError(err)) return 'INTERNAL';
  return err.code === 'CONFLICT' ? 'CATALOG_STALE' : err.code;
}
