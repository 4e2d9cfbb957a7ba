// LL-HLS through checkout's GET /live/:file: a blocking playlist reload (_HLS_msn / _HLS_part) is held
// until the playlist advances, refused when too far ahead, answered 503 when it never comes; the part
// the preload hint names is held until written; hostile query values are 400 and change nothing. The
// playlists are rendered by media's own writer (core/contracts/hls-playlist.ts); the last test runs
// the real media service (GStreamer) into the same data dir.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LivePlaylist, parseMediaPlaylist, playlistPosition } from '../../core/contracts/hls-playlist.ts';
import { dataLayout } from '../../core/data-dir.ts';
import { loadGst } from '../../services/media/gst-loader.ts';
import { startCheckout } from '../support/checkout.ts';
import { quietSimMedia } from '../support/media.ts';

type Kit = Awaited<ReturnType<typeof startCheckout>>;
let kit: Kit;
let hls: string;
const shape = { targetS: 1, partTargetS: 0.334, partsPerSegment: 3, windowSegments: 5 };
let pl: LivePlaylist;
const TS = Buffer.from([0x47, 0x40, 0x00, 0x10, 0x00]);

/** A part finishes: its file first, then the playlists (as media does). */
function addPart() {
  fs.writeFileSync(path.join(hls, pl.nextPartUri()), TS);
  const seg = pl.addPart(1 / 3, Date.now(), true);
  if (seg) fs.writeFileSync(path.join(hls, seg.uri), TS);
  pl.trim();
  fs.writeFileSync(path.join(hls, '.ll.tmp'), pl.renderLL());
  fs.renameSync(path.join(hls, '.ll.tmp'), path.join(hls, 'll.m3u8'));
  fs.writeFileSync(path.join(hls, '.index.tmp'), pl.renderPlain());
  fs.renameSync(path.join(hls, '.index.tmp'), path.join(hls, 'index.m3u8'));
}

before(async () => {
  kit = await startCheckout();
  hls = dataLayout(kit.dataDir).hls;
  fs.mkdirSync(hls, { recursive: true });
  pl = new LivePlaylist(shape);
  pl.startRun();
  for (let i = 0; i < 7; i++) addPart(); // seg0, seg1 whole; seg2 has one part
});
after(() => kit.kit.close());

const get = (url: string) => kit.app.inject({ method: 'GET', url });
const position = () =>
  playlistPosition(parseMediaPlaylist(fs.readFileSync(path.join(hls, 'll.m3u8'), 'utf8'))!);

