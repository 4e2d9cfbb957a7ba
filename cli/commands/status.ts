// `popkit status [--json]`: one screen of a running kit: state, LEDs, power, health, sync backlog, stream.
import { parseArgs } from 'node:util';
import { type KitStatusViewT, kitStatusView } from '../../core/contracts/kit-status.ts';
import type { PowerReading } from '../../core/contracts/power.ts';
import { kitApi } from '../kit-client.ts';

function ledsLine(leds: KitStatusViewT['leds']): string {
  if (!leds) return 'unknown (kitd not running)';
  const parts = [`green=${leds.green.pattern}`, `red=${leds.red.pattern}`];
  if (leds.identifyUntil !== undefined) parts.push(`identifyUntil=${JSON.stringify(leds.identifyUntil)}`);
  return parts.join('  ');
}

function powerLine(p: PowerReading): string {
  const parts = [
    p.socPct !== undefined ? `SOC ${p.socPct}%` : '',
    p.batteryV !== undefined ? `${p.batteryV} V` : '',
    p.solarW !== undefined ? `solar ${p.solarW} W` : '',
    p.chargeState ?? '',
    p.stale ? `STALE (${p.staleReason ?? '?'})` : '',
  ].filter(Boolean);
  return `power ${p.device}: ${parts.join(', ')}`;
}

function declinesLine(declines: KitStatusViewT['declines']): string | undefined {
  const latest = declines[0];
  if (!latest) return undefined;
  const amount = (latest.totalCents / 100).toFixed(2);
  const rejected = declines.filter((d) => d.state === 'rejected').length;
  const why = `${latest.state === 'rejected' ? 'rejected by the hub: ' : ''}${latest.reason ?? 'declined'}`;
  return `declined cards: ${declines.length} recent${rejected ? ` (${rejected} rejected by the hub)` : ''}; latest order …${latest.orderId.slice(-6)} ${amount} ${latest.currency} (${why}): collect another way`;
}

/** The kit's network links as kitd last read them (firmware/links.ts). */
export function linksLine(kitd: KitStatusViewT['kitd']): string {
  const v = kitd?.links;
  if (!kitd) return 'links: unknown (kitd not running)';
  if (!v || v.state === 'off') return 'links: not watched (POPKIT_LINKS=off)';
  if (v.state === 'unavailable')
    return `links: UNAVAILABLE from ${v.source} (${v.code ?? '?'}: ${v.reason ?? ''})`;
  if (v.links.length === 0) return `links: none (${v.source})`;
  const one = (l: (typeof v.links)[number]) =>
    [
      l.iface,
      l.type,
      l.state,
      l.metered === null ? 'metered unknown' : l.metered ? 'METERED' : 'unmetered',
      l.primary ? 'primary' : '',
      ...(l.addresses ?? []),
    ]
      .filter(Boolean)
      .join(' ');
  return `links: ${v.links.map(one).join(', ')}${v.source === 'sim' ? ' (sim)' : ''}`;
}

/** What sync holds back for an unmetered link (services/sync/metered.ts), when it does. */
export function meteredLine(sync: KitStatusViewT['sync']): string | undefined {
  const u = sync.stale ? undefined : sync.detail?.uplink;
  if (!u || u.held.length === 0) return undefined;
  return `sync: METERED link${u.primary ? ` ${u.primary}` : ''}: only orders and stock are sent; ${u.held.join(', ')} held since ${u.heldSince ?? '?'} (POPKIT_SYNC_METERED=all sends everything)`;
}

/** The link sync's hub connection is bound to (#17, POPKIT_SYNC_BIND_LINKS), when it is. */
export function viaOf(sync: KitStatusViewT['sync']): string {
  const via = sync.stale ? undefined : sync.detail?.uplink?.via;
  return via ? ` over ${via}` : '';
}

