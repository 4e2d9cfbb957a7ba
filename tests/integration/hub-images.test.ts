// Product images at the hub on real PostgreSQL (a schema of its own): an admin upload is checked by
// its bytes and dimensions, rendered for phones and screens without metadata, stored under the sha256
// of each rendition and served immutable with an ETag and single ranges. Hostile uploads (truncated,
// over the byte cap, a wrong type, a PNG declaring a gigapixel, a lying content type) are refused
// with a code and store nothing.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import sharp from 'sharp';
import { IMAGE_LIMITS, type ImageUploadOutT, RENDITIONS } from '../../core/contracts/product-media.ts';
import type { HubService } from '../../services/hub/hub-service.ts';
import { dropSchema, PG_URL, startHub, uniqueId } from '../support/hub-link.ts';
import { photoJpeg, pngBomb, smallPng, zipBytes } from '../support/product-images.ts';

const schema = uniqueId('t_hubimages').replace(/-/g, '_');
let hub: HubService;

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function upload(body: Uint8Array, type = 'image/jpeg', token: string | null = hub.adminToken) {
  const res = await fetch(`${hub.httpUrl}/v1/images`, {
    method: 'POST',
    headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body as unknown as BodyInit,
  });
  return { status: res.status, body: (await res.json()) as ImageUploadOutT & { error?: { code: string } } };
}

async function codeOf(res: Response): Promise<string | undefined> {
  return ((await res.json()) as { error?: { code?: string } }).error?.code;
}

async function rows(): Promise<number> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return Number((await c.query(`SELECT count(*) AS n FROM "${schema}".product_images`)).rows[0].n);
  } finally {
    await c.end();
  }
}

before(async () => {
  hub = await startHub({ schema });
});

after(async () => {
  await hub?.stop();
  await dropSchema(schema);
});

