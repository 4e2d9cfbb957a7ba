// PUT /v1/events/:eventId/catalog (admin): sign the catalog with the hub key, store it as the event's
// next version and publish it, retained, to the kits.
import type { KeyObject } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { signCatalog } from '../../../core/catalog-signing.ts';
import { HubCatalogBody } from '../../../core/contracts/catalog.ts';
import { CATALOG_VERSION_MAX, ID_LEVEL } from '../../../core/contracts/common.ts';
import { catalogImageHashes } from '../../../core/contracts/product-media.ts';
import { BROKER_MAX_PACKET_BYTES } from '../../../core/embedded-broker.ts';
import { KitError } from '../../../core/errors.ts';
import type { HubIngest } from '../ingest.ts';
import type { Ledger } from '../ledger.ts';
import { SharedStock } from '../shared-stock.ts';
import { adminGuard } from './admin.ts';

const EventParams = Type.Object({ eventId: Type.String({ pattern: ID_LEVEL }) });

export interface CatalogRoutesOptions {
  ledger: Pick<Ledger, 'latestCatalogVersion' | 'storeCatalog'>;
  ingest: Pick<HubIngest, 'publishCatalog'>;
  signingKey: KeyObject;
  adminToken: string;
  /** the image hashes of `hashes` the hub does not hold (images.ts); unset: not checked */
  missingImages?: ((hashes: string[]) => Promise<string[]>) | undefined;
  /** an event with allocations: its catalogs say their stock is shared (services/hub/shared-stock.ts) */
  sharedStock?: Pick<SharedStock, 'hasAllocations'> | undefined;
}

export const catalogRoutes: FastifyPluginAsyncTypebox<CatalogRoutesOptions> = async (app, opts) => {
  const { ledger, ingest, signingKey } = opts;
  app.put(
    '/v1/events/:eventId/catalog',
    // the body is the catalog; eventId comes from the path, version defaults to the latest + 1
    { onRequest: adminGuard(opts.adminToken), schema: { params: EventParams, body: HubCatalogBody } },
    async (req, reply) => {
      const { eventId } = req.params;
      const body = req.body;
      if (body.eventId !== undefined && body.eventId !== eventId) {
        throw new KitError('VALIDATION', `body eventId ${body.eventId} does not match the path's ${eventId}`);
      }
      // a kit fetches every image the catalog names from this hub: each must be here
      const missing = (await opts.missingImages?.(catalogImageHashes(body.items))) ?? [];
      if (missing.length > 0)
        throw new KitError('IMAGE_NOT_FOUND', 'the catalog names images this hub does not hold', {
          missing: missing.slice(0, 20),
        });
      const version = body.version ?? (await ledger.latestCatalogVersion(eventId)) + 1;
      if (version > CATALOG_VERSION_MAX) {
        throw new KitError('CATALOG_STALE', `event ${eventId} has used every catalog version`, {
          max: CATALOG_VERSION_MAX,
        });
      }
      const shared = body.sharedStock || ((await opts.sharedStock?.hasAllocations(eventId)) ?? false);
      const signed = signCatalog(signingKey, {
        ...body,
        eventId,
        version,
        ...(shared ? { sharedStock: true } : {}),
      });
      // the broker disconnects a publisher over its packet limit: such a catalog could never reach a kit
      const bytes = Buffer.byteLength(JSON.stringify(signed)) + 1024;
      if (bytes > BROKER_MAX_PACKET_BYTES) {
        throw new KitError(
          'BODY_TOO_LARGE',
          'the signed catalog is larger than the broker takes in one message',
          {
            bytes,
            max: BROKER_MAX_PACKET_BYTES,
          },
        );
      }
      // an event with allocations: the new figures must cover what the kits already hold
      await ledger.storeCatalog(
        eventId,
        version,
        signed,
        shared ? (tx) => SharedStock.checkStockCovers(tx, eventId, body.items) : undefined,
      );
      let published = true;
      try {
        await ingest.publishCatalog(eventId, signed);
      } catch {
        // stored: the worker republishes the latest catalogs when it reconnects
        published = false;
      }
      return reply.status(published ? 200 : 202).send({ eventId, version, published });
    },
  );
};
