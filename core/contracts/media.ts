// Media's shapes that cross processes: the commands kitd (power policy) and the host send it on the
// local bus, and the stats it publishes there and writes into its run status (docs/contracts.md#media).
import { type Static, Type } from '@sinclair/typebox';
import { KitError } from '../errors.ts';
import { contract, Nullable } from './common.ts';

export const MediaCommandSchema = Type.Union([
  Type.Object({ v: Type.Literal(1), cmd: Type.Literal('step-down') }),
  Type.Object({ v: Type.Literal(1), cmd: Type.Literal('step-up') }),
  Type.Object({ v: Type.Literal(1), cmd: Type.Literal('pause') }),
  Type.Object({ v: Type.Literal(1), cmd: Type.Literal('resume') }),
  Type.Object({ v: Type.Literal(1), cmd: Type.Literal('set-step'), step: Type.Integer({ minimum: 0 }) }),
  // The simulator's faults, accepted on the sim board only: a camera that stops sending frames, a
  // pipeline that dies without a word.
  Type.Object({
    v: Type.Literal(1),
    cmd: Type.Literal('sim-fault'),
    fault: Type.Union([Type.Literal('stall'), Type.Literal('kill')]),
  }),
]);
export type MediaCommand = Static<typeof MediaCommandSchema>;
export const mediaCommand = contract(MediaCommandSchema);

/** A media command from bus bytes; a coded error (BAD_REQUEST, VALIDATION) for anything else. */
export function parseMediaCommand(raw: Buffer | string): MediaCommand {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString());
  } catch {
    throw new KitError('BAD_REQUEST', 'media command is not JSON');
  }
  if (!mediaCommand.check(parsed)) {
    const first = mediaCommand.errors(parsed, 1)[0];
    throw new KitError(
      'VALIDATION',
      `bad media command: ${first ?? 'shape'}; expected {"v":1,"cmd":"step-down"|"step-up"|"pause"|"resume"|"set-step","step":n}`,
    );
  }
  return parsed;
}

export const MEDIA_STATES = [
  'starting',
  'playing',
  'degraded',
  'paused',
  'restarting',
  'unavailable',
] as const;
export type MediaState = (typeof MEDIA_STATES)[number];

/** What media publishes (`<prefix>/media/stats`, retained) and writes to `run/media.json`. */
export const MediaStatsSchema = Type.Object({
  state: Type.Union(MEDIA_STATES.map((s) => Type.Literal(s))),
  board: Type.String(),
  encoder: Type.String(),
  fps: Type.Number(),
  droppedFrames: Type.Number(),
  bitrateKbps: Type.Number(),
  measuredKbps: Nullable(Type.Number()),
  ladderStep: Type.Integer({ minimum: 0 }),
  ladderSteps: Type.Integer({ minimum: 0 }),
  width: Type.Integer({ minimum: 0 }),
  height: Type.Integer({ minimum: 0 }),
  targetFps: Type.Number(),
  restarts: Type.Integer({ minimum: 0 }),
  rebuilds: Type.Integer({ minimum: 0 }),
  newestSegmentAgeMs: Nullable(Type.Number()),
  cpuCores: Nullable(Type.Number()),
  machineCpu: Nullable(Type.Number()),
  playlist: Type.String(),
  lastRestartReason: Type.Optional(Type.String()),
  reason: Type.Optional(Type.String()),
});
export type MediaStats = Static<typeof MediaStatsSchema>;

/** The retained last will on the stats topic when the media process is gone. */
export const MediaGoneSchema = Type.Object({
  v: Type.Literal(1),
  state: Type.Literal('unavailable'),
  reason: Type.String(),
});
