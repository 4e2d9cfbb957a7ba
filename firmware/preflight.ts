// The pre-flight checklist, run against a running kit before doors open: edge node up and catalog
// cache warm (top 20 SKUs served from the kit, with their images: the report's suggestion, else the
// best sellers, else hero items first), payment token exchange validated with the hub,
// queue fallback proven with a real outbox entry, connectivity (loss and jitter to the hub), power
// plan covering the event, free storage, sane clock. Each check is one line; all must pass.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { CheckoutClient } from '../core/checkout-client.ts';
import type { KitStatusViewT } from '../core/contracts/kit-status.ts';
import type { BatterySummary } from '../core/contracts/power.ts';
import {
  isSha256Hex,
  PRODUCT_MEDIA_STATUS_FILE,
  productMediaStatus,
  RENDITION_NAMES,
} from '../core/contracts/product-media.ts';
import { suggestFile, TOP_SKUS } from '../core/contracts/report.ts';
import { dataLayout } from '../core/data-dir.ts';
import {
  enqueueOutbox,
  type KitStore,
  LANES,
  type OutboxKey,
  openKitStore,
  readOutboxEntry,
  removeOutboxEntries,
} from '../core/store/index.ts';
import { salesSince } from '../core/store/sales.ts';
import { hubTarget, type LinkProbe, orderUplinks, probeOverLink } from '../core/uplinks.ts';
import { networkProbe } from './health.ts';
import { summarizeBattery } from './power-policy.ts';

export const PREFLIGHT_CHECKS = [
  'edge',
  'cache',
  'images',
  'payment',
  'queue',
  'connectivity',
  'uplinks',
  'power',
  'storage',
  'clock',
  'saleClock',
] as const;
export type PreflightCheckId = (typeof PREFLIGHT_CHECKS)[number];

export interface PreflightCheck {
  id: PreflightCheckId;
  title: string;
  ok: boolean;
  detail: string;
  ms: number;
  data?: Record<string, unknown>;
}

export interface PreflightReport {
  ok: boolean;
  at: string;
  kitId?: string;
  checks: PreflightCheck[];
}

export interface PreflightOptions {
  checkout: CheckoutClient;
  hubHttpUrl: string;
  /** the hub's admin token: GET /v1/gateway needs it */
  hubAdminToken?: string | undefined;
  dataDir: string;
  plannedEventMin: number;
  lowSocPct: number;
  capacityWh?: number;
  minFreeMb: number;
  /** how long the queue probe waits to see sync forward its entry */
  queueWaitMs: number;
  /** slowest acceptable catalog answer from the kit */
  catalogMaxMs: number;
  maxClockSkewS: number;
  /** POPKIT_PREFLIGHT_REDUNDANCY: `required` fails the uplinks check below two links reaching the hub */
  redundancy?: 'required' | 'off' | undefined;
  /** how long one link's probe may take; default 3000 ms */
  linkProbeMs?: number | undefined;
  /** the socat binary (tests); default `socat` on PATH */
  socatBin?: string | undefined;
  /** the earliest plausible time: a Pi without RTC boots in 1970 until NTP answers */
  clockFloor: number;
  now?: () => number;
  openStore?: (dataDir: string) => KitStore;
}

const TITLES: Record<PreflightCheckId, string> = {
  edge: 'edge node booted',
  cache: 'catalog cache warm (top 20 SKUs)',
  images: 'catalog images warm on the kit',
  payment: 'payment token exchange with the hub',
  queue: 'queue fallback',
  connectivity: 'connectivity to the hub',
  uplinks: 'hub reached over each link',
  power: 'power plan covers the event',
  storage: 'free storage',
  clock: 'clock sane',
  saleClock: 'clock trusted for time-boxed sales',
};

type Outcome = { ok: boolean; detail: string; data?: Record<string, unknown> };
export type PreflightOutcome = Outcome;

/** What the checks share: the options, the clock, and what earlier checks learnt. */
interface Ctx {
  o: PreflightOptions;
  now: () => number;
  /** checkout's /v1/status, from the edge check */
  status?: KitStatusViewT | undefined;
  /** the hub's Date header, from the connectivity check */
  hubDate?: string | undefined;
}

