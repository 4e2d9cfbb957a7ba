// Units moved between the kits of an event over the venue LAN while the uplink is down (#17,
// docs/shared-stock.md#lan-transfers). Sync runs on the host's network (docker-compose.yml), so this
// part of it:
// - listens for the other kits on POPKIT_LAN_STOCK_PORT: `GET /v1/lan/stock/:eventId` (what this kit
//   has unsold, a hint) and `POST /v1/lan/stock/transfers` (a request signed by the asking kit, which
//   must be in the hub's signed list of the event's kits; answered with a receipt signed by this kit);
// - announces itself and finds the others with DNS-SD over multicast DNS (`_popkit-stock._tcp`, TXT
//   kit and event), plus any POPKIT_LAN_STOCK_PEERS for venues whose network drops multicast;
// - while the hub has been out of reach for POPKIT_LAN_STOCK_AFTER_S, asks the kit with the most
//   unsold units for half the difference when one of its SKUs falls under POPKIT_LAN_STOCK_BELOW_PERCENT
//   of what it holds, as the hub's rebalance rule does (core/shared-stock.ts).
// Both kits record the move in their own LMDB transaction (core/store/shared-stock.ts) and report it to
// the hub on the orders lane; the hub records it once by its id and its statements carry it on.

import type { KeyObject } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Bonjour, type Browser, type Service } from 'bonjour-service';
import Fastify, { type FastifyInstance } from 'fastify';
import type { LanRequestPayloadT, SignedLanMessageT } from '../../core/contracts/lan-stock.ts';
import { lanStockWire } from '../../core/contracts/lan-stock.ts';
import { isKitError, KitError } from '../../core/errors.ts';
import { errorEnvelopePlugin } from '../../core/http-errors.ts';
import { identityPublicKey, openLanReceipt, openLanRequest, signLan } from '../../core/lan-signing.ts';
import { moduleLogger } from '../../core/logger.ts';
import {
  addLanPending,
  applyLanGrant,
  applyLanRelease,
  dropLanPending,
  heldUnits,
  type KitStore,
  lanPeers,
  lanSellable,
  readSharedStock,
} from '../../core/store/index.ts';

const log = moduleLogger('sync-lan');
export const LAN_SERVICE_TYPE = 'popkit-stock';
export const LAN_STOCK_MODES = ['auto', 'off'] as const;
export type LanStockMode = (typeof LAN_STOCK_MODES)[number];
const ASK_TIMEOUT_MS = 3000;
/** while a kit of the event is not found yet, the multicast DNS query is sent again this often */
const REQUERY_MS = 5000;

export interface LanStockOptions {
  kitId: string;
  /** POPKIT_LAN_STOCK: auto (listen, announce and ask while the event's stock is shared) or off */
  mode: LanStockMode;
  host: string;
  /** 0: any free port (announced as it is) */
  port: number;
  afterS: number;
  belowPercent: number;
  /** POPKIT_LAN_STOCK_PEERS: base URLs asked besides those found over multicast DNS */
  peers: string[];
  /** announce and browse over multicast DNS (tests of the static list turn it off) */
  mdns?: boolean;
  identity: { privateKey: KeyObject; publicKey: string };
}

export interface LanStockStatus {
  listening: number | null;
  /** kits found on the LAN (multicast DNS and the static list), by id */
  found: string[];
  /** since when the hub has been out of reach, as this part sees it */
  hubDownSince: string | null;
  asked: number;
  received: number;
  given: number;
  lastError: string | null;
}

interface Found {
  kitId: string;
  url: string;
}

export class LanStock {
  private app: FastifyInstance | undefined;
  private bonjour: Bonjour | undefined;
  private browser: Browser | undefined;
  private readonly mdnsFound = new Map<string, Found>();
  private readonly staticFound = new Map<string, Found>();
  private downSince: number | undefined;
  private busy = false;
  private lastQuery = 0;
  private opening: Promise<void> | undefined;
  private readonly stats = { asked: 0, received: 0, given: 0, lastError: null as string | null };

  constructor(
    private readonly store: KitStore,
    private readonly opts: LanStockOptions,
    private readonly deps: {
      /** the event sync follows */
      eventId(): string;
      hubConnected(): boolean;
      /** a release or receipt was queued for the hub */
      queued(): void;
    },
  ) {}

  get port(): number | null {
    const a = this.app?.server.address() as AddressInfo | null | undefined;
    return a ? a.port : null;
  }

  status(): LanStockStatus {
    return {
      listening: this.port,
      found: [...new Set([...this.mdnsFound.keys(), ...this.staticFound.keys()])].sort(),
      hubDownSince: this.downSince ? new Date(this.downSince).toISOString() : null,
      ...this.stats,
    };
  }

  private keyOf(eventId: string): (kitId: string) => KeyObject | undefined {
    const peers = lanPeers(readSharedStock(this.store, eventId));
    return (kitId) => {
      const x = peers.get(kitId);
      return x === undefined ? undefined : identityPublicKey(x);
    };
  }

