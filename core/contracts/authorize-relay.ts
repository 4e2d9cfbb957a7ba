// The kit's local relay of the online card check (docs/security.md#online-authorization): checkout
// holds no hub connection of its own (on the kits' TLS listener the client id is the kit's login, so a
// second connection would disconnect sync's), it asks sync over a unix socket in the data dir's run/
// dir. One JSON message per line, both ways; every message is declared here for both ends. The token
// crosses the socket in memory only: nothing on the way writes it to disk.
import path from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { dataLayout } from '../data-dir.ts';
import { Currency, contract, ID_LEVEL, SafeText } from './common.ts';
import { LINK_STATES } from './run-status.ts';

/** `<dataDir>/run/authorize.sock` (0600: checkout and sync run as the same user) */
export function authorizeSocketPath(dataDir: string): string {
  return path.join(dataLayout(dataDir).run, 'authorize.sock');
}

/** a line longer than this is not a message of ours: the connection is closed */
export const RELAY_MAX_LINE = 16 * 1024;

const RequestId = Type.String({ minLength: 1, maxLength: 64, pattern: ID_LEVEL });

/** checkout → sync: authorize this token before the order is answered */
export const RelayAuthorize = Type.Object({
  v: Type.Literal(1),
  type: Type.Literal('authorize'),
  requestId: RequestId,
  orderId: Type.String({ minLength: 1, maxLength: 64 }),
  /** a token with a control character is no token (checked here, before it travels) */
  token: SafeText({ minLength: 1, maxLength: 4096 }),
  /** the hub link's bound (AuthorizeRequest): any total a kit can take */
  amountCents: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  currency: Currency,
  /** epoch ms: the hub drops the request after it, sync answers `unavailable` at it */
  deadline: Type.Integer({ minimum: 0 }),
});
export type RelayAuthorizeT = Static<typeof RelayAuthorize>;

/** sync → checkout: the hub link's state, on connect and on every change */
export const RelayLink = Type.Object({
  v: Type.Literal(1),
  type: Type.Literal('link'),
  state: Type.Union(LINK_STATES.map((l) => Type.Literal(l))),
});
export type RelayLinkT = Static<typeof RelayLink>;

/** sync → checkout: the answer to one RelayAuthorize (the hub's, or sync's own `unavailable`) */
export const RelayAnswer = Type.Object({
  v: Type.Literal(1),
  type: Type.Literal('answer'),
  requestId: RequestId,
  verdict: Type.Union([Type.Literal('approved'), Type.Literal('declined'), Type.Literal('unavailable')]),
  ref: Type.Optional(SafeText({ minLength: 1, maxLength: 128 })),
  reason: Type.Optional(SafeText({ maxLength: 300 })),
});
export type RelayAnswerT = Static<typeof RelayAnswer>;

export const relay = {
  authorize: contract(RelayAuthorize),
  fromSync: contract(Type.Union([RelayLink, RelayAnswer])),
};
