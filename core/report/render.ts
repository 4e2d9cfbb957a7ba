// The post-event report as a page: self-contained HTML (inline SVG charts drawn here, no script, no
// external file, so it prints and archives as it is) and PDF by Chromium's print of that page.
// Every text that comes from data (SKU and item names, kit ids, segment names, labels) goes through
// `esc()`: a hostile catalog name cannot inject markup.
import fs from 'node:fs';
import type { EventReportT, MinuteBucketT, RetentionCurveT } from '../contracts/report.ts';
import { KitError } from '../errors.ts';

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ESC[c]!);
}

const money = (cents: number, currency: string | null) =>
  `${(cents / 100).toLocaleString('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}${currency ? ` ${esc(currency)}` : ''}`;
const pct = (x: number | null) => (x === null ? '–' : `${(x * 100).toFixed(1)}%`);
const num = (x: number | null, d = 2) => (x === null ? '–' : String(Math.round(x * 10 ** d) / 10 ** d));
const hhmm = (t: number) => new Date(t * 1000).toISOString().slice(11, 16);

const W = 720;
const H = 180;
const PAD = { l: 48, r: 12, t: 12, b: 24 };
const COLORS = ['#1f6feb', '#d9480f', '#2b8a3e', '#862e9c', '#e67700', '#0b7285', '#c2255c', '#495057'];

interface Line {
  name: string;
  values: Array<number | null>;
}

