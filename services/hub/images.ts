// Product images at the hub (docs/architecture.md#product-media): an upload is checked (type by magic
// bytes, byte size, declared dimensions before any decoding), decoded by sharp, rendered for phones
// and screens as WebP without metadata, and each rendition is stored in PostgreSQL under the sha256 of
// its bytes.
//
// Why PostgreSQL (bytea) and not files in the hub's data dir: several hub workers share one database
// but not one disk, and the regional hub's read replicas are database replicas; a rendition is a few
// tens of KB, written once and never changed, so the database holds it as well as a file would and
// every worker can serve every image. The embedded hub (PGlite) runs the same SQL.
import { createHash } from 'node:crypto';
import type { Metadata } from 'sharp';
import {
  IMAGE_LIMITS,
  type ImageUploadOutT,
  RENDITION_NAMES,
  RENDITIONS,
  type RenditionName,
  sniffImageType,
} from '../../core/contracts/product-media.ts';
import { KitError } from '../../core/errors.ts';
import type { Queryable } from './db.ts';

/** sharp (libvips) is loaded on the first upload: a hub that never gets one does not carry it. */
let sharpLoaded: Promise<typeof import('sharp')> | undefined;
async function loadSharp() {
  sharpLoaded ??= import('sharp').then((m) => {
    // the embedded hub shares the kit's few cores with checkout: one libvips thread renders
    m.default.concurrency(1);
    return m;
  });
  return (await sharpLoaded).default;
}

const FORMAT_OF = { 'image/jpeg': 'jpeg', 'image/png': 'png', 'image/webp': 'webp' } as const;

export interface Rendition {
  sha256: string;
  contentType: string;
  width: number;
  height: number;
  bytes: Buffer;
}

export interface StoredImage {
  contentType: string;
  bytes: Buffer;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Check an upload and render it; throws UNSUPPORTED_MEDIA_TYPE, IMAGE_TOO_LARGE or IMAGE_INVALID. */
export async function renderImage(
  upload: Buffer,
): Promise<{ original: ImageUploadOutT['original']; renditions: Record<RenditionName, Rendition> }> {
  if (upload.length > IMAGE_LIMITS.uploadBytes)
    throw new KitError('BODY_TOO_LARGE', 'image over the upload limit', {
      bytes: upload.length,
      max: IMAGE_LIMITS.uploadBytes,
    });
  const type = sniffImageType(upload);
  if (!type)
    throw new KitError('UNSUPPORTED_MEDIA_TYPE', 'not a JPEG, PNG or WebP image (by its first bytes)');
  const sharp = await loadSharp();
  // the header alone first: a small file may declare a gigapixel, refused before anything is decoded
  const options = { limitInputPixels: IMAGE_LIMITS.pixels, failOn: 'error' as const };
  let meta: Metadata;
  try {
    // the header only (nothing decoded): the limit is checked below, so that it is named as such
    meta = await sharp(upload, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new KitError('IMAGE_INVALID', `image header unreadable: ${(err as Error).message}`);
  }
  if (meta.format !== FORMAT_OF[type])
    throw new KitError('IMAGE_INVALID', `bytes start like ${type} but decode as ${meta.format}`);
  const { width, height } = meta;
  if (!width || !height) throw new KitError('IMAGE_INVALID', 'image has no dimensions');
  if (width > IMAGE_LIMITS.side || height > IMAGE_LIMITS.side || width * height > IMAGE_LIMITS.pixels)
    throw new KitError('IMAGE_TOO_LARGE', `image is ${width}×${height}`, {
      width,
      height,
      maxSide: IMAGE_LIMITS.side,
      maxPixels: IMAGE_LIMITS.pixels,
    });
  const renditions = {} as Record<RenditionName, Rendition>;
  for (const name of RENDITION_NAMES) {
    const px = RENDITIONS[name];
    try {
      // rotate(): EXIF orientation applied, then every piece of metadata dropped (sharp keeps none by default)
      const { data, info } = await sharp(upload, options)
        .rotate()
        .resize({ width: px, height: px, fit: 'inside', withoutEnlargement: true })
        .webp({ quality: 80 })
        .toBuffer({ resolveWithObject: true });
      renditions[name] = {
        sha256: sha256(data),
        contentType: 'image/webp',
        width: info.width,
        height: info.height,
        bytes: data,
      };
    } catch (err) {
      throw new KitError('IMAGE_INVALID', `image does not decode: ${(err as Error).message}`);
    }
  }
  return { original: { format: type, width, height }, renditions };
}

/** One upload at a time per worker: decoding is the heavy part and needs memory of its own. */
let queue: Promise<unknown> = Promise.resolve();

export async function storeUpload(db: Queryable, upload: Buffer): Promise<ImageUploadOutT> {
  const run = queue.then(() => renderImage(upload));
  queue = run.catch(() => undefined);
  const { original, renditions } = await run;
  const source = sha256(upload);
  for (const name of RENDITION_NAMES) {
    const r = renditions[name];
    // content-addressed: the same bytes are the same row, whoever uploaded them first
    await db.query(
      `INSERT INTO product_images (sha256, content_type, width, height, bytes, source_sha256, rendition)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sha256) DO NOTHING`,
      [r.sha256, r.contentType, r.width, r.height, r.bytes, source, name],
    );
  }
  const out = (r: Rendition) => ({
    sha256: r.sha256,
    contentType: r.contentType,
    width: r.width,
    height: r.height,
    bytes: r.bytes.length,
  });
  return {
    image: { phone: renditions.phone.sha256, screen: renditions.screen.sha256 },
    renditions: { phone: out(renditions.phone), screen: out(renditions.screen) },
    original,
  };
}

export async function readImage(db: Queryable, hash: string): Promise<StoredImage | undefined> {
  const { rows } = await db.query<{ content_type: string; bytes: Uint8Array }>(
    'SELECT content_type, bytes FROM product_images WHERE sha256 = $1',
    [hash],
  );
  const row = rows[0];
  if (!row) return undefined;
  // pg answers a Buffer, PGlite a Uint8Array
  const b = row.bytes;
  return { contentType: row.content_type, bytes: Buffer.from(b.buffer, b.byteOffset, b.byteLength) };
}

/** Which of `hashes` the hub holds no rendition for (a catalog must not name an image kits cannot fetch). */
export async function missingImages(db: Queryable, hashes: string[]): Promise<string[]> {
  if (hashes.length === 0) return [];
  const { rows } = await db.query<{ sha256: string }>(
    'SELECT sha256 FROM product_images WHERE sha256 = ANY($1::text[])',
    [hashes],
  );
  const have = new Set(rows.map((r) => r.sha256));
  return hashes.filter((h) => !have.has(h));
}
