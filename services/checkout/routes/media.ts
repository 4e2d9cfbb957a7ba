// The live stream media writes into <data>/hls/: GET /live/:file (playlist and segments, CORS open).
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { KitError } from '../../../core/errors.ts';

export interface MediaRoutesOptions {
  hlsDir: string;
}

export const mediaRoutes: FastifyPluginAsyncTypebox<MediaRoutesOptions> = async (app, { hlsDir }) => {
  app.get(
    '/live/:file',
    {
      schema: {
        params: Type.Object({ file: Type.String({ pattern: '^[A-Za-z0-9_-]+\\.(m3u8|ts|m4s|mp4)$' }) }),
      },
    },
    async (req, reply) => {
      const file = path.join(hlsDir, req.params.file);
      const playlist = file.endsWith('.m3u8');
      let data: Buffer;
      try {
        data = await fs.promises.readFile(file);
      } catch {
        throw new KitError('NOT_FOUND', playlist ? 'no live stream right now' : 'segment gone');
      }
      reply.header('content-type', playlist ? 'application/vnd.apple.mpegurl' : 'video/mp2t');
      reply.header('cache-control', playlist ? 'no-cache' : 'max-age=60');
      reply.header('access-control-allow-origin', '*');
      return reply.send(data);
    },
  );
};
