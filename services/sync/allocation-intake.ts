// Allocation statements from the hub (docs/shared-stock.md): sync follows this kit's
// kits/{kitId}/allocations/+ topics, verifies each signed statement against the hub's public key
// before it reads anything inside (as catalogs), and hands a verified one to the store
// (core/store/shared-stock.ts applyAllocation), which applies each grant and release request once and
// refuses an older version. A refused statement changes nothing and is kept, with its code, for
// /v1/status, and counted per code.
import type { KeyObject } from 'node:crypto';
import { verifySignedAllocation } from '../../core/catalog-signing.ts';
import type { ErrorCode } from '../../core/errors.ts';
import { isKitError } from '../../core/errors.ts';
import { moduleLogger } from '../../core/logger.ts';
import { applyAllocation, type KitStore } from '../../core/store/index.ts';
import type { CatalogRefusal } from './catalog-intake.ts';

const log = moduleLogger('sync');
const KEPT_REFUSALS = 20;

export class AllocationIntake {
  accepted: { eventId: string; version: number; acceptedAt: string } | null = null;
  readonly refusals: CatalogRefusal[] = [];
  readonly refusedCount: Record<string, number> = Object.create(null);

  constructor(
    private readonly store: KitStore,
    private readonly opts: { kitId: string; hubPublicKey?: KeyObject | undefined },
  ) {}

  /** true when the statement queued releases (the caller pumps the outbox) */
  async receive(topic: string, payload: Buffer): Promise<boolean> {
    // popkit/v1/kits/{kitId}/allocations/{eventId}
    const parts = topic.split('/');
    if (parts.length !== 6 || parts[3] !== this.opts.kitId || payload.length === 0) return false;
    const topicEvent = parts[5] ?? '';
    if (!this.opts.hubPublicKey) {
      this.refuse('ALLOCATION_FORGED', 'no hub public key configured (POPKIT_HUB_PUBLIC_KEY)');
      return false;
    }
    try {
      const s = verifySignedAllocation(this.opts.hubPublicKey, payload, this.opts.kitId);
      if (s.eventId !== topicEvent) {
        this.refuse('ALLOCATION_MALFORMED', `allocation for event ${s.eventId} arrived on ${topicEvent}`);
        return false;
      }
      const out = await applyAllocation(this.store, s);
      if (out.kind === 'duplicate') return false;
      this.accepted = { eventId: s.eventId, version: s.version, acceptedAt: new Date().toISOString() };
      log.info(
        { eventId: s.eventId, version: s.version, granted: out.granted, releases: out.released.length },
        'allocation from hub applied',
      );
      return out.released.length > 0;
    } catch (err) {
      this.refuse(isKitError(err) ? err.code : 'INTERNAL', (err as Error).message);
      return false;
    }
  }

  private refuse(code: ErrorCode, message: string): void {
    log.warn({ code, message }, 'allocation refused, nothing changed');
    this.refusals.push({ code, message, at: new Date().toISOString() });
    this.refusedCount[code] = (this.refusedCount[code] ?? 0) + 1;
    if (this.refusals.length > KEPT_REFUSALS) this.refusals.shift();
  }
}
