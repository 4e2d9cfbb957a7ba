// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// GET /live/:file serves what media writes into <data>/hls/: the playlist and segments with their
// content types and cache rules, CORS open; a missing file is 404 NOT_FOUND, a name outside the
// pattern (traversal, other extensions) is refused before the disk is touched.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { dataLayout } from '../../core/data-dir.ts';
import { startCheckout } from '../support/checkout.ts';

type Kit = Awaited<ReturnType<typeof startCheckout>>;
let kit: Kit;
let hls: string;
const PLAYLIST = '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00001.ts\n';
const SEGMENT = Buffer.from([0x47, 0x40, 0x00, 0x10, 0xde, 0xad, 0xbe, 0xef]);

before(async () => {
  kit = await startCheckout();
  hls = dataLayout(kit.dataDir).hls;
  fs.mkdirSync(hls, { recursive: true });
  fs.writeFileSync(path.join(hls, 'live.m3u8'), PLAYLIST);
  fs.writeFileSync(path.join(hls, 'seg_00001.ts'), SEGMENT);
  // a secret beside the HLS dir that no /live/ name may reach
  fs.writeFileSync(path.join(kit.dataDir, 'secret.ts'), 'nope');
});
after(() => kit.kit.close());

const get = (file: string) => kit.app.inject({ method: 'GET', url: `/live/${file}` });

test('the playlist is served as an HLS playlist, never cached, CORS open', async () => {
  const res = await get('live.m3u8');
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.headers['content-type'], 'application/vnd.apple.mpegurl');
  assert.equal(res.headers['cache-control'], 'no-cache');
  assert.equal(res.headers['access-control-allow-origin'], '*');
  assert.equal(res.body, PLAYLIST);
});

test('a segment is served byte for byte as MPEG-TS, cacheable', async () => {
  const res = await get('seg_00001.ts');
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.headers['content-type'], 'video/mp2t');
  assert.equal(res.headers['cache-control'], 'max-age=60');
  assert.equal(res.headers['access-control-allow-origin'], '*');
  assert.deepEqual(res.rawPayload, SEGMENT);
});

test('a missing playlist or segment is 404 NOT_FOUND with its own message', async () => {
  const noPlaylist = await get('other.m3u8');
  assert.equal(noPlaylist.statusCode, 404);
  assert.equal(noPlaylist.json().error.code, 'NOT_FOUND');
  assert.match(noPlaylist.json().error.message, /no live stream/);
  const gone = await get('seg_99999.ts');
  assert.equal(gone.statusCode, 404);
  assert.equal(gone.json().error.code, 'NOT_FOUND');
  assert.match(gone.json().error.message, /segment gone/);
  // media removes an old segment: the same name becomes 404
  fs.rmSync(path.join(hls, 'seg_00001.ts'));
  assert.equal((await get('seg_00001.ts')).statusCode, 404);
  fs.writeFileSync(path.join(hls, 'seg_00001.ts'), SEGMENT);
});

test('names outside the pattern are refused (400), so nothing outside hls/ is reachable', async () => {
  for (const name of ['..%2Fsecret.ts', '..%2F..%2Fetc%2Fpasswd', 'live.txt', 'live', '.m3u8', 'a.b.ts']) {
    const res = await get(name);
    assert.equal(res.statusCode, 400, `${name}: ${res.statusCode} ${res.body}`);
    assert.equal(res.json().error.code, 'VALIDATION', name);
  }
});