/** Units moved with the event's other kits over the venue LAN (services/sync/lan-stock.ts), once listening. */
export function lanStockLine(sync: KitStatusViewT['sync']): string | undefined {
  const l = sync.stale ? undefined : sync.detail?.lanStock;
  if (!l || l.listening === null) return undefined;
  const down = l.hubDownSince ? `; hub out of reach since ${l.hubDownSince}` : '';
  const error = l.lastError ? ` (last problem: ${l.lastError})` : '';
  return `LAN stock: port ${l.listening}, ${l.found.length} other kit${l.found.length === 1 ? '' : 's'} found${down}; ${l.received} units received, ${l.given} given${error}`;
}

function updatesLine(lock: KitStatusViewT['updateLock']): string | undefined {
  if (!lock?.held) return undefined;
  return `updates: held back (${lock.reason ?? 'lock held'}) until ${lock.expiresAt ?? '?'} at the latest`;
}

export function renderStatus(s: KitStatusViewT): string {
  const { event, catalog: cat, sync, risk, media } = s;
  const lines = [
    `kit ${s.kitId} (${s.board})  state: ${s.state}${event.live ? `  LIVE ${event.eventId ?? ''}` : ''}`,
    `catalog: ${cat ? `${cat.eventId} v${cat.version} (${cat.items} items, ${cat.source})` : 'none loaded'}`,
    `leds: ${ledsLine(s.leds)}`,
  ];
  const power = s.power ?? [];
  if (power.length === 0) lines.push('power: no readings');
  lines.push(...power.map(powerLine));
  lines.push(
    `health: ${s.health ? `${s.health.score}/100` : 'unknown'}`,
    `sync: link ${sync.link}${viaOf(sync)}  backlog ${Object.entries(sync.backlog)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  const metered = meteredLine(sync);
  if (metered) lines.push(metered);
  const lan = lanStockLine(sync);
  if (lan) lines.push(lan);
  lines.push(
    linksLine(s.kitd),
    `offline risk: ${risk.blocking.length ? `card orders PAUSED by ${risk.blocking.join(', ')}` : 'within limits'}`,
  );
  const updates = updatesLine(s.updateLock);
  if (updates) lines.push(updates);
  const declined = declinesLine(s.declines);
  if (declined) lines.push(declined);
  if (s.tokenKey && !s.tokenKey.cardSales)
    lines.push(`CARD SALES REFUSED: ${s.tokenKey.message ?? `token key ${s.tokenKey.state}`}`);
  // every other secret found lost or replaced at start (docs/power-cuts.md); the token key's line is above
  for (const k of s.secrets ?? []) {
    if (k.file === 'keys/token.key' && k.state !== 'ok') continue;
    if (k.state !== 'ok')
      lines.push(`${k.refused?.toUpperCase() ?? k.file} REFUSED: ${k.message ?? `${k.file} ${k.state}`}`);
    // a whole secret has a message only when it was found damaged and replaced
    else if (k.replaced || k.message)
      lines.push(`key replaced: ${k.message ?? `${k.file} was ${k.replaced}`}`);
  }
  lines.push(
    `stream: ${media ? `${media.state} ${media.fps} fps ${media.bitrateKbps} kb/s` : 'not running'}`,
  );
  return `${lines.join('\n')}\n`;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean', default: false }, url: { type: 'string' } },
  });
  // /v1/status needs a credential: the kit's admin token (environment or data dir)
  const res = await kitApi(values.url).request('GET', '/v1/status', undefined, { admin: 'if-known' });
  if (res.status === 401 || res.status === 403) {
    process.stderr.write(
      `popkit status: the kit answered ${res.status}: set POPKIT_ADMIN_TOKEN or run on the kit (keys/admin.token)\n`,
    );
    return 1;
  }
  if (res.status !== 200) {
    process.stderr.write(`popkit status: kit answered ${res.status}\n`);
    return 1;
  }
  if (!kitStatusView.check(res.body)) {
    process.stderr.write(
      `popkit status: the kit's /v1/status answer is not the expected shape (a kit of another version?): ${kitStatusView.errors(res.body).join('; ')}\n`,
    );
    return 1;
  }
  process.stdout.write(values.json ? `${JSON.stringify(res.body, null, 2)}\n` : renderStatus(res.body));
  return 0;
}