const CHECKS: Record<PreflightCheckId, (c: Ctx) => Promise<Outcome>> = {
  edge: checkEdge,
  cache: checkCache,
  images: checkImages,
  payment: checkPayment,
  queue: checkQueue,
  connectivity: checkConnectivity,
  uplinks: checkUplinks,
  power: checkPower,
  storage: checkStorage,
  clock: checkClock,
  saleClock: checkSaleClock,
};

export async function runPreflight(o: PreflightOptions): Promise<PreflightReport> {
  const ctx: Ctx = { o, now: o.now ?? Date.now };
  const checks: PreflightCheck[] = [];
  for (const id of PREFLIGHT_CHECKS) checks.push(await runCheck(id, () => CHECKS[id](ctx)));
  return {
    ok: checks.every((c) => c.ok),
    at: new Date(ctx.now()).toISOString(),
    kitId: ctx.status?.kitId,
    checks,
  };
}

/** One check, timed; a check that throws fails with the error's message. */
async function runCheck(id: PreflightCheckId, fn: () => Promise<Outcome>): Promise<PreflightCheck> {
  const t0 = performance.now();
  let r: Outcome;
  try {
    r = await fn();
  } catch (err) {
    r = { ok: false, detail: (err as Error).message };
  }
  const c: PreflightCheck = {
    id,
    title: TITLES[id],
    ok: r.ok,
    detail: r.detail,
    ms: round1(performance.now() - t0),
  };
  if (r.data) c.data = r.data;
  return c;
}

async function checkEdge(c: Ctx): Promise<Outcome> {
  const { checkout } = c.o;
  const h = await checkout.healthz();
  const status = await checkout.status();
  c.status = status;
  const state = status.state;
  if (!h.ok) {
    // the public /healthz says only {ok}; with the admin token it names its problems
    const why = (h.body as { problems?: unknown } | null)?.problems;
    return {
      ok: false,
      detail: `checkout not ready (/healthz ${h.status}${Array.isArray(why) ? `: ${why.join('; ')}` : ''})`,
      data: { state },
    };
  }
  return {
    ok: true,
    detail: `checkout up at ${checkout.baseUrl}, kit ${status.kitId}, state ${state}`,
    data: { state },
  };
}

type TopFrom = 'suggestion' | 'sales' | 'catalog';

/**
 * The SKUs to warm: the hero SKUs of `popkit report --suggest` (suggest.json in the data dir) when
 * there is one, else the best sellers of the kit's orders, else the catalog's hero items first; at
 * most 20. A suggest.json that does not fit its contract is not used (and said so).
 */
async function topSkus(o: PreflightOptions, catalogSkus: string[], heroFirst: string[]) {
  const file = dataLayout(o.dataDir).suggestion;
  let note: string | undefined;
  if (fs.existsSync(file)) {
    const s = suggestFile.parse(fs.readFileSync(file));
    if (s) {
      const skus = [...new Set(s.heroes.map((h) => h.sku))].slice(0, TOP_SKUS);
      if (skus.length > 0) return { skus, from: 'suggestion' as TopFrom, basedOn: s.basedOn };
    } else note = 'suggest.json does not fit its contract: ignored';
  }
  if (fs.existsSync(dataLayout(o.dataDir).store)) {
    const store = (o.openStore ?? openKitStore)(o.dataDir);
    try {
      const inCatalog = new Set(catalogSkus);
      const sold = salesSince(store, 0, 20_000, 200)
        .skus.map((x) => x.sku)
        .filter((sku) => inCatalog.has(sku))
        .slice(0, TOP_SKUS);
      if (sold.length > 0) {
        const fill = heroFirst.filter((sku) => !sold.includes(sku)).slice(0, TOP_SKUS - sold.length);
        return { skus: [...sold, ...fill], from: 'sales' as TopFrom, note };
      }
    } finally {
      await store.close();
    }
  }
  return { skus: heroFirst.slice(0, TOP_SKUS), from: 'catalog' as TopFrom, note };
}

