// `popkit report` on a kit, as a command against a real LMDB store: orders taken through checkout's own
// OrderService, some acked by the hub and one not (the report names it), per-second samples and
// viewer records written into the store as the series recorder and the viewer tracker would (their
// writers are other parts of #12), a hostile item name. The JSON fits the contract, the HTML escapes
// the name, the PDF is Chromium's print, and --suggest writes a catalog `popkit catalog load` accepts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { catalogInput } from '../../core/contracts/catalog.ts';
import { type EventReportT, eventReport, suggestFile } from '../../core/contracts/report.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { applyOrderAck, readEventState, replaceCatalog, setEventState } from '../../core/store/index.ts';
import { makeKit, REPO, type TestKit, tmpDir, uniqueId } from '../support/hub-link.ts';

const exec = promisify(execFile);
const BIN = path.join(REPO, 'bin', 'popkit.js');
const HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>';

async function popkit(args: string[], env: Record<string, string>) {
  try {
    const r = await exec(process.execPath, [BIN, ...args], {
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
      timeout: 90_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('popkit report on a kit', () => {
  const eventId = uniqueId('ev-rep');
  let kit: TestKit;
  let env: Record<string, string>;
  const orderIds: string[] = [];
  let start = 0;

  before(async () => {
    kit = await makeKit(uniqueId('kit-rep'));
    await replaceCatalog(
      kit.store,
      {
        version: 2,
        eventId,
        currency: 'EUR',
        items: [
          { sku: 'TEE', name: 'Tour tee', priceCents: 2500, stock: 100 },
          { sku: 'EVIL', name: HOSTILE, priceCents: 1000, stock: 50 },
        ],
      },
      { source: 'local' },
    );
    await setEventState(kit.store, true, eventId, null);
    start = Math.floor(Date.parse(readEventState(kit.store).startedAt!) / 1000);
    for (let i = 0; i < 6; i++) {
      const res = await kit.orders.create(
        { lines: [{ sku: i % 3 === 0 ? 'EVIL' : 'TEE', qty: 1 + (i % 2) }], payment: { method: 'cash' } },
        undefined,
      );
      orderIds.push(res.order.id);
    }
    // the hub acked all but the last order
    for (const id of orderIds.slice(0, -1)) await applyOrderAck(kit.store, id, { state: 'settled' });
    // what the series recorder and the viewer tracker write (their writers live on other branches)
    await kit.store.root.transaction(() => {
      for (let s = 0; s < 180; s++)
        void kit.store.series.put(start - 60 + s, {
          popkit_viewers: 10 + (s % 7),
          popkit_order_duration_seconds_p95: 0.05 + (s % 5) / 100,
          popkit_stream_level: s % 3,
          popkit_stream_latency_seconds: 2 + (s % 4) / 2,
          popkit_reservations_made_total: s % 30 === 0 ? 2 : 0,
          popkit_reservations_converted_total: s % 60 === 0 ? 1 : 0,
        });
      void kit.store.markers.put([start, 0], { t: start, kind: 'drop_open', label: 'EVIL' });
      for (let v = 0; v < 8; v++)
        void kit.store.viewers.put(`viewer${v}`, {
          id: `viewer${v}`,
          eventId,
          firstSeen: start,
          lastSeen: start + 60 * v,
          watchSeconds: 60 * v,
          sessions: [[start, start + 60 * v]],
          inVenue: v % 2 === 0,
        });
    });
    await setEventState(kit.store, false, undefined, null);
    await kit.close();
    env = { POPKIT_DATA_DIR: kit.dataDir, POPKIT_KIT_ID: kit.kitId };
  });

  test('html, json, pdf and --suggest from the kit store', async () => {
    const out = tmpDir('report-out');
    const r = await popkit(
      [
        'report',
        '--event',
        eventId,
        '--out',
        out,
        '--format',
        'html,json,pdf',
        '--suggest',
        '--next-start',
        '2031-05-01T18:00:00Z',
      ],
      env,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /6 orders/);
    const report: EventReportT = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    assert.ok(eventReport.check(report), eventReport.errors(report).join('; '));
    assert.equal(report.meta.source, 'kit');
    assert.deepEqual(report.meta.kits, [kit.kitId]);
    assert.equal(report.totals.orders, 6);
    // lines: EVIL×1, TEE×2, TEE×1, EVIL×2, TEE×1, TEE×2
    const sku = (id: string) => report.inventory.skus.find((s) => s.sku === id)!;
    const bySku = { TEE: sku('TEE'), EVIL: sku('EVIL') };
    assert.equal(bySku.TEE.soldKit, 6);
    assert.equal(bySku.EVIL.soldKit, 3);
    assert.equal(bySku.TEE.start, 100);
    assert.equal(bySku.TEE.onHand, 94);
    // the last order (TEE×2) is not acked: the hub's ledger lacks it
    assert.equal(bySku.TEE.soldHub, 4);
    assert.equal(bySku.TEE.diff, 2);
    const rec = report.inventory.kits[0]!;
    assert.deepEqual([rec.kitOrders, rec.hubOrders, rec.missingAtHub], [6, 5, 1]);
    assert.equal(report.inventory.matched, false);
    assert.ok(report.meta.missing.some((m) => m.kind === 'ledger_behind'));
    // audience from the viewer records: 8 viewers in 'all'
    const all = report.retention.segments.find((s) => s.segment === 'all')!;
    assert.equal(all.viewers, 8);
    assert.deepEqual(all.counts.slice(0, 3), [8, 7, 6]);
    assert.ok(report.latency.minutes.some((b) => b.viewers !== null));
    assert.equal(report.totals.reservationsMade > 0, true);
    assert.equal(report.drops.length, 1);

    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    assert.ok(!html.includes(HOSTILE), 'the hostile name is not in the page as markup');
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;'));
    assert.ok(
      !/<script|onerror=/.test(html.replace(/&lt;[^&]*&gt;/g, '')),
      'no script or handler in the page',
    );
    const pdf = fs.readFileSync(path.join(out, 'report.pdf'));
    assert.equal(pdf.subarray(0, 5).toString(), '%PDF-');

    const s = JSON.parse(fs.readFileSync(path.join(out, 'suggest.json'), 'utf8'));
    assert.ok(suggestFile.check(s));
    assert.equal(s.heroes[0]?.sku, 'TEE');
    const cat = JSON.parse(fs.readFileSync(path.join(out, 'suggest.catalog.json'), 'utf8'));
    assert.ok(catalogInput.check(cat), catalogInput.errors(cat).join('; '));
    assert.equal(cat.eventId, `${eventId}-next`);
    assert.ok(cat.items.every((i) => i.hero === true));
    assert.equal(cat.items.find((i) => i.sku === 'EVIL')?.name, HOSTILE, 'the name kept as data');
    // a copy for popkit preflight in the data dir
    assert.deepEqual(JSON.parse(fs.readFileSync(dataLayout(kit.dataDir).suggestion, 'utf8')), s);
  });

  test('no Chromium: a coded error naming the package; the other formats are still written', async () => {
    const out = tmpDir('report-nochrome');
    const r = await popkit(['report', '--event', eventId, '--out', out, '--format', 'json,pdf'], {
      ...env,
      POPKIT_CHROMIUM: path.join(out, 'no-such-chromium'),
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /PDF_UNAVAILABLE/);
    assert.match(r.stderr, /apt-get install chromium/);
    assert.ok(fs.existsSync(path.join(out, 'report.json')));
    assert.ok(!fs.existsSync(path.join(out, 'report.pdf')));
  });

  test('hostile arguments are refused before anything is written', async () => {
    const out = tmpDir('report-bad');
    const cases = [
      ['--event', '../etc', '--out', out],
      ['--event', 'a'.repeat(65), '--out', out],
      ['--event', '__proto__/x', '--out', out],
      ['--event', eventId, '--out', out, '--format', 'html,exe'],
      ['--event', eventId, '--out', out, '--format', ''],
      ['--event', eventId, '--out', out, '--next-start', 'tomorrow'],
      ['--event', eventId],
      ['--event', eventId, '--out', out, '--bogus'],
    ];
    for (const args of cases) {
      const r = await popkit(['report', ...args], env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    assert.deepEqual(fs.readdirSync(out), []);
  });
});
