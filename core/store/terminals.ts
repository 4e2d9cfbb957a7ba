// Staff terminals and their pairing codes (docs/security.md#roles-and-credentials). The admin asks for
// a short single-use code with an expiry; a terminal redeems it once for its own bearer token. Codes
// and tokens are kept as sha256 hashes only: the token is shown once, at redemption. A wrong code
// costs every waiting code one attempt, so guessing stops after a few tries whatever the code.
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { KitStore, PairingRecord, TerminalRecord } from './open.ts';

/** Letters and digits that cannot be misread for one another (no 0/O, 1/I/L, U). */
const CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTVWXYZ23456789';
export const PAIRING_CODE_LENGTH = 8;
export const PAIRING_TTL_MS = 10 * 60_000;
export const PAIRING_ATTEMPTS = 5;
/** pairings waiting at once; more is a mistake or an attack */
export const PAIRINGS_PENDING_MAX = 16;

const TOKEN_RE = /^pkt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A code as typed or scanned: upper case, without spaces or dashes. */
export function normalizePairingCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, '');
}

export type PairingStart =
  | { kind: 'created'; id: string; code: string; name: string; expiresAt: number }
  | { kind: 'too-many'; pending: number };

/** A new pairing code (returned once, stored hashed); expired ones are dropped first. */
export function createPairing(store: KitStore, name: string, now: number): Promise<PairingStart> {
  return store.root.transaction((): PairingStart => {
    const pending = livePairings(store, now);
    if (pending.length >= PAIRINGS_PENDING_MAX) return { kind: 'too-many', pending: pending.length };
    let code = '';
    for (let i = 0; i < PAIRING_CODE_LENGTH; i++) code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
    const id = randomBytes(6).toString('hex');
    const expiresAt = now + PAIRING_TTL_MS;
    const rec: PairingRecord = {
      id,
      name,
      codeHash: sha256(code),
      expiresAt,
      attemptsLeft: PAIRING_ATTEMPTS,
      createdAt: new Date(now).toISOString(),
    };
    void store.pairings.put(id, rec);
    return { kind: 'created', id, code, name, expiresAt };
  });
}

/** Waiting pairings, dropping expired ones (inside a transaction). */
function livePairings(store: KitStore, now: number): PairingRecord[] {
  const live: PairingRecord[] = [];
  for (const { key, value } of store.pairings.getRange()) {
    if (value.expiresAt <= now || value.attemptsLeft <= 0) void store.pairings.remove(key);
    else live.push(value);
  }
  return live;
}

export type Redemption = { kind: 'paired'; terminal: TerminalRecord; token: string } | { kind: 'refused' };

/**
 * Redeem a code once: the waiting pairing becomes a terminal with a new token (returned once). A code
 * that matches nothing (wrong, used, expired) costs every waiting pairing one attempt.
 */
export function redeemPairing(store: KitStore, code: string, now: number): Promise<Redemption> {
  const hash = sha256(normalizePairingCode(code));
  return store.root.transaction((): Redemption => {
    const live = livePairings(store, now);
    const match = live.find((p) => sameHash(p.codeHash, hash));
    if (!match) {
      for (const p of live) {
        if (p.attemptsLeft <= 1) void store.pairings.remove(p.id);
        else void store.pairings.put(p.id, { ...p, attemptsLeft: p.attemptsLeft - 1 });
      }
      return { kind: 'refused' };
    }
    void store.pairings.remove(match.id);
    let id = randomBytes(6).toString('hex');
    while (store.terminals.get(id)) id = randomBytes(6).toString('hex');
    const token = `pkt_${id}_${randomBytes(32).toString('base64url')}`;
    const terminal: TerminalRecord = {
      id,
      name: match.name,
      tokenHash: sha256(token),
      createdAt: new Date(now).toISOString(),
    };
    void store.terminals.put(id, terminal);
    return { kind: 'paired', terminal, token };
  });
}

/** The terminal a bearer token belongs to, if it is one of ours and not revoked. */
export function terminalForToken(store: KitStore, token: string): TerminalRecord | undefined {
  const m = TOKEN_RE.exec(token);
  if (!m?.[1]) return undefined;
  const rec = store.terminals.get(m[1]);
  if (!rec || rec.revokedAt !== undefined) return undefined;
  return sameHash(rec.tokenHash, sha256(token)) ? rec : undefined;
}

/** Does this look like a terminal token (whatever its state)? */
export function isTerminalTokenShape(token: string): boolean {
  return TOKEN_RE.test(token);
}

export function listTerminals(store: KitStore): TerminalRecord[] {
  return [...store.terminals.getRange()].map((e) => e.value);
}

export function listPairings(store: KitStore, now: number): PairingRecord[] {
  return [...store.pairings.getRange()]
    .map((e) => e.value)
    .filter((p) => p.expiresAt > now && p.attemptsLeft > 0);
}

/** Revoke a terminal for good (its token stops working at once); undefined when there is no such terminal. */
export function revokeTerminal(
  store: KitStore,
  id: string,
  now: number,
): Promise<TerminalRecord | undefined> {
  return store.root.transaction(() => {
    const rec = store.terminals.get(id);
    if (!rec) return undefined;
    if (rec.revokedAt !== undefined) return rec;
    const revoked = { ...rec, revokedAt: new Date(now).toISOString() };
    void store.terminals.put(id, revoked);
    return revoked;
  });
}
