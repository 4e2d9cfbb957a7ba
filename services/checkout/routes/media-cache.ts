// GET /media/:sha256: the product images sync fetched from the hub into <data>/product-media/, the only
// images the buyer page and the dashboard show (docs/contracts.md#product-media). A file there is whole
// and verified (sync renames it into place only after its sha256 matched its name), so the answer is
// immutable: a year of caching and the hash as ETag. Buyers in a venue without uplink load each image
// once per phone.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { parseByteRange } from '../../../core/byte-range.ts';
import { Sha256Hex, sniffImageType } from '../../../core/contracts/product-media.ts';
import { KitError } from '../../../core/errors.ts';

export interface MediaCacheRoutesOptions {
  /** `<data>/product-media` (core/data-dir.ts) */
  dir: string;
}

export const mediaCacheRoutes: FastifyPluginAsyncTypebox<MediaCacheRoutesOptions> = async (app, { dir }) => {
  app.get(
    '/media/:sha256',
    {
      // bytes, not JSON: errors answer the shared envelope (VALIDATION, MEDIA_NOT_CACHED, RANGE_NOT_SATISFIABLE)
      schema: { params: Type.Object({ sha256: Sha256Hex }) },
    },
    async (req, reply) => {
      const hash = req.params.sha256;
      const etag = `"${hash}"`;
      let data: Buffer;
      try {
        // the pattern above admits 64 hex digits only: no path can be named here
        data = await fs.promises.readFile(path.join(dir, hash));
      } catch {
        throw new KitError('MEDIA_NOT_CACHED', `image ${hash} is not on this kit (yet)`);
      }
      reply.header('etag', etag);
      reply.header('cache-control', 'public, max-age=31536000, immutable');
      reply.header('accept-ranges', 'bytes');
      reply.header('x-content-type-options', 'nosniff');
      if (req.headers['if-none-match'] === etag) return reply.status(304).send();
      reply.header('content-type', sniffImageType(data) ?? 'application/octet-stream');
      const range = parseByteRange(req.headers.range, data.length);
      if (!range) return reply.send(data);
      reply.header('content-range', `bytes ${range.start}-${range.end}/${data.length}`);
      return reply.status(206).send(data.subarray(range.start, range.end + 1));
    },
  );
};
