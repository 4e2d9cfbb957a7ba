// Test images for the product-media tests: real JPEG/PNG bytes made by sharp, and the hostile ones
// (truncated, a PNG that declares a gigapixel, a zip file).
import zlib from 'node:zlib';
import sharp from 'sharp';

/** A JPEG with EXIF (so that stripping shows), gradient content so renditions differ in size. */
export async function photoJpeg(width = 1600, height = 1200, seed = 0): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = (x + seed * 37) & 255;
      raw[i + 1] = (y * 3 + seed) & 255;
      raw[i + 2] = ((x ^ y) + seed * 11) & 255;
    }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 85 })
    .withExif({ IFD0: { Copyright: 'secret-owner', Artist: 'gps-here' } })
    .toBuffer();
}

export async function smallPng(width = 64, height = 48): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 4, background: '#3366ffcc' } })
    .png()
    .toBuffer();
}

/** A valid 8×8 PNG whose header (with a correct CRC) declares width × height: decoding it would need gigabytes. */
export async function pngBomb(width = 60_000, height = 60_000): Promise<Buffer> {
  const b = Buffer.from(await smallPng(8, 8));
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  b.writeUInt32BE(zlib.crc32(b.subarray(12, 29)), 29);
  return b;
}

/** The first bytes of a ZIP archive (a PK local file header), not an image. */
export function zipBytes(): Buffer {
  return Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(200, 0x41)]);
}
