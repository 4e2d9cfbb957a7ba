// The hub's HTTP API (docs/contracts.md, "Hub HTTP API"): the shared error envelope and one fastify
// plugin per area (routes/), listened to by HubService.

import type { KeyObject } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController } from 'fastify';
import { errorEnvelopePlugin } from '../../core/http-errors.ts';
import { rootLogger } from '../../core/logger.ts';
import type { HubAlerts } from './alerts.ts';
import type { HubAuthorize } from './authorize.ts';
import type { Queryable } from './db.ts';
import type { DynsecClient } from './dynsec.ts';
import type { PaymentGateway } from './gateway.ts';
import { missingImages } from './images.ts';
import type { HubIngest } from './ingest.ts';
import type { Ledger } from './ledger.ts';
import type { ReplicaReads } from './read-replica.ts';
import { alertRoutes } from './routes/alerts.ts';
import { authorizationRoutes } from './routes/authorizations.ts';
import { catalogRoutes } from './routes/catalogs.ts';
import { gatewayRoutes } from './routes/gateway.ts';
import { healthRoutes } from './routes/health.ts';
import { imageRoutes } from './routes/images.ts';
import { kitRoutes } from './routes/kits.ts';
import { loyaltyRoutes } from './routes/loyalty.ts';
import { orderRoutes } from './routes/orders.ts';
import { pickupRoutes } from './routes/pickups.ts';
import { reportRoutes } from './routes/report.ts';
import { seriesRoutes } from './routes/series.ts';
import { sharedStockRoutes } from './routes/shared-stock.ts';
import type { SharedStock } from './shared-stock.ts';
import { hubValidatorCompiler } from './validation.ts';

export interface HubAppDeps {
  ledger: Ledger;
  ingest: Pick<HubIngest, 'connected' | 'publishCatalog' | 'stats' | 'sharedSubscription'>;
  gateway: PaymentGateway;
  /** the online card checks: orphans, and the sandbox card form (routes/authorizations.ts) */
  authorize?: Pick<HubAuthorize, 'orphans' | 'stats'>;
  orphanMs?: number;
  adminToken: string;
  signingKey: KeyObject;
  /** the ledger's database (the primary): enrollment codes, images, catalogs' missing images */
  db?: Queryable;
  /**
   * where the read-only reports are read (pickups, series, the post-event report): the read replica
   * (POPKIT_HUB_READ_DATABASE_URL, services/hub/read-replica.ts); unset: `db`
   */
  reads?: Queryable;
  /** the read replica's state and the reads it served, for /healthz and /metrics */
  readReplica?: Pick<ReplicaReads, 'status' | 'stats'>;
  /** GET /v1/gateway's cache (default 30 s) */
  gatewayCheckCacheMs?: number;
  logger?: boolean;
  /** kit enrollment through the broker's dynamic security plugin; unset: the enrollment routes answer 503 */
  dynsec?: Pick<DynsecClient, 'addKit' | 'revokeKit' | 'reserved'>;
  /** Chromium for the report's PDF (POPKIT_CHROMIUM) */
  chromium?: string | undefined;
  /** the fleet's alerts (routes/alerts.ts, and their gauges in /metrics) */
  alerts?: Pick<HubAlerts, 'list' | 'ack' | 'lastFacts' | 'openByKind' | 'stats'>;
  /** shared stock across an event's kits (routes/shared-stock.ts); unset: no such routes */
  sharedStock?: SharedStock;
}

export function buildHubApp(deps: HubAppDeps) {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: rootLogger().child({ module: 'hub-http' }) } : { logger: false }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 4 * 1024 * 1024,
  }).withTypeProvider<TypeBoxTypeProvider>();
  // bodies strict, querystring and params coerced (services/hub/validation.ts)
  app.setValidatorCompiler(hubValidatorCompiler());
  const { ledger, ingest, adminToken } = deps;
  app.register(errorEnvelopePlugin);
  app.register(healthRoutes, {
    ledger,
    ingest,
    adminToken,
    authorize: deps.authorize,
    alerts: deps.alerts,
    readReplica: deps.readReplica,
  });
  if (deps.alerts) app.register(alertRoutes, { alerts: deps.alerts, adminToken });
  app.register(gatewayRoutes, {
    gateway: deps.gateway,
    adminToken,
    ...(deps.gatewayCheckCacheMs !== undefined ? { cacheMs: deps.gatewayCheckCacheMs } : {}),
  });
  app.register(kitRoutes, { ledger, adminToken, dynsec: deps.dynsec, db: deps.db });
  app.register(orderRoutes, { ledger, adminToken });
  const { db } = deps;
  app.register(catalogRoutes, {
    ledger,
    ingest,
    adminToken,
    signingKey: deps.signingKey,
    missingImages: db ? (hashes) => missingImages(db, hashes) : undefined,
    sharedStock: deps.sharedStock,
  });
  if (deps.sharedStock) app.register(sharedStockRoutes, { sharedStock: deps.sharedStock, adminToken });
  // read-only reports on the read replica; images stay on the primary: a kit asks for one right after
  // the catalog that the primary found complete (missingImages) reached it
  const reads = deps.reads ?? deps.db;
  if (reads) app.register(pickupRoutes, { db: reads, adminToken });
  if (deps.db) app.register(imageRoutes, { db: deps.db, adminToken });
  if (reads) app.register(seriesRoutes, { db: reads, adminToken });
  if (reads) app.register(reportRoutes, { db: reads, adminToken, chromium: deps.chromium });
  app.register(loyaltyRoutes, { loyalty: ledger.loyalty, adminToken, signingKey: deps.signingKey });
  if (deps.authorize)
    app.register(authorizationRoutes, {
      authorize: deps.authorize,
      gateway: deps.gateway,
      adminToken,
      orphanMs: deps.orphanMs ?? 900_000,
    });
  return app;
}

export type HubApp = ReturnType<typeof buildHubApp>;
