// `popkit report --event E --out DIR [--format html,pdf,json] [--suggest]`: the post-event report of
// this kit's event from its own LMDB (docs/report.md): report.json, report.html (inline SVG charts)
// and report.pdf (Chromium's print). `--suggest` adds suggest.json (hero SKUs and the best drop
// minute, with a catalog for the next event) and suggest.catalog.json (that catalog alone, for
// `popkit catalog load`), and keeps a copy of suggest.json in the data dir for `popkit preflight`.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BaseConfig, loadConfig, resolveDataDir, resolveKitId } from '../../core/config.ts';
import { parseIsoTime } from '../../core/contracts/catalog.ts';
import { ID_LEVEL } from '../../core/contracts/common.ts';
import { REPORT_FORMATS, type ReportFormat } from '../../core/contracts/report.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { writeFileDurable } from '../../core/durable-file.ts';
import { isKitError } from '../../core/errors.ts';
import { computeReport } from '../../core/report/compute.ts';
import { kitReportInput } from '../../core/report/kit-input.ts';
import { renderReportHtml, renderReportPdf } from '../../core/report/render.ts';
import { suggestionFile } from '../../core/report/suggest.ts';
import { openKitStore } from '../../core/store/index.ts';

const USAGE =
  'usage: popkit report --event E --out DIR [--format html,pdf,json] [--suggest] [--next-event ID] [--next-start ISO]\n\n' +
  "The post-event report of event E from this kit's store: latency and conversion, inventory and\n" +
  'reconciliation with the hub, audience retention by segment. Default formats: html,json (pdf needs\n' +
  'Chromium: apt-get install chromium, or POPKIT_CHROMIUM). --suggest also writes suggest.json and\n' +
  'suggest.catalog.json for the next event (docs/report.md#suggestions).\n';

function fail(msg: string): number {
  process.stderr.write(`popkit report: ${msg}\n`);
  return 2;
}

export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        event: { type: 'string' },
        out: { type: 'string' },
        format: { type: 'string' },
        suggest: { type: 'boolean' },
        'next-event': { type: 'string' },
        'next-start': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    return fail(`${(err as Error).message}\n${USAGE}`);
  }
  if (values['help']) {
    process.stdout.write(USAGE);
    return 0;
  }
  const eventId = values['event'];
  const out = values['out'];
  if (typeof eventId !== 'string' || !new RegExp(ID_LEVEL).test(eventId))
    return fail('--event must be an event id (letters, digits, _ . -; at most 64)');
  if (typeof out !== 'string' || out.length === 0 || out.includes('\0')) return fail('--out DIR is required');
  const formats = String(values['format'] ?? 'html,json').split(',');
  if (formats.length === 0 || formats.some((f) => !(REPORT_FORMATS as readonly string[]).includes(f)))
    return fail(`--format takes a comma-separated list of ${REPORT_FORMATS.join(', ')}`);
  const nextEvent = values['next-event'];
  if (nextEvent !== undefined && (typeof nextEvent !== 'string' || !new RegExp(ID_LEVEL).test(nextEvent)))
    return fail('--next-event must be an event id');
  const nextStart = values['next-start'];
  if (nextStart !== undefined && (typeof nextStart !== 'string' || !Number.isFinite(parseIsoTime(nextStart))))
    return fail('--next-start must be an ISO 8601 time with a zone');

  const cfg = loadConfig(BaseConfig, env);
  const dataDir = resolveDataDir(cfg);
  if (!fs.existsSync(dataLayout(dataDir).store))
    return fail(`no kit store in ${dataDir} (set POPKIT_DATA_DIR)`);
  const store = openKitStore(dataDir);
  let report: ReturnType<typeof computeReport>;
  let items: ReturnType<typeof kitReportInput>['items'];
  try {
    const gathered = kitReportInput(store, eventId, { kitId: resolveKitId(cfg) });
    items = gathered.items;
    report = computeReport(gathered.input);
  } finally {
    await store.close();
  }
  if (report.totals.orders === 0 && report.meta.kits.length > 0 && report.inventory.kits[0]?.kitOrders === 0)
    process.stderr.write(`popkit report: this kit holds no order of event ${eventId}\n`);
  fs.mkdirSync(out, { recursive: true });
  const written: string[] = [];
  const write = (name: string, data: string | Uint8Array) => {
    const file = path.join(out, name);
    writeFileDurable(file, data);
    written.push(file);
  };
  const want = new Set(formats as ReportFormat[]);
  if (want.has('json')) write('report.json', `${JSON.stringify(report, null, 2)}\n`);
  const html = want.has('html') || want.has('pdf') ? renderReportHtml(report) : '';
  if (want.has('html')) write('report.html', html);
  if (values['suggest']) {
    const s = suggestionFile(report, {
      items,
      ...(typeof nextEvent === 'string' ? { nextEventId: nextEvent } : {}),
      ...(typeof nextStart === 'string' ? { nextStart } : {}),
    });
    const text = `${JSON.stringify(s, null, 2)}\n`;
    write('suggest.json', text);
    write('suggest.catalog.json', `${JSON.stringify(s.catalog, null, 2)}\n`);
    writeFileDurable(dataLayout(dataDir).suggestion, text, { mode: 0o600 });
  }
  let code = 0;
  if (want.has('pdf')) {
    try {
      write('report.pdf', await renderReportPdf(html, cfg.POPKIT_CHROMIUM));
    } catch (err) {
      if (!isKitError(err)) throw err;
      process.stderr.write(`popkit report: ${err.code}: ${err.message}\n`);
      code = 1;
    }
  }
  const m = report.meta;
  process.stdout.write(
    `event ${eventId}: ${report.totals.orders} orders, ${(report.totals.revenueCents / 100).toFixed(2)} ${m.currency ?? ''}, ${m.complete ? 'complete' : `incomplete (${m.missing.map((x) => x.kind).join(', ')})`}\n${written.map((f) => `wrote ${f}`).join('\n')}\n`,
  );
  return code;
}
