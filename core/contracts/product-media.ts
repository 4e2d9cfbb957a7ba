// Product images (docs/contracts.md#product-media): the hub makes renditions of an uploaded image and
// stores them by the sha256 of their bytes; a catalog item names its renditions by hash; sync fetches
// them into the kit's data dir and checkout serves them. Declared once here for the hub's upload
// answer, the catalog field, the kit's cache status file and the hash in every URL.
import { type Static, Type } from '@sinclair/typebox';
import { contract } from './common.ts';

/** A sha256 as lowercase hex: the name of a rendition everywhere (hub URL, catalog, kit file name). */
export const SHA256_PATTERN = '^[0-9a-f]{64}$';
export const Sha256Hex = Type.String({ minLength: 64, maxLength: 64, pattern: SHA256_PATTERN });
const SHA256_RE = new RegExp(SHA256_PATTERN);
export function isSha256Hex(s: unknown): s is string {
  return typeof s === 'string' && SHA256_RE.test(s);
}

/** The sizes the hub renders: phones (the buyer page) and screens (dashboard, venue screen). */
export const RENDITIONS = { phone: 480, screen: 1280 } as const;
export type RenditionName = keyof typeof RENDITIONS;
export const RENDITION_NAMES = Object.keys(RENDITIONS) as RenditionName[];

/** What the hub takes and makes (services/hub/routes/images.ts). */
export const IMAGE_LIMITS = {
  /** bytes of one upload */
  uploadBytes: 16 * 1024 * 1024,
  /** pixels on either side of the decoded original */
  side: 12_000,
  /** width × height of the decoded original: a 1 KB PNG may declare a gigapixel (a "zip bomb") */
  pixels: 50_000_000,
} as const;

/**
 * A catalog item's image: the sha256 of each rendition the hub made. The catalog is signed by the hub,
 * so a kit trusts these hashes and checks every fetched byte against them.
 */
export const ProductImage = Type.Object(
  { phone: Sha256Hex, screen: Sha256Hex },
  { additionalProperties: false },
);
export type ProductImageT = Static<typeof ProductImage>;

/** One rendition as the hub stored it. */
export const RenditionOut = Type.Object({
  sha256: Type.String(),
  contentType: Type.String(),
  width: Type.Integer(),
  height: Type.Integer(),
  bytes: Type.Integer(),
});

/** The hub's answer to an upload: `image` goes into the catalog item as it is. */
export const ImageUploadOut = Type.Object({
  image: ProductImage,
  renditions: Type.Object({ phone: RenditionOut, screen: RenditionOut }),
  original: Type.Object({ format: Type.String(), width: Type.Integer(), height: Type.Integer() }),
});
export type ImageUploadOutT = Static<typeof ImageUploadOut>;

/** The fetcher's status, `<data>/product-media/status.json` (sync writes it; preflight and people read it). */
export const PRODUCT_MEDIA_STATUS_FILE = 'status.json';

/** What status.json holds. */
export const ProductMediaStatus = Type.Object({
  v: Type.Literal(1),
  updatedAt: Type.String(),
  catalog: Type.Union([Type.Object({ eventId: Type.String(), version: Type.Integer() }), Type.Null()]),
  /** renditions the current catalog references */
  wanted: Type.Integer(),
  /** of those, verified and on disk */
  warm: Type.Integer(),
  /** bytes of verified renditions on disk, and the budget */
  bytes: Type.Integer(),
  budgetBytes: Type.Integer(),
  /** hashes that would not fit the budget */
  didNotFit: Type.Array(Type.String()),
  /** hashes whose bytes did not match (dropped; tried again next pass) */
  mismatched: Type.Array(Type.String()),
  /** idle | fetching | waiting-for-checkout | hub-unreachable | disk-low | held-metered */
  state: Type.String(),
  lastError: Type.Optional(Type.String()),
});
export type ProductMediaStatusT = Static<typeof ProductMediaStatus>;
export const productMediaStatus = contract(ProductMediaStatus);

/** Every rendition hash a catalog's items reference, phones first (the buyer page needs them first). */
export function catalogImageHashes(items: ReadonlyArray<{ image?: ProductImageT | undefined }>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const name of RENDITION_NAMES) {
    for (const item of items) {
      const h = item.image?.[name];
      if (h && !seen.has(h)) {
        seen.add(h);
        out.push(h);
      }
    }
  }
  return out;
}

/** Content type of image bytes by their magic numbers; undefined for anything else. */
export function sniffImageType(b: Uint8Array): 'image/jpeg' | 'image/png' | 'image/webp' | undefined {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (
    b.length >= 8 &&
    b[0] === 0x89 &&
    b[1] === 0x50 &&
    b[2] === 0x4e &&
    b[3] === 0x47 &&
    b[4] === 0x0d &&
    b[5] === 0x0a &&
    b[6] === 0x1a &&
    b[7] === 0x0a
  )
    return 'image/png';
  if (
    b.length >= 12 &&
    Buffer.from(b.subarray(0, 4)).toString('latin1') === 'RIFF' &&
    Buffer.from(b.subarray(8, 12)).toString('latin1') === 'WEBP'
  )
    return 'image/webp';
  return undefined;
}
