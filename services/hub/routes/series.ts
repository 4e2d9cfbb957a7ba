// The cross-kit live series, admin only (#12): `GET /v1/events/:eventId/series` (one event's seconds
// merged across its kits by core/series-merge.ts, each kit's own, markers, the newest audience aggregate
// of each kit) and `GET /v1/creators/:creatorId/series` (a creator's events: totals and per-minute
// rollups). The hub coerces querystrings, so every parameter is declared as a string of a strict
// pattern and turned into a number here, its range and the span checked: a hostile value is a 400.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ID_LEVEL } from '../../../core/contracts/common.ts';
import { METRIC_NAMES, SERIES_MAX_SPAN_S } from '../../../core/contracts/series.ts';
import { KitError } from '../../../core/errors.ts';
import type { Queryable } from '../db.ts';
import { creatorSeries, eventSeries, newestSecond } from '../series.ts';
import { adminGuard } from './admin.ts';

/** Unix seconds the hub serves (core/contracts/series.ts UnixSecond). */
const MIN_T = 946_684_800;
const MAX_T = 4_102_444_800;
/** default span of the event feed: the last hour stored */
const EVENT_DEFAULT_S = 3600;
/** the creator feed spans at most 31 days (per-minute rollups), 30 by default */
export const CREATOR_MAX_SPAN_S = 31 * 24 * 3600;
const CREATOR_DEFAULT_S = 30 * 24 * 3600;

const Id = Type.String({ minLength: 1, maxLength: 64, pattern: ID_LEVEL });
const Second = Type.String({ minLength: 1, maxLength: 10, pattern: '^[0-9]{1,10}$' });
const Metrics = Type.String({ minLength: 1, maxLength: 1000, pattern: '^[a-z0-9_]+(,[a-z0-9_]+)*$' });

const EventQuery = Type.Object(
  {
    from: Type.Optional(Second),
    to: Type.Optional(Second),
    metrics: Type.Optional(Metrics),
    kit: Type.Optional(Id),
  },
  { additionalProperties: false },
);
const CreatorQuery = Type.Object(
  { from: Type.Optional(Second), to: Type.Optional(Second), metrics: Type.Optional(Metrics) },
  { additionalProperties: false },
);

function second(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < MIN_T || n > MAX_T)
    throw new KitError('VALIDATION', `${name} must be a unix second from ${MIN_T} to ${MAX_T}`, {
      field: name,
    });
  return n;
}

/** The metric names asked for (each a known metric, once), or undefined for all. */
export function parseMetrics(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(',');
  const known = new Set<string>(METRIC_NAMES);
  const unknown = names.filter((m) => !known.has(m));
  if (unknown.length > 0)
    throw new KitError('VALIDATION', `unknown metric ${unknown[0]}`, {
      field: 'metrics',
      known: METRIC_NAMES,
    });
  if (new Set(names).size !== names.length)
    throw new KitError('VALIDATION', 'a metric is named twice', { field: 'metrics' });
  return names;
}

/** from..to, both included, checked: from ≤ to, span ≤ max. */
function span(
  q: { from?: string | undefined; to?: string | undefined },
  defaults: { end: number; length: number; max: number },
): { from: number; to: number } {
  const qf = second('from', q.from);
  const qt = second('to', q.to);
  const to = qt ?? (qf !== undefined ? Math.min(MAX_T, qf + defaults.length - 1) : defaults.end);
  const from = qf ?? Math.max(MIN_T, to - defaults.length + 1);
  if (from > to) throw new KitError('VALIDATION', 'from is after to', { field: 'from' });
  if (to - from + 1 > defaults.max)
    throw new KitError('VALIDATION', `a span of at most ${defaults.max} seconds`, {
      field: 'to',
      max: defaults.max,
    });
  return { from, to };
}

export interface SeriesRoutesOptions {
  db: Queryable;
  adminToken: string;
  now?: () => number;
}

export const seriesRoutes: FastifyPluginAsyncTypebox<SeriesRoutesOptions> = async (app, opts) => {
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  app.get(
    '/v1/events/:eventId/series',
    {
      onRequest: adminGuard(opts.adminToken),
      schema: { params: Type.Object({ eventId: Id }), querystring: EventQuery },
    },
    async (req) => {
      const metrics = parseMetrics(req.query.metrics);
      const end =
        req.query.to || req.query.from ? now() : ((await newestSecond(opts.db, req.params.eventId)) ?? now());
      const s = span(req.query, { end, length: EVENT_DEFAULT_S, max: SERIES_MAX_SPAN_S });
      return eventSeries(opts.db, { eventId: req.params.eventId, ...s, metrics, kitId: req.query.kit });
    },
  );

  app.get(
    '/v1/creators/:creatorId/series',
    {
      onRequest: adminGuard(opts.adminToken),
      schema: { params: Type.Object({ creatorId: Id }), querystring: CreatorQuery },
    },
    async (req) => {
      const metrics = parseMetrics(req.query.metrics);
      const s = span(req.query, { end: now(), length: CREATOR_DEFAULT_S, max: CREATOR_MAX_SPAN_S });
      return creatorSeries(opts.db, { creatorId: req.params.creatorId, ...s, metrics });
    },
  );
};