async function checkCache({ o }: Ctx): Promise<Outcome> {
  const times: number[] = [];
  let cat: Awaited<ReturnType<CheckoutClient['catalog']>> | undefined;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    cat = await o.checkout.catalog();
    times.push(performance.now() - t0);
  }
  const items = (cat?.items ?? []) as Array<{
    sku?: unknown;
    priceCents?: unknown;
    stock?: unknown;
    hero?: unknown;
    image?: unknown;
  }>;
  if (items.length === 0)
    return { ok: false, detail: 'catalog is empty: load one (popkit catalog load) or let sync fetch it' };
  const bySku = new Map(items.map((i) => [String(i.sku), i]));
  const heroFirst = [...items]
    .sort((a, b) => Number(b.hero === true) - Number(a.hero === true))
    .map((i) => String(i.sku));
  const pick = await topSkus(o, [...bySku.keys()], heroFirst);
  const top = pick.skus;
  const notInCatalog = top.filter((sku) => !bySku.has(sku));
  const bad = top.filter((sku) => {
    const i = bySku.get(sku);
    return i && (typeof i.priceCents !== 'number' || typeof i.stock !== 'number');
  });
  // the top SKUs' images: every rendition on the kit (the buyer page shows only local copies)
  const dir = dataLayout(o.dataDir).productMedia;
  const coldImages: string[] = [];
  for (const sku of top) {
    const image = bySku.get(sku)?.image as Record<string, unknown> | undefined;
    if (!image) continue;
    for (const r of RENDITION_NAMES) {
      const h = image[r];
      if (isSha256Hex(h) && !fs.existsSync(path.join(dir, h))) {
        coldImages.push(sku);
        break;
      }
    }
  }
  const worst = Math.max(...times);
  const data = {
    version: cat?.version,
    items: items.length,
    top: top.length,
    from: pick.from,
    skus: top,
    ...(notInCatalog.length ? { notInCatalog } : {}),
    ...(coldImages.length ? { coldImages } : {}),
    ...(pick.note ? { note: pick.note } : {}),
    worstMs: round1(worst),
  };
  const source =
    pick.from === 'suggestion' ? "the report's suggestion" : pick.from === 'sales' ? 'sales' : 'the catalog';
  if (notInCatalog.length > 0)
    return {
      ok: false,
      detail: `${notInCatalog.length} of the top ${top.length} SKUs (from ${source}) are not in the catalog: ${notInCatalog.slice(0, 10).join(', ')}`,
      data,
    };
  if (bad.length > 0)
    return { ok: false, detail: `${bad.length} of the top ${top.length} SKUs lack price or stock`, data };
  if (coldImages.length > 0)
    return {
      ok: false,
      detail: `images of ${coldImages.length} of the top ${top.length} SKUs (from ${source}) not yet on the kit: ${coldImages.slice(0, 10).join(', ')}`,
      data,
    };
  if (worst > o.catalogMaxMs) {
    return {
      ok: false,
      detail: `catalog took ${round1(worst)} ms (over ${o.catalogMaxMs} ms): not served from the kit's cache`,
      data,
    };
  }
  return {
    ok: true,
    detail: `v${cat?.version}: top ${top.length} of ${items.length} SKUs (from ${source}) served locally in ${round1(worst)} ms, their images on the kit`,
    data,
  };
}

/**
 * Every rendition the catalog names (docs/contracts.md#product-media) is on the kit, verified: the buyer
 * page and the dashboard show only local copies, so one that sync has not fetched yet shows nothing.
 */
async function checkImages({ o }: Ctx): Promise<Outcome> {
  const cat = await o.checkout.catalog();
  const dir = dataLayout(o.dataDir).productMedia;
  const missing: Array<{ sku: string; rendition: string; sha256: string }> = [];
  let wanted = 0;
  for (const item of cat.items ?? []) {
    const image = item['image'] as Record<string, unknown> | undefined;
    if (!image) continue;
    for (const rendition of RENDITION_NAMES) {
      const h = image[rendition];
      if (!isSha256Hex(h)) continue;
      wanted++;
      if (!fs.existsSync(path.join(dir, h))) missing.push({ sku: String(item['sku']), rendition, sha256: h });
    }
  }
  let fetcher: Record<string, unknown> | undefined;
  try {
    const st = productMediaStatus.parse(fs.readFileSync(path.join(dir, PRODUCT_MEDIA_STATUS_FILE)));
    if (st)
      fetcher = {
        state: st.state,
        didNotFit: st.didNotFit.length,
        mismatched: st.mismatched.length,
        lastError: st.lastError,
      };
  } catch {
    // sync has not written one yet
  }
  const data = {
    wanted,
    warm: wanted - missing.length,
    missing: missing.slice(0, 50),
    ...(fetcher ? { fetcher } : {}),
  };
  if (wanted === 0)
    return { ok: true, detail: 'the catalog names no images (imageUrl is not shown on the kit)', data };
  if (missing.length > 0) {
    const skus = [...new Set(missing.map((m) => m.sku))];
    const why = fetcher
      ? ` (sync: ${fetcher['state']}${fetcher['lastError'] ? `, ${fetcher['lastError']}` : ''})`
      : ' (sync has not reported)';
    return {
      ok: false,
      detail: `${missing.length} of ${wanted} renditions not yet on the kit, for ${skus.slice(0, 10).join(', ')}${skus.length > 10 ? ` and ${skus.length - 10} more` : ''}${why}`,
      data,
    };
  }
  return { ok: true, detail: `all ${wanted} renditions of the catalog's images on the kit`, data };
}

