// Product images (docs/contracts.md#product-media): POST /v1/images (admin) takes one JPEG, PNG or
// WebP as the raw body and answers the hashes of its renditions, which go into a catalog item's
// `image`; GET /v1/images/:sha256 serves a rendition, immutable (its name is the hash of its bytes),
// with single ranges so that a kit's interrupted download continues where it stopped.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { parseByteRange } from '../../../core/byte-range.ts';
import { IMAGE_LIMITS, ImageUploadOut, Sha256Hex } from '../../../core/contracts/product-media.ts';
import { KitError } from '../../../core/errors.ts';
import type { Queryable } from '../db.ts';
import { readImage, storeUpload } from '../images.ts';
import { adminGuard } from './admin.ts';

export interface ImageRoutesOptions {
  db: Queryable;
  adminToken: string;
}

/** The types a client may label an upload with; what it is comes from its bytes (images.ts). */
const UPLOAD_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'application/octet-stream'];

export const imageRoutes: FastifyPluginAsyncTypebox<ImageRoutesOptions> = async (app, opts) => {
  const { db } = opts;
  // raw bytes for these types, in this plugin only (the rest of the hub API stays JSON)
  app.addContentTypeParser(
    UPLOAD_TYPES,
    { parseAs: 'buffer', bodyLimit: IMAGE_LIMITS.uploadBytes },
    (_req, body, done) => done(null, body),
  );

  app.post(
    '/v1/images',
    {
      onRequest: adminGuard(opts.adminToken),
      bodyLimit: IMAGE_LIMITS.uploadBytes,
      schema: { response: { 201: ImageUploadOut } },
    },
    async (req, reply) => {
      const body = req.body;
      if (!Buffer.isBuffer(body) || body.length === 0)
        throw new KitError(
          'UNSUPPORTED_MEDIA_TYPE',
          'send the image bytes as image/jpeg, image/png or image/webp',
        );
      return reply.status(201).send(await storeUpload(db, body));
    },
  );

  app.get(
    '/v1/images/:sha256',
    { schema: { params: Type.Object({ sha256: Sha256Hex }) } },
    async (req, reply) => {
      const hash = req.params.sha256;
      const etag = `"${hash}"`;
      // the name is the content: a client holding any copy holds this one
      reply.header('etag', etag);
      reply.header('cache-control', 'public, max-age=31536000, immutable');
      reply.header('accept-ranges', 'bytes');
      if (req.headers['if-none-match'] === etag) return reply.status(304).send();
      const img = await readImage(db, hash);
      if (!img) throw new KitError('IMAGE_NOT_FOUND', `no image ${hash} at this hub`);
      reply.header('content-type', img.contentType);
      const range = parseByteRange(req.headers.range, img.bytes.length);
      if (!range) return reply.send(img.bytes);
      reply.header('content-range', `bytes ${range.start}-${range.end}/${img.bytes.length}`);
      return reply.status(206).send(img.bytes.subarray(range.start, range.end + 1));
    },
  );
};