/** A line chart over minutes; null values break the line. */
function lineChart(
  title: string,
  lines: Line[],
  opts: { xLabel?: (i: number) => string; yMax?: number } = {},
): string {
  const n = Math.max(1, ...lines.map((l) => l.values.length));
  let max = opts.yMax ?? 0;
  if (opts.yMax === undefined)
    for (const l of lines) for (const v of l.values) if (v !== null && v > max) max = v;
  if (max <= 0) max = 1;
  const x = (i: number) => PAD.l + (n <= 1 ? 0 : (i / (n - 1)) * (W - PAD.l - PAD.r));
  const y = (v: number) => PAD.t + (1 - v / max) * (H - PAD.t - PAD.b);
  const paths = lines
    .map((l, li) => {
      let d = '';
      let pen = false;
      // at most ~720 points per line: a 4-hour event is 240 minutes
      l.values.forEach((v, i) => {
        if (v === null) {
          pen = false;
          return;
        }
        d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      return `<path d="${d}" fill="none" stroke="${COLORS[li % COLORS.length]}" stroke-width="1.5"/>`;
    })
    .join('');
  const ticks = [0, 0.5, 1]
    .map((f) => `<text x="${PAD.l - 4}" y="${y(max * f) + 4}" text-anchor="end">${esc(num(max * f))}</text>`)
    .join('');
  const xl = opts.xLabel;
  const xticks = xl
    ? [0, 0.25, 0.5, 0.75, 1]
        .map((f) => Math.round(f * (n - 1)))
        .map((i) => `<text x="${x(i)}" y="${H - 6}" text-anchor="middle">${esc(xl(i))}</text>`)
        .join('')
    : '';
  const legend = lines
    .map(
      (l, li) =>
        `<span class="key"><i style="background:${COLORS[li % COLORS.length]}"></i>${esc(l.name)}</span>`,
    )
    .join(' ');
  return `<figure><figcaption>${esc(title)} ${legend}</figcaption><svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(title)}">
<line x1="${PAD.l}" y1="${H - PAD.b}" x2="${W - PAD.r}" y2="${H - PAD.b}" stroke="#adb5bd"/>
<line x1="${PAD.l}" y1="${PAD.t}" x2="${PAD.l}" y2="${H - PAD.b}" stroke="#adb5bd"/>${ticks}${xticks}${paths}</svg></figure>`;
}

/** A scatter of minutes: x against y, with its r. */
function scatter(title: string, pts: Array<[number, number]>): string {
  if (pts.length === 0)
    return `<figure><figcaption>${esc(title)}</figcaption><p class="muted">no minute has both figures</p></figure>`;
  const w = 340;
  const h = 200;
  let mx = 0;
  let my = 0;
  for (const [a, b] of pts) {
    if (a > mx) mx = a;
    if (b > my) my = b;
  }
  mx = mx || 1;
  my = my || 1;
  const sx = (v: number) => PAD.l + (v / mx) * (w - PAD.l - PAD.r);
  const sy = (v: number) => PAD.t + (1 - v / my) * (h - PAD.t - PAD.b);
  const dots = pts
    .slice(0, 2000)
    .map(
      ([a, b]) =>
        `<circle cx="${sx(a).toFixed(1)}" cy="${sy(b).toFixed(1)}" r="2" fill="#1f6feb" fill-opacity=".55"/>`,
    )
    .join('');
  return `<figure class="half"><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${w} ${h}" width="100%" role="img" aria-label="${esc(title)}">
<line x1="${PAD.l}" y1="${h - PAD.b}" x2="${w - PAD.r}" y2="${h - PAD.b}" stroke="#adb5bd"/>
<line x1="${PAD.l}" y1="${PAD.t}" x2="${PAD.l}" y2="${h - PAD.b}" stroke="#adb5bd"/>
<text x="${w - PAD.r}" y="${h - 6}" text-anchor="end">${esc(num(mx, 3))}</text><text x="${PAD.l - 4}" y="${PAD.t + 8}" text-anchor="end">${esc(num(my, 3))}</text>${dots}</svg></figure>`;
}

function retentionChart(segs: RetentionCurveT[]): string {
  if (segs.length === 0) return '<p class="muted">No audience aggregate reached the report.</p>';
  return lineChart(
    'Share still watching, by minutes since joining',
    segs.slice(0, COLORS.length).map((s) => ({ name: `${s.segment} (${s.viewers})`, values: s.share })),
    { yMax: 1, xLabel: (i) => `${i} min` },
  );
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212529;margin:24px auto;max-width:780px;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #f1f3f5;font-variant-numeric:tabular-nums}
td.n,th.n{text-align:right}td:first-child{white-space:nowrap}.muted{color:#868e96}.bad{color:#c92a2a}.ok{color:#2b8a3e}
figure{margin:10px 0;break-inside:avoid}figcaption{font-size:12px;color:#495057;margin-bottom:2px}
.key{margin-left:10px;white-space:nowrap}.key i{display:inline-block;width:10px;height:3px;vertical-align:middle;margin-right:4px}
svg text{font-size:10px;fill:#495057}.half{display:inline-block;width:49%;vertical-align:top}
.cards{display:flex;gap:8px;flex-wrap:wrap}.card{border:1px solid #dee2e6;border-radius:6px;padding:6px 10px;min-width:120px}
.card b{display:block;font-size:18px}ul.missing li{margin:2px 0}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table{break-inside:auto}tr{break-inside:avoid}}
`;

export function renderReportHtml(r: EventReportT): string {
  const { meta, totals } = r;
  const cur = meta.currency;
  const mins = r.latency.minutes;
  const xl = (i: number) => hhmm(mins[i]?.t ?? meta.span.start);
  const col = (f: (b: MinuteBucketT) => number | null) => mins.map(f);
  const pairs = (f: (b: MinuteBucketT) => number | null): Array<[number, number]> =>
    mins.filter((b) => f(b) !== null && b.conversion !== null).map((b) => [f(b)!, b.conversion!]);
  const missing = meta.missing.length
    ? `<ul class="missing">${meta.missing
        .map(
          (m) => `<li><b>${esc(m.kind)}</b>${m.kitId ? ` (kit ${esc(m.kitId)})` : ''}: ${esc(m.detail)}</li>`,
        )
        .join('')}</ul>`
    : '<p class="ok">Nothing missing: every kit\'s series, audience and orders are in.</p>';
  const corr = r.latency.correlations
    .map(
      (c) =>
        `<tr><td>${esc(c.x)} vs ${esc(c.y)}</td><td class="n">${c.r === null ? '–' : esc(c.r.toFixed(2))}</td><td class="n">${c.n}</td><td>${esc(c.strength)}</td><td>${esc(c.reading)}</td></tr>`,
    )
    .join('');
  const skus = r.inventory.skus
    .map(
      (s) =>
        `<tr><td>${esc(s.sku)}</td><td>${esc(s.name)}</td><td class="n">${s.start ?? '–'}</td><td class="n">${s.soldKit ?? '–'}</td><td class="n">${s.soldHub}</td><td class="n">${s.onHand ?? '–'}</td><td class="n${s.diff ? ' bad' : ''}">${s.diff ?? '–'}</td></tr>`,
    )
    .join('');
  const kits = r.inventory.kits
    .map(
      (k) =>
        `<tr><td>${esc(k.kitId)}</td><td class="n">${k.orders}</td><td class="n">${money(k.revenueCents, cur)}</td><td class="n">${k.viewers ?? '–'}</td><td class="n">${k.conversion === null ? '–' : esc(k.conversion.toFixed(3))}</td><td class="n">${pct(k.retention15)}</td><td class="n">${k.kitOrders ?? '?'}</td><td class="n">${k.hubOrders}</td><td class="n${k.missingAtHub ? ' bad' : ''}">${k.missingAtHub ?? '?'}</td><td>${k.lastArrival ? esc(new Date(k.lastArrival * 1000).toISOString().replace('.000Z', 'Z')) : '–'}</td></tr>`,
    )
    .join('');
  const segs = r.retention.segments
    .map(
      (s) =>
        `<tr><td>${esc(s.segment)}</td><td class="n">${s.viewers}</td><td class="n">${s.kits}</td><td class="n">${pct(s.share[5] ?? 0)}</td><td class="n">${pct(s.share[15] ?? 0)}</td><td class="n">${pct(s.share[30] ?? 0)}</td><td class="n">${s.medianMinutes ?? '–'}</td></tr>`,
    )
    .join('');
  const heroes = r.suggestions.heroes
    .map(
      (h) =>
        `<tr><td>${esc(h.sku)}</td><td>${esc(h.name)}</td><td class="n">${h.units}</td><td class="n">${h.rushUnits}</td></tr>`,
    )
    .join('');
  const drops = r.drops
    .map(
      (d) =>
        `<tr><td>${esc(hhmm(d.t))} (min ${d.m})</td><td>${esc(d.label)}</td><td class="n">${num(d.viewers, 0)}</td><td class="n">${d.orders}</td><td class="n">${d.units}</td></tr>`,
    )
    .join('');
  const matched = r.inventory.matched
    ? `<p class="ok">The hub's ledger matched every kit ${r.inventory.matchedAfterS === null ? '' : `${esc(Math.round(r.inventory.matchedAfterS / 60))} min after the event's end`}.</p>`
    : '<p class="bad">The hub\'s ledger does not match every kit yet (see the kits table).</p>';
  const best = r.suggestions.bestDropMinute;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Report: ${esc(meta.eventId)}</title><style>${CSS}</style></head><body>
<h1>Event ${esc(meta.eventId)}</h1>
<p class="muted">${esc(meta.source === 'hub' ? `every kit merged (${meta.kits.length})` : `kit ${meta.kits[0] ?? ''}`)} · ${esc(new Date(meta.span.start * 1000).toISOString().replace('.000Z', 'Z'))} to ${esc(new Date(meta.span.end * 1000).toISOString().replace('.000Z', 'Z'))} (${meta.span.minutes} min) · generated ${esc(meta.generatedAt)} · ${meta.complete ? '<span class="ok">complete</span>' : '<span class="bad">incomplete</span>'}</p>
<div class="cards"><div class="card">orders<b>${totals.orders}</b></div><div class="card">revenue<b>${money(totals.revenueCents, cur)}</b></div>
<div class="card">viewers<b>${totals.viewers ?? '–'}</b></div><div class="card">orders per viewer<b>${num(totals.ordersPerViewer, 3)}</b></div>
<div class="card">reservations converted<b>${totals.reservationsConverted}/${totals.reservationsMade} (${pct(totals.reservationConversion)})</b></div></div>
<h2>What is missing</h2>${missing}
<h2>1. Latency and conversion</h2>
${lineChart('Viewers watching, per minute', [{ name: 'viewers', values: col((b) => b.viewers) }], { xLabel: xl })}
${lineChart('Orders per minute', [{ name: 'orders', values: col((b) => b.orders) }], { xLabel: xl })}
${lineChart('Orders per viewer, per minute', [{ name: 'conversion', values: col((b) => b.conversion) }], { xLabel: xl })}
${lineChart(
  'Checkout p95 and stream latency (s)',
  [
    { name: 'checkout p95', values: col((b) => b.latencyP95) },
    { name: 'stream latency', values: col((b) => b.streamLatency) },
    { name: 'stream step', values: col((b) => b.streamLevel) },
  ],
  { xLabel: xl },
)}
${scatter(
  'checkout p95 (x) vs orders per viewer (y), one dot a minute',
  pairs((b) => b.latencyP95),
)}${scatter(
  'stream latency (x) vs orders per viewer (y)',
  pairs((b) => b.streamLatency),
)}
<table><thead><tr><th>pair</th><th class="n">r</th><th class="n">minutes</th><th>strength</th><th>reading</th></tr></thead><tbody>${corr}</tbody></table>
<h2>2. Inventory and reconciliation</h2>${matched}
<table><thead><tr><th>kit</th><th class="n">orders</th><th class="n">revenue</th><th class="n">viewers</th><th class="n">orders/viewer</th><th class="n">retained 15 min</th><th class="n">kit says</th><th class="n">hub holds</th><th class="n">missing</th><th>last arrival</th></tr></thead><tbody>${kits}</tbody></table>
<table><thead><tr><th>SKU</th><th>name</th><th class="n">start</th><th class="n">sold (kits)</th><th class="n">sold (hub)</th><th class="n">on hand</th><th class="n">kit − hub</th></tr></thead><tbody>${skus}</tbody></table>
${transfersTable(r.inventory.transfers)}
<h2>3. Audience retention by segment</h2>${retentionChart(r.retention.segments)}
<table><thead><tr><th>segment</th><th class="n">viewers</th><th class="n">kits</th><th class="n">5 min</th><th class="n">15 min</th><th class="n">30 min</th><th class="n">half gone by (min)</th></tr></thead><tbody>${segs}</tbody></table>
${r.retention.suppressed.length ? `<p class="muted">Too small to show (fewer than k people on every kit): ${esc(r.retention.suppressed.join(', '))}</p>` : ''}
<h2>For the next event</h2>
${best ? `<p>Best drop minute: <b>${best.m}</b> (${esc(best.basis)}). ${esc(best.reading)}</p>` : '<p class="muted">No viewers or drops to suggest a minute from.</p>'}
<table><thead><tr><th>drop opened</th><th>what</th><th class="n">viewers</th><th class="n">orders in 90 s</th><th class="n">units in 90 s</th></tr></thead><tbody>${drops}</tbody></table>
<table><thead><tr><th>hero SKU</th><th>name</th><th class="n">units</th><th class="n">units in drops' first 90 s</th></tr></thead><tbody>${heroes}</tbody></table>
</body></html>`;
}

/** Shared stock's transfers between kits (docs/shared-stock.md): nothing when the event's stock was not shared. */
function transfersTable(transfers: EventReportT['inventory']['transfers']): string {
  if (!transfers) return '';
  const rows = transfers
    .map(
      (t) =>
        `<tr><td>${esc(t.sku)}</td><td>${esc(t.from)}</td><td>${esc(t.to)}</td><td>${t.via === 'lan' ? 'venue LAN' : 'hub'}</td><td class="n">${t.requested}</td><td class="n">${t.released ?? 'waiting'}</td></tr>`,
    )
    .join('');
  return `<p>Shared stock: start is what the kits were allocated; units moved between kits (through the hub, or kit to kit over the venue LAN while the uplink was down):</p>
<table><thead><tr><th>SKU</th><th>from</th><th>to</th><th>via</th><th class="n">asked</th><th class="n">moved</th></tr></thead><tbody>${rows || '<tr><td colspan="6" class="muted">no transfer</td></tr>'}</tbody></table>`;
}

export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/**
 * Print the page to PDF with headless Chromium at `chromium` (POPKIT_CHROMIUM, else Debian's) (playwright-core drives it; no browser is downloaded).
 * Without Chromium: MEDIA_UNAVAILABLE naming the Debian package.
 */
export async function renderReportPdf(html: string, chromiumBin?: string): Promise<Buffer> {
  const executablePath = chromiumBin || DEFAULT_CHROMIUM;
  if (!fs.existsSync(executablePath))
    throw new KitError(
      'PDF_UNAVAILABLE',
      `no Chromium at ${executablePath}: install it (apt-get install chromium) or set POPKIT_CHROMIUM; the HTML and JSON reports need none`,
      { chromium: executablePath, package: 'chromium' },
    );
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-gpu',
      '--no-first-run',
    ],
  });
  try {
    const ctx = await browser.newContext({ javaScriptEnabled: false, offline: true });
    const page = await ctx.newPage();
    await page.setContent(html, { waitUntil: 'load' });
    return await page.pdf({
      format: 'A4',
      printBackground: true,
      margin: { top: '12mm', bottom: '12mm', left: '10mm', right: '10mm' },
    });
  } finally {
    await browser.close();
  }
}