async function checkPayment({ o }: Ctx): Promise<Outcome> {
  let res: Response;
  try {
    res = await fetch(`${o.hubHttpUrl}/v1/gateway`, {
      signal: AbortSignal.timeout(5000),
      ...(o.hubAdminToken ? { headers: { authorization: `Bearer ${o.hubAdminToken}` } } : {}),
    });
  } catch (err) {
    return { ok: false, detail: `hub ${o.hubHttpUrl} unreachable: ${(err as Error).message}` };
  }
  if (res.status === 401)
    return {
      ok: false,
      detail: `hub /v1/gateway answered 401: run preflight with the hub's admin token (POPKIT_HUB_ADMIN_TOKEN)`,
    };
  if (!res.ok) return { ok: false, detail: `hub /v1/gateway answered ${res.status}` };
  const g = (await res.json()) as {
    name?: string;
    sandbox?: boolean;
    ok?: boolean;
    latencyMs?: number;
    error?: string;
  };
  const data = { name: g.name, sandbox: g.sandbox, latencyMs: g.latencyMs };
  if (g.ok !== true)
    return { ok: false, detail: `gateway ${g.name}: ${g.error ?? 'test exchange failed'}`, data };
  return {
    ok: true,
    detail: `gateway ${g.name}${g.sandbox ? ' (sandbox)' : ''} exchanged a test token in ${g.latencyMs} ms`,
    data,
  };
}

