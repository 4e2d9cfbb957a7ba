// A checkout whose <data>/product-media holds real renditions, as sync leaves them (a file named by the
// sha256 of its bytes), and a catalog naming one image that is on the kit and one that is not.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { dataLayout } from '../../core/data-dir.ts';

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Put `bytes` into the kit's product-media dir under their hash; returns the hash. */
export function cacheImage(dataDir: string, bytes: Buffer): string {
  const dir = dataLayout(dataDir).productMedia;
  fs.mkdirSync(dir, { recursive: true });
  const h = sha256(bytes);
  fs.writeFileSync(path.join(dir, h), bytes);
  return h;
}

export async function webp(width: number, height: number, color: string): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: color } })
    .webp()
    .toBuffer();
}

/** A catalog whose LOCAL item's image is cached and whose MISSING item's is not; both carry a remote imageUrl. */
export function mediaCatalog(
  cached: { phone: string; screen: string },
  missing: { phone: string; screen: string },
) {
  return {
    version: 1,
    eventId: 'ev-media',
    currency: 'EUR',
    items: [
      {
        sku: 'LOCAL',
        name: 'Pictured tee',
        priceCents: 2500,
        stock: 10,
        image: cached,
        imageUrl: 'https://images.example.com/tee.jpg',
      },
      {
        sku: 'MISSING',
        name: 'Not yet pictured',
        priceCents: 1500,
        stock: 10,
        image: missing,
        imageUrl: 'https://images.example.com/cap.jpg',
      },
      {
        sku: 'OLD',
        name: 'Old catalog item',
        priceCents: 900,
        stock: 10,
        imageUrl: 'https://images.example.com/o.jpg',
      },
    ],
  };
}
