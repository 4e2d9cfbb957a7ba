// GET /v1/series (#12, docs/contracts.md#live-series): the kit's per-second series and markers over a
// span, for the dashboard's live chart and for tools; staff only (a paired terminal or the admin), like
// /v1/status: sales per second are the business's own figures.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  METRIC_NAMES,
  type MetricName,
  SERIES_MAX_SPAN_S,
  SeriesQuery,
  SeriesResponse,
  type SeriesResponseT,
} from '../../../core/contracts/series.ts';
import { KitError } from '../../../core/errors.ts';
import { readEventState } from '../../../core/store/event.ts';
import type { KitStore } from '../../../core/store/open.ts';
import { readMarkers, readSeries } from '../../../core/store/series.ts';
import { ErrorEnvelope, errorResponses } from '../schemas.ts';
import { type Credentials, terminalSecurity } from './staff.ts';

export interface SeriesRoutesOptions {
  store: KitStore;
  creds: Credentials;
  /** ms since the epoch */
  now?: () => number;
}

/** The span a request asks for when it names none: the last 15 minutes. */
export const SERIES_DEFAULT_SPAN_S = 900;
/** UnixSecond's range (core/contracts/series.ts). */
const MIN_T = 946_684_800;
const MAX_T = 4_102_444_800;
const KNOWN = new Set<string>(METRIC_NAMES);

/** The query as numbers and names, or VALIDATION saying what is wrong (the schema checked the text). */
export function parseSeriesQuery(
  q: { from?: string; to?: string; metrics?: string },
  nowS: number,
): { from: number; to: number; metrics: MetricName[] | undefined } {
  const to = q.to === undefined ? nowS : Number(q.to);
  const from = q.from === undefined ? Math.max(MIN_T, to - SERIES_DEFAULT_SPAN_S) : Number(q.from);
  for (const [name, v] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (v < MIN_T || v > MAX_T)
      throw new KitError('VALIDATION', `${name} is a unix second from ${MIN_T} to ${MAX_T}`, { [name]: v });
  }
  if (to < from) throw new KitError('VALIDATION', 'to is before from', { from, to });
  if (to - from > SERIES_MAX_SPAN_S)
    throw new KitError(
      'VALIDATION',
      `a request spans at most ${SERIES_MAX_SPAN_S} seconds: ask page by page`,
      {
        from,
        to,
        maxSpanS: SERIES_MAX_SPAN_S,
      },
    );
  let metrics: MetricName[] | undefined;
  if (q.metrics !== undefined) {
    const names = [...new Set(q.metrics.split(','))];
    const unknown = names.filter((m) => !KNOWN.has(m));
    if (unknown.length > 0)
      throw new KitError('VALIDATION', `unknown metric ${unknown[0]}: see docs/contracts.md#live-series`, {
        unknown: unknown.slice(0, 5),
      });
    metrics = names as MetricName[];
  }
  return { from, to, metrics };
}

export const seriesRoutes: FastifyPluginAsyncTypebox<SeriesRoutesOptions> = async (app, opts) => {
  const staff = opts.creds.require('terminal');
  app.get(
    '/v1/series',
    {
      onRequest: staff,
      schema: {
        querystring: SeriesQuery,
        response: { 200: SeriesResponse, ...errorResponses, 403: ErrorEnvelope },
        security: terminalSecurity,
      },
    },
    async (req, reply) => {
      const nowS = Math.floor((opts.now ? opts.now() : Date.now()) / 1000);
      const { from, to, metrics } = parseSeriesQuery(req.query, nowS);
      const body: SeriesResponseT = {
        from,
        to,
        eventId: readEventState(opts.store).eventId,
        samples: readSeries(opts.store, from, to, metrics),
        markers: readMarkers(opts.store, from, to),
      };
      return reply.header('cache-control', 'no-store').send(body);
    },
  );
};