/** A real outbox entry: forwarded (acked) when the link is up, queued when it is not. */
async function checkQueue({ o, now, status }: Ctx): Promise<Outcome> {
  const link = status?.sync?.link;
  if (link === undefined || link === 'not-running')
    return { ok: false, detail: 'sync is not running: nothing would forward orders' };
  const store = (o.openStore ?? openKitStore)(o.dataDir);
  const id = `preflight-${now()}-${randomBytes(4).toString('hex')}`;
  const key: OutboxKey = [LANES.health, id];
  try {
    await enqueueOutbox(store, key, {
      kind: 'health',
      body: { probe: true, preflight: true },
      createdAt: now(),
    });
    const deadline = performance.now() + o.queueWaitMs;
    while (performance.now() < deadline) {
      if (readOutboxEntry(store, key) === undefined) {
        return {
          ok: true,
          detail: 'probe entry written and forwarded (hub acked)',
          data: { id, outcome: 'forwarded' },
        };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const linkNow = String((await o.checkout.status().catch(() => status))?.sync?.link ?? link);
    if (linkNow !== 'up') {
      return {
        ok: true,
        detail: `probe entry queued (offline, link ${linkNow}): it goes out when the link is back`,
        data: { id, outcome: 'queued', link: linkNow },
      };
    }
    await removeOutboxEntries(store, [key]);
    return {
      ok: false,
      detail: `link is up but the probe was not forwarded within ${o.queueWaitMs} ms`,
      data: { id, outcome: 'stuck' },
    };
  } finally {
    await store.close();
  }
}

async function checkConnectivity(c: Ctx): Promise<Outcome> {
  const { hubHttpUrl } = c.o;
  const n = await networkProbe(`${hubHttpUrl}/healthz`, { count: 5, timeoutMs: 2000, gapMs: 50 });
  c.hubDate = n.dateHeader;
  const data = { ...n };
  if (n.received === 0)
    return { ok: false, detail: `hub ${hubHttpUrl} unreachable (5 of 5 probes lost)`, data };
  const detail = `rtt ${n.rttMs} ms, jitter ${n.jitterMs} ms, loss ${n.lossPct} %`;
  if (n.lossPct > 20 || (n.jitterMs ?? 0) > 150)
    return { ok: false, detail: `too lossy or jittery: ${detail}`, data };
  return { ok: true, detail, data };
}

/**
 * The hub over each link on its own (#17): one GET /healthz through a connection bound to the link
 * (core/uplinks.ts, socat with SO_BINDTODEVICE), for each link kitd's /v1/status lists as connected
 * from NetworkManager. With POPKIT_PREFLIGHT_REDUNDANCY=required fewer than two links reaching the hub
 * fail the check (and so do links that cannot be checked: kitd's view missing, stale or from the sim
 * board, a hub on this machine); off: the results are listed and the check passes.
 */
function checkUplinks(c: Ctx): Promise<Outcome> {
  return uplinksOutcome(c.o, c.status?.kitd);
}

/** The uplinks check on kitd's part of /v1/status (exported for the netns test). */
export async function uplinksOutcome(
  o: Pick<PreflightOptions, 'hubHttpUrl' | 'redundancy' | 'linkProbeMs' | 'socatBin'>,
  kitd: KitStatusViewT['kitd'] | undefined,
): Promise<PreflightOutcome> {
  const required = o.redundancy === 'required';
  const why = required ? ': the event requires two (POPKIT_PREFLIGHT_REDUNDANCY=required)' : '';
  const view = kitd && !kitd.stale ? kitd.links : undefined;
  if (view?.state !== 'ok')
    return {
      ok: !required,
      detail: `links not known (${!kitd ? 'no kitd status' : kitd.stale ? "kitd's status is stale" : `links ${view?.state ?? 'absent'}`})${why}`,
      data: { required, reaching: 0 },
    };
  if (view.source !== 'networkmanager')
    return {
      ok: !required,
      detail: `links from ${view.source}: not probed one by one${why}`,
      data: { required, reaching: 0 },
    };
  const target = hubTarget(o.hubHttpUrl, 'http');
  if (!target)
    return {
      ok: !required,
      detail: `hub ${o.hubHttpUrl} is on this machine (or its host cannot be bound to a link): not probed one by one${why}`,
      data: { required, reaching: 0 },
    };
  const results: LinkProbe[] = [];
  // the links of this namespace only: a container on a bridge network cannot reach the host's links
  for (const l of orderUplinks(view, os.networkInterfaces()))
    results.push(
      await probeOverLink(target, l.iface, '/healthz', {
        timeoutMs: o.linkProbeMs ?? 3000,
        ...(o.socatBin ? { socatBin: o.socatBin } : {}),
      }),
    );
  const probed = new Set(results.map((r) => r.iface));
  const notUp = view.links
    .filter((l) => !probed.has(l.iface))
    .map((l) => `${l.iface} ${l.state === 'connected' ? 'not up in this network namespace' : l.state}`);
  const reaching = results.filter((r) => r.ok).length;
  const parts = [
    ...results.map((r) => (r.ok ? `${r.iface} ok ${r.rttMs} ms` : `${r.iface} FAILED (${r.error ?? '?'})`)),
    ...notUp,
  ];
  const detail = `${reaching} of ${view.links.length} link(s) reach the hub: ${parts.join(', ') || 'none listed'}`;
  const data = { required, reaching, links: results, notProbed: notUp };
  if (required && reaching < 2) return { ok: false, detail: `${detail}${why}`, data };
  return { ok: true, detail, data };
}

/** kitd's battery when it has one, else the readings in /v1/status summarized here. */
function batteryOf(status: KitStatusViewT | undefined, capacityWh?: number): BatterySummary {
  const fromKitd = status?.kitd?.powerPolicy?.battery;
  if (fromKitd?.socPct !== undefined) return fromKitd;
  return summarizeBattery(status?.power ?? [], capacityWh);
}

async function checkPower({ o, status }: Ctx): Promise<Outcome> {
  const b = batteryOf(status, o.capacityWh);
  if (b.socPct === undefined)
    return { ok: false, detail: 'no battery reading (is kitd running and a power device answering?)' };
  const data = { socPct: round1(b.socPct), ttgMin: b.ttgMin, netW: b.netW, plannedMin: o.plannedEventMin };
  if (b.socPct <= o.lowSocPct)
    return {
      ok: false,
      detail: `SOC ${round1(b.socPct)} % is at or below the low mark (${o.lowSocPct} %)`,
      data,
    };
  if (b.ttgMin !== undefined && b.ttgMin < o.plannedEventMin) {
    return {
      ok: false,
      detail: `${b.ttgMin} min to go at this draw, the event is planned for ${o.plannedEventMin} min`,
      data,
    };
  }
  const ttg = b.ttgMin === undefined ? 'charging or no draw' : `${b.ttgMin} min to go`;
  return { ok: true, detail: `SOC ${round1(b.socPct)} %, ${ttg}, event ${o.plannedEventMin} min`, data };
}

async function checkStorage({ o }: Ctx): Promise<Outcome> {
  const s = fs.statfsSync(o.dataDir);
  const freeMb = Math.floor((s.bavail * s.bsize) / (1024 * 1024));
  const data = { freeMb, minFreeMb: o.minFreeMb };
  if (freeMb < o.minFreeMb)
    return { ok: false, detail: `${freeMb} MB free on the data volume, need ${o.minFreeMb} MB`, data };
  return { ok: true, detail: `${freeMb} MB free on the data volume`, data };
}

async function checkClock({ o, now, hubDate }: Ctx): Promise<Outcome> {
  const t = now();
  const data: Record<string, unknown> = { now: new Date(t).toISOString() };
  if (t < o.clockFloor)
    return { ok: false, detail: `clock reads ${new Date(t).toISOString()}: not set (no NTP yet?)`, data };
  if (!hubDate)
    return { ok: true, detail: `${new Date(t).toISOString()} (hub unreachable: skew not measured)`, data };
  // the Date header has one-second resolution
  const skewS = Math.round((t - Date.parse(hubDate)) / 1000);
  data['skewS'] = skewS;
  if (Math.abs(skewS) > o.maxClockSkewS)
    return { ok: false, detail: `clock is ${skewS} s off the hub's`, data };
  return { ok: true, detail: `within ${Math.max(1, Math.abs(skewS))} s of the hub`, data };
}

/**
 * Time-boxed SKUs sell only on a clock NTP, an RTC, the hub or staff vouched for this boot
 * (docs/drops.md#trusted-time): checkout's /v1/status.drops.clock says whether it is and why.
 */
async function checkSaleClock({ o, status }: Ctx): Promise<Outcome> {
  const clock = status?.drops?.clock;
  if (!clock) return { ok: false, detail: 'checkout does not report its clock trust (an older checkout?)' };
  const cat = await o.checkout.catalog().catch(() => undefined);
  const boxed = [
    ...(cat?.items ?? []),
    ...((cat?.['bundles'] as Array<Record<string, unknown>>) ?? []),
  ].filter((i) => i['saleWindow'] !== undefined).length;
  const data = { trusted: clock.trusted, source: clock.source, reason: clock.reason, timeBoxed: boxed };
  if (clock.trusted)
    return { ok: true, detail: `trusted (${clock.source}) since ${clock.since ?? '?'}`, data };
  const why =
    clock.reason === 'below_hub_floor'
      ? `the clock reads before the hub's signed time ${clock.hubFloor}: set it`
      : clock.reason === 'clock_jumped'
        ? `the wall clock jumped ${Math.round((clock.jumpMs ?? 0) / 1000)} s since it was trusted`
        : 'no NTP, RTC or hub time this boot';
  if (boxed === 0)
    return { ok: true, detail: `not trusted (${why}), but the catalog has no time-boxed SKUs`, data };
  return {
    ok: false,
    detail: `not trusted: ${why}; ${boxed} time-boxed SKUs/bundles refuse CLOCK_UNTRUSTED (staff: POST /v1/clock/trust)`,
    data,
  };
}

/** One line per check, the way a person reads a checklist. */
export function formatPreflight(r: PreflightReport): string {
  const lines = r.checks.map((c) => `${c.ok ? 'PASS' : 'FAIL'}  ${c.title.padEnd(38)} ${c.detail}`);
  const failed = r.checks.filter((c) => !c.ok).length;
  lines.push(
    failed === 0
      ? `pre-flight: all ${r.checks.length} checks pass`
      : `pre-flight: ${failed} of ${r.checks.length} checks FAIL`,
  );
  return `${lines.join('\n')}\n`;
}

const round1 = (v: number) => Math.round(v * 10) / 10;