  /** One pass: open the listener once the event is shared, then ask for units when the hub is out of reach. */
  async tick(now = Date.now()): Promise<void> {
    if (this.opts.mode === 'off' || this.busy) return;
    const eventId = this.deps.eventId();
    const rec = readSharedStock(this.store, eventId);
    if (!rec) return;
    this.opening ??= this.open(eventId).catch((err) => {
      this.stats.lastError = (err as Error).message;
      log.warn({ err: (err as Error).message }, 'LAN stock listener not open');
      this.opening = undefined;
    });
    await this.opening;
    this.requery(eventId, now);
    if (this.deps.hubConnected()) {
      this.downSince = undefined;
      return;
    }
    this.downSince ??= now;
    if (now - this.downSince < this.opts.afterS * 1000) return;
    this.busy = true;
    try {
      await this.askAll(eventId, now);
    } finally {
      this.busy = false;
    }
  }

  private async open(eventId: string): Promise<void> {
    const app = Fastify({ bodyLimit: 16 * 1024 });
    await app.register(errorEnvelopePlugin, {});
    app.get<{ Params: { eventId: string } }>('/v1/lan/stock/:eventId', async (req) => {
      const ev = this.deps.eventId();
      if (req.params.eventId !== ev || !readSharedStock(this.store, ev))
        throw new KitError(
          'LAN_NOT_SHARED',
          `this kit does not share the stock of event ${req.params.eventId}`,
        );
      return { v: 1, kitId: this.opts.kitId, eventId: ev, skus: lanSellable(this.store, ev) };
    });
    app.post('/v1/lan/stock/transfers', async (req) => this.answer(req.body));
    await app.listen({ host: this.opts.host, port: this.opts.port });
    this.app = app;
    if (this.opts.mdns !== false) {
      this.bonjour = new Bonjour({}, (err: Error) => log.warn({ err: err.message }, 'multicast DNS'));
      this.bonjour.publish({
        name: `popkit-${this.opts.kitId}`,
        type: LAN_SERVICE_TYPE,
        port: this.port ?? 0,
        txt: { kit: this.opts.kitId, event: eventId },
        disableIPv6: true,
      });
      this.browser = this.bonjour.find({ type: LAN_SERVICE_TYPE }, (s) => this.onFound(s));
      this.browser.on('down', (s: Service) => {
        const kit = String(s.txt?.kit ?? '');
        if (kit) this.mdnsFound.delete(kit);
      });
    }
    log.info({ port: this.port, eventId }, 'LAN stock listening');
  }

  /**
   * Ask again over multicast DNS while a kit of the event is missing: an announcement or an answer
   * lost on the way (multicast is best effort, on a busy venue network more so) is not sent again by
   * itself, and a kit that started listening after the last query would stay unknown.
   */
  private requery(eventId: string, now: number): void {
    if (!this.browser || now - this.lastQuery < REQUERY_MS) return;
    const missing = [...lanPeers(readSharedStock(this.store, eventId)).keys()].some(
      (k) => k !== this.opts.kitId && !this.mdnsFound.has(k) && !this.staticFound.has(k),
    );
    if (!missing) return;
    this.lastQuery = now;
    this.browser.update();
  }

