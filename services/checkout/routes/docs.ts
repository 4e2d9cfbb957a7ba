// The OpenAPI description of the kit API, collected from every route's schema: GET /docs/openapi.json.
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/** Register before the other route plugins, on the root instance, so it sees every route. */
export const openApiPlugin = fp(
  async (app: FastifyInstance) => {
    await app.register(swagger, {
      openapi: {
        info: { title: 'Popkit kit API', version: '1' },
        components: {
          securitySchemes: {
            admin: {
              type: 'http',
              scheme: 'bearer',
              description:
                'POPKIT_ADMIN_TOKEN (or keys/admin.token): catalog, event, pairing, and all a terminal may',
            },
            terminal: {
              type: 'http',
              scheme: 'bearer',
              description:
                'a paired staff terminal (popkit terminal pair): cash and card orders, status, metrics',
            },
          },
        },
      },
    });
    app.get('/docs/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'popkit-kit-openapi' },
);
