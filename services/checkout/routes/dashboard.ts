// The host dashboard (one HTML file) at GET /.
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const DASHBOARD = path.join(import.meta.dirname, '..', 'dashboard', 'index.html');

export const dashboardRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', 'text/html; charset=utf-8');
    return reply.send(await fs.promises.readFile(DASHBOARD));
  });
};