describe('hub product images', () => {
  let image: { phone: string; screen: string };

  test('an upload is rendered for phones and screens, content-addressed, metadata stripped', async () => {
    const jpeg = await photoJpeg(1600, 1200);
    assert.ok((await sharp(jpeg).metadata()).exif, 'the test photo carries EXIF');
    const res = await upload(jpeg);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    image = res.body.image;
    assert.match(image.phone, /^[0-9a-f]{64}$/);
    assert.notEqual(image.phone, image.screen);
    assert.deepEqual(res.body.original, { format: 'image/jpeg', width: 1600, height: 1200 });
    for (const [name, px] of Object.entries(RENDITIONS)) {
      const r = res.body.renditions[name as keyof typeof RENDITIONS];
      const got = await fetch(`${hub.httpUrl}/v1/images/${r.sha256}`);
      assert.equal(got.status, 200);
      const bytes = Buffer.from(await got.arrayBuffer());
      assert.equal(sha(bytes), r.sha256, 'the name is the hash of the bytes');
      assert.equal(bytes.length, r.bytes);
      assert.equal(got.headers.get('content-type'), 'image/webp');
      assert.equal(got.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.equal(got.headers.get('etag'), `"${r.sha256}"`);
      const meta = await sharp(bytes).metadata();
      assert.equal(meta.format, 'webp');
      assert.equal(Math.max(meta.width ?? 0, meta.height ?? 0), px);
      assert.equal(meta.exif, undefined, 'no EXIF left');
      assert.equal(meta.icc, undefined);
    }
    assert.equal(await rows(), 2);
    // the same upload again: the same hashes, no new rows
    const again = await upload(jpeg);
    assert.equal(again.status, 201);
    assert.deepEqual(again.body.image, image);
    assert.equal(await rows(), 2);
  });

  test('a small PNG is not enlarged; WebP uploads are taken too', async () => {
    const png = await smallPng(64, 48);
    const res = await upload(png, 'image/png');
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.renditions.phone.width, 64);
    assert.equal(res.body.renditions.phone.height, 48);
    const webp = await sharp(png).webp().toBuffer();
    assert.equal((await upload(webp, 'image/webp')).status, 201);
  });

  test('ETag revalidation answers 304; ranges answer 206 with the right slice; past the end 416', async () => {
    const url = `${hub.httpUrl}/v1/images/${image.screen}`;
    const full = Buffer.from(await (await fetch(url)).arrayBuffer());
    const nm = await fetch(url, { headers: { 'if-none-match': `"${image.screen}"` } });
    assert.equal(nm.status, 304);
    const part = await fetch(url, { headers: { range: 'bytes=100-' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-${full.length - 1}/${full.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), full.subarray(100));
    const mid = await fetch(url, { headers: { range: 'bytes=10-19' } });
    assert.deepEqual(Buffer.from(await mid.arrayBuffer()), full.subarray(10, 20));
    const past = await fetch(url, { headers: { range: `bytes=${full.length}-` } });
    assert.equal(past.status, 416);
    assert.equal(await codeOf(past), 'RANGE_NOT_SATISFIABLE');
    // a multi-range or garbage header: the whole body
    const many = await fetch(url, { headers: { range: 'bytes=0-1,5-6' } });
    assert.equal(many.status, 200);
    assert.equal(Buffer.from(await many.arrayBuffer()).length, full.length);
  });

  test('GET validates the hash and names a missing image', async () => {
    for (const bad of ['abc', 'A'.repeat(64), `${'0'.repeat(63)}g`, '__proto__', '%00'.repeat(3)]) {
      const res = await fetch(`${hub.httpUrl}/v1/images/${bad}`);
      assert.equal(res.status, 400, bad);
      assert.equal(await codeOf(res), 'VALIDATION');
    }
    const res = await fetch(`${hub.httpUrl}/v1/images/${'0'.repeat(64)}`);
    assert.equal(res.status, 404);
    assert.equal(await codeOf(res), 'IMAGE_NOT_FOUND');
  });

  test('a catalog may name only images the hub holds', async () => {
    const put = (img: { phone: string; screen: string }) =>
      fetch(`${hub.httpUrl}/v1/events/${uniqueId('ev')}/catalog`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          currency: 'EUR',
          items: [{ sku: 'TEE', name: 'Tee', priceCents: 100, stock: 1, image: img }],
        }),
      });
    const unknown = { phone: image.phone, screen: '0'.repeat(64) };
    const refused = await put(unknown);
    assert.equal(refused.status, 404);
    const body = (await refused.json()) as { error: { code: string; details: { missing: string[] } } };
    assert.equal(body.error.code, 'IMAGE_NOT_FOUND');
    assert.deepEqual(body.error.details.missing, ['0'.repeat(64)]);
    assert.ok([200, 202].includes((await put(image)).status));
  });

  test('hostile uploads are refused with a code and store nothing', async () => {
    const before = await rows();
    const jpeg = await photoJpeg(640, 480, 3);
    const cases: Array<[string, Uint8Array, string, number, string]> = [
      ['no token', jpeg, 'image/jpeg', 401, 'UNAUTHORIZED'],
      ['truncated JPEG', jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'image/jpeg', 422, 'IMAGE_INVALID'],
      ['a zip', zipBytes(), 'application/octet-stream', 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['a zip labelled JPEG', zipBytes(), 'image/jpeg', 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['a gigapixel PNG header', await pngBomb(), 'image/png', 413, 'IMAGE_TOO_LARGE'],
      [
        'one side over the cap',
        await pngBomb(IMAGE_LIMITS.side + 1, 10),
        'image/png',
        413,
        'IMAGE_TOO_LARGE',
      ],
      [
        'JPEG magic, then junk',
        Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(500, 0)]),
        'image/jpeg',
        422,
        'IMAGE_INVALID',
      ],
      ['PNG magic only', (await smallPng()).subarray(0, 8), 'image/png', 422, 'IMAGE_INVALID'],
      ['NUL bytes', Buffer.alloc(1000, 0), 'image/png', 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['a JSON body', Buffer.from('{"image":"x"}'), 'application/json', 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [
        'over the byte cap',
        Buffer.alloc(IMAGE_LIMITS.uploadBytes + 1, 0xff),
        'image/jpeg',
        413,
        'BODY_TOO_LARGE',
      ],
    ];
    for (const [what, body, type, status, code] of cases) {
      const res = await upload(body, type, what === 'no token' ? null : hub.adminToken);
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error?.code, code, what);
    }
    assert.equal(await rows(), before, 'nothing stored');
  });
});

describe('the embedded hub (PGlite) stores and serves the same way', () => {
  test('upload and GET round-trip on PGlite', { timeout: 120_000 }, async () => {
    const embedded = await startHub({ databaseUrl: null });
    try {
      const png = await smallPng(300, 200);
      const res = await fetch(`${embedded.httpUrl}/v1/images`, {
        method: 'POST',
        headers: { 'content-type': 'image/png', authorization: `Bearer ${embedded.adminToken}` },
        body: png as unknown as BodyInit,
      });
      assert.equal(res.status, 201);
      const { image } = (await res.json()) as ImageUploadOutT;
      const got = await fetch(`${embedded.httpUrl}/v1/images/${image.phone}`);
      assert.equal(got.status, 200);
      assert.equal(sha(Buffer.from(await got.arrayBuffer())), image.phone);
      const cat = await fetch(`${embedded.httpUrl}/v1/events/ev-embedded/catalog`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${embedded.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ items: [{ sku: 'A', name: 'A', priceCents: 1, stock: 1, image }] }),
      });
      assert.ok([200, 202].includes(cat.status), await cat.text());
      const part = await fetch(`${embedded.httpUrl}/v1/images/${image.phone}`, {
        headers: { range: 'bytes=5-9' },
      });
      assert.equal(part.status, 206);
      assert.equal(Buffer.from(await part.arrayBuffer()).length, 5);
    } finally {
      await embedded.stop();
    }
  });
});