describe('blocking playlist reload', () => {
  test('already there: answered at once with the playlist, cacheable for this query', async () => {
    const res = await get('/live/ll.m3u8?_HLS_msn=1');
    assert.equal(res.statusCode, 200, res.body);
    assert.match(res.body, /seg1\.ts/);
    assert.equal(res.headers['cache-control'], 'max-age=6');
    assert.equal(res.headers['content-type'], 'application/vnd.apple.mpegurl');
    const part = await get('/live/ll.m3u8?_HLS_msn=2&_HLS_part=0');
    assert.equal(part.statusCode, 200);
    assert.match(part.body, /seg2-p0\.ts/);
  });

  test('the next part: held until media lists it, then answered with it', async () => {
    const { lastMsn, openParts } = position();
    let written = false;
    const pending = get(`/live/ll.m3u8?_HLS_msn=${lastMsn + 1}&_HLS_part=${openParts}`).then((r) => ({
      r,
      written,
    }));
    await new Promise((r) => setTimeout(r, 300));
    written = true;
    addPart();
    const { r, written: wasWritten } = await pending;
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(wasWritten, true, 'not answered before the part existed');
    assert.match(r.body, new RegExp(`seg${lastMsn + 1}-p${openParts}\\.ts`));
  });

  test('the next whole segment on the plain playlist: held until it closes', async () => {
    const { lastMsn } = position();
    let written = 0;
    const pending = get(`/live/index.m3u8?_HLS_msn=${lastMsn + 1}`).then((r) => ({ r, written }));
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      written += 1;
      addPart();
    }
    const { r, written: n } = await pending;
    assert.equal(r.statusCode, 200, r.body);
    assert.ok(n >= 1);
    assert.match(r.body, new RegExp(`seg${lastMsn + 1}\\.ts`));
    assert.equal(parseMediaPlaylist(r.body)!.segments.at(-1)!.msn, lastMsn + 1);
  });

  test('never reached: 503 NOT_READY after three target durations', async () => {
    const { lastMsn, openParts } = position();
    const res = await get(`/live/ll.m3u8?_HLS_msn=${lastMsn + 1}&_HLS_part=${openParts + 1}`);
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(res.json().error.code, 'NOT_READY');
  });

  test('more than two segments ahead: 400 at once', async () => {
    const { lastMsn } = position();
    const res = await get(`/live/ll.m3u8?_HLS_msn=${lastMsn + 3}`);
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'BAD_REQUEST');
    assert.match(res.json().error.message, /ahead/);
  });

  test('hostile query values: 400, nothing held, nothing changed', async () => {
    const before = fs.readFileSync(path.join(hls, 'll.m3u8'), 'utf8');
    const cases: [string, string][] = [
      ['ll.m3u8?_HLS_msn=abc', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=-1', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=1e3', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=1.5', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=%00', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=1%002', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=99999999999999999999999', 'VALIDATION'],
      [`ll.m3u8?_HLS_msn=${'9'.repeat(5000)}`, 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=1&_HLS_msn=2', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=1&_HLS_part=x', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=1&_HLS_part=99999', 'VALIDATION'],
      ['ll.m3u8?_HLS_msn=1&_HLS_part=1000', 'BAD_REQUEST'],
      ['ll.m3u8?_HLS_part=0', 'BAD_REQUEST'],
      ['ll.m3u8?_HLS_skip=NO', 'VALIDATION'],
      ['index.m3u8?_HLS_msn=1&_HLS_part=0', 'BAD_REQUEST'],
      ['seg0.ts?_HLS_msn=1', 'BAD_REQUEST'],
      ['ll.m3u8?_HLS_msn=999999999999999', 'BAD_REQUEST'],
    ];
    for (const [url, code] of cases) {
      const res = await get(`/live/${url}`);
      assert.equal(res.statusCode, 400, `${url}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      assert.equal(res.json().error.code, code, url);
    }
    // unknown parameters (a cache buster, __proto__) are ignored: the plain answer
    for (const url of ['ll.m3u8?__proto__=1', 'll.m3u8?constructor=x&t=123', 'll.m3u8?_HLS_skip=YES']) {
      const res = await get(`/live/${url}`);
      assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
      assert.equal(res.headers['cache-control'], 'no-cache');
    }
    assert.equal(fs.readFileSync(path.join(hls, 'll.m3u8'), 'utf8'), before);
  });

  test('the preload-hinted part: held until written; another missing part is 404 at once', async () => {
    const hint = parseMediaPlaylist(fs.readFileSync(path.join(hls, 'll.m3u8'), 'utf8'))!.preloadHint!;
    assert.ok(hint);
    let written = false;
    const pending = get(`/live/${hint}`).then((r) => ({ r, written }));
    await new Promise((r) => setTimeout(r, 200));
    written = true;
    addPart();
    const { r, written: was } = await pending;
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(was, true);
    assert.deepEqual(r.rawPayload, TS);
    const miss = await get('/live/seg999-p0.ts');
    assert.equal(miss.statusCode, 404);
    assert.equal(miss.json().error.code, 'NOT_FOUND');
  });
});

const gst = loadGst();
test('real media service: each blocking request for the next part returns a playlist that has it', {
  skip: !gst.ok,
  timeout: 60_000,
}, async () => {
  const own = await startCheckout();
  const service = quietSimMedia({ gst, dataDir: own.dataDir, bitrateKbps: 500 });
  service.start();
  try {
    const ll = path.join(dataLayout(own.dataDir).hls, 'll.m3u8');
    const deadline = Date.now() + 20_000;
    while (!fs.existsSync(ll) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    let p = parseMediaPlaylist(fs.readFileSync(ll, 'utf8'))!;
    for (let i = 0; i < 8; i++) {
      const { lastMsn, openParts } = playlistPosition(p);
      const res = await own.app.inject({
        method: 'GET',
        url: `/live/ll.m3u8?_HLS_msn=${lastMsn + 1}&_HLS_part=${openParts}`,
      });
      assert.equal(res.statusCode, 200, res.body);
      p = parseMediaPlaylist(res.body)!;
      const now = playlistPosition(p);
      assert.ok(
        now.lastMsn > lastMsn || now.openParts > openParts,
        `advanced past ${lastMsn}/${openParts}: ${now.lastMsn}/${now.openParts}`,
      );
      const uri =
        now.lastMsn > lastMsn ? p.segments.find((s) => s.msn === lastMsn + 1)!.uri : p.openParts.at(-1)!.uri;
      const seg = await own.app.inject({ method: 'GET', url: `/live/${uri}` });
      assert.equal(seg.statusCode, 200);
      assert.equal(seg.rawPayload[0], 0x47, 'MPEG-TS sync byte');
    }
  } finally {
    await service.stop();
    await own.kit.close();
  }
});
