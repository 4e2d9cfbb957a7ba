// The local-bus command payload for media (`<topic root>/cmd`), validated at the edge.
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { KitError } from '../../core/errors.ts';

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

export function parseMediaCommand(raw: Buffer | string): MediaCommand {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString());
  } catch {
    throw new KitError('BAD_REQUEST', 'media command is not JSON');
  }
  if (!Value.Check(MediaCommandSchema, parsed)) {
    const first = [...Value.Errors(MediaCommandSchema, parsed)][0];
    throw new KitError(
      'VALIDATION',
      `bad media command: ${first ? `${first.path || '/'} ${first.message}` : 'shape'}; expected {"v":1,"cmd":"step-down"|"step-up"|"pause"|"resume"|"set-step","step":n}`,
    );
  }
  return parsed;
}