  private onFound(s: Service): void {
    const kit = String(s.txt?.kit ?? '');
    // another event's kits on the same network are not asked (the hub's list of peers decides anyway)
    if (String(s.txt?.event ?? '') !== this.deps.eventId()) return;
    const ipv4 = s.addresses?.find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)) ?? s.referer?.address;
    if (!kit || kit === this.opts.kitId || !ipv4 || !Number.isInteger(s.port) || s.port <= 0) return;
    this.mdnsFound.set(kit, { kitId: kit, url: `http://${ipv4}:${s.port}` });
    log.info({ kit, url: `http://${ipv4}:${s.port}` }, 'kit found on the LAN');
  }

  /** The giving side: a request, verified against the hub's list of the event's kits, answered once. */
  private async answer(body: unknown): Promise<{ receipt: SignedLanMessageT }> {
    const eventId = this.deps.eventId();
    const req = openLanRequest(body, this.keyOf(eventId));
    if (req.eventId !== eventId)
      throw new KitError('LAN_NOT_SHARED', `this kit does not share the stock of event ${req.eventId}`);
    if (req.from !== this.opts.kitId)
      throw new KitError('LAN_WRONG_KIT', `request for kit ${req.from}, this is ${this.opts.kitId}`);
    if (req.to === this.opts.kitId) throw new KitError('LAN_WRONG_KIT', 'a kit does not transfer to itself');
    const out = await applyLanRelease(this.store, req, body as SignedLanMessageT, (r) =>
      signLan(this.opts.identity.privateKey, r),
    );
    if (!out.replay) {
      this.stats.given += out.released;
      log.info(
        { id: req.id, to: req.to, sku: req.sku, asked: req.qty, released: out.released },
        'units given over the LAN',
      );
      this.deps.queued();
    }
    return { receipt: out.receipt };
  }

  private async refreshStatic(): Promise<void> {
    for (const url of this.opts.peers) {
      const offer = await this.offerAt(url, this.deps.eventId());
      if (offer && offer.kitId !== this.opts.kitId)
        this.staticFound.set(offer.kitId, { kitId: offer.kitId, url });
    }
  }

  private async offerAt(url: string, eventId: string) {
    try {
      const res = await fetch(`${url}/v1/lan/stock/${encodeURIComponent(eventId)}`, {
        signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
      });
      if (!res.ok) return undefined;
      const offer = lanStockWire.offer.parse(Buffer.from(await res.arrayBuffer()));
      return offer && offer.eventId === eventId ? offer : undefined;
    } catch {
      return undefined;
    }
  }

  private async askAll(eventId: string, now: number): Promise<void> {
    if (this.opts.peers.length > 0) await this.refreshStatic();
    const rec = readSharedStock(this.store, eventId);
    if (!rec) return;
    const peers = lanPeers(rec);
    const found = new Map([...this.staticFound, ...this.mdnsFound]);
    // requests already sent and not answered: the same id again (the giver answers a retry once)
    for (const p of rec.lanPending ?? []) {
      const at = found.get(p[1]);
      if (at) await this.send(at.url, eventId, p[0], JSON.parse(p[4]) as SignedLanMessageT);
    }
    const pendingSkus = new Set((readSharedStock(this.store, eventId)?.lanPending ?? []).map((p) => p[2]));
    for (const [sku, sellable] of lanSellable(this.store, eventId)) {
      const held = heldUnits(readSharedStock(this.store, eventId), sku);
      if (pendingSkus.has(sku) || held <= 0 || sellable * 100 >= held * this.opts.belowPercent) continue;
      let donor: { kitId: string; url: string; units: number } | undefined;
      for (const f of found.values()) {
        if (!peers.has(f.kitId)) continue;
        const offer = await this.offerAt(f.url, eventId);
        const units = offer?.kitId === f.kitId ? (offer.skus.find((s) => s[0] === sku)?.[1] ?? 0) : 0;
        if (units > (donor?.units ?? 0)) donor = { ...f, units };
      }
      const qty = donor ? Math.floor((donor.units - sellable) / 2) : 0;
      if (!donor || qty < 1) continue;
      const body: LanRequestPayloadT = {
        v: 1,
        use: 'lan-stock-request',
        id: `l-${randomUUID()}`,
        eventId,
        from: donor.kitId,
        to: this.opts.kitId,
        sku,
        qty,
        at: new Date(now).toISOString(),
      };
      const signed = signLan(this.opts.identity.privateKey, body);
      // kept before it is sent: a crash after the giver released asks again with the same id
      await addLanPending(this.store, eventId, [body.id, donor.kitId, sku, qty, JSON.stringify(signed), now]);
      this.stats.asked++;
      await this.send(donor.url, eventId, body.id, signed);
    }
  }

  /** Send one request; a verified receipt is applied, a coded refusal forgets the request. */
  private async send(url: string, eventId: string, id: string, signed: SignedLanMessageT): Promise<void> {
    let res: Response;
    try {
      res = await fetch(`${url}/v1/lan/stock/transfers`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(signed),
        signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
      });
    } catch (err) {
      this.stats.lastError = `${url}: ${(err as Error).message}`;
      return; // kept: asked again with the same id
    }
    const text = await res.text();
    if (res.status >= 400 && res.status < 500) {
      this.stats.lastError = `${url}: ${res.status} ${text.slice(0, 200)}`;
      log.warn({ id, status: res.status, body: text.slice(0, 200) }, 'LAN request refused');
      await dropLanPending(this.store, eventId, id);
      return;
    }
    if (!res.ok) {
      this.stats.lastError = `${url}: ${res.status}`;
      return;
    }
    try {
      const answer = JSON.parse(text) as { receipt?: unknown };
      const r = openLanReceipt(answer?.receipt, this.keyOf(eventId));
      const asked = JSON.parse(signed.payload) as LanRequestPayloadT;
      if (
        r.id !== id ||
        r.from !== asked.from ||
        r.to !== this.opts.kitId ||
        r.sku !== asked.sku ||
        r.requested !== asked.qty ||
        r.released > asked.qty
      )
        throw new KitError('LAN_MALFORMED', `receipt ${r.id} does not answer request ${id}`);
      const out = await applyLanGrant(this.store, r, answer.receipt as SignedLanMessageT);
      if (out.kind === 'applied') {
        this.stats.received += out.granted;
        log.info({ id, from: r.from, sku: r.sku, released: r.released }, 'units received over the LAN');
        this.deps.queued();
      }
    } catch (err) {
      // kept: a retry gets the same receipt; the hub reconciles if the giver reported it
      this.stats.lastError = `${url}: ${isKitError(err) ? err.code : ''} ${(err as Error).message}`;
      log.warn({ id, err: (err as Error).message }, 'LAN receipt not applied');
    }
  }

  async close(): Promise<void> {
    await this.opening?.catch(() => undefined);
    this.browser?.stop();
    if (this.bonjour) await new Promise<void>((resolve) => this.bonjour?.unpublishAll(() => resolve()));
    this.bonjour?.destroy();
    await this.app?.close();
  }
}
