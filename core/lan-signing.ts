// Signing and opening the messages kits exchange over the venue LAN (core/contracts/lan-stock.ts,
// docs/shared-stock.md#lan-transfers). A kit signs with its identity key (core/enroll-kit.ts), over the
// exact payload bytes as the hub signs catalogs; the other side knows that key only from the hub's
// signed allocation statement (`peers`). The signature is checked before anything inside is read.
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { TSchema } from '@sinclair/typebox';
import { signatureVerifies, signEnvelope } from './catalog-signing.ts';
import type { Contract } from './contracts/common.ts';
import {
  type LanReceiptPayloadT,
  type LanRequestPayloadT,
  lanStockWire,
  type SignedLanMessageT,
} from './contracts/lan-stock.ts';
import { KitError } from './errors.ts';

/** The ed25519 public key of an identity key as the contracts carry it (JWK `x`, base64url). */
export function identityPublicKey(x: string): KeyObject {
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  } catch (err) {
    throw new KitError('LAN_MALFORMED', `not an ed25519 identity key: ${(err as Error).message}`);
  }
}

/** Sign a LAN request or receipt with this kit's identity key. */
export function signLan(
  privateKey: KeyObject,
  body: LanRequestPayloadT | LanReceiptPayloadT,
): SignedLanMessageT {
  return signEnvelope(privateKey, body);
}

/**
 * The verified payload of a signed LAN message, or a KitError: LAN_MALFORMED (not the envelope, not the
 * payload's shape), LAN_UNKNOWN_PEER (its signer is not a kit of the event: `keyOf` has no key for it),
 * LAN_FORGED (the signature does not verify with the signer's key). `signer` names who must have signed
 * it: the request's `to`, the receipt's `from`.
 */
function openLan<T extends LanRequestPayloadT | LanReceiptPayloadT>(
  raw: unknown,
  inner: Pick<Contract<TSchema>, 'check' | 'errors'>,
  signer: (p: T) => string,
  keyOf: (kitId: string) => KeyObject | undefined,
): T {
  const { signed } = lanStockWire;
  if (!signed.check(raw))
    throw new KitError('LAN_MALFORMED', `LAN message: ${signed.errors(raw).join('; ')}`);
  let body: unknown;
  try {
    body = JSON.parse(raw.payload);
  } catch {
    throw new KitError('LAN_MALFORMED', 'LAN message payload is not JSON');
  }
  if (!inner.check(body))
    throw new KitError('LAN_MALFORMED', `LAN message payload: ${inner.errors(body).join('; ')}`);
  const p = body as T;
  const who = signer(p);
  const key = keyOf(who);
  if (!key)
    throw new KitError('LAN_UNKNOWN_PEER', `kit ${who} is not a kit of event ${p.eventId} with a known key`);
  if (!signatureVerifies(key, raw))
    throw new KitError('LAN_FORGED', `LAN message signature does not verify with ${who}'s key`);
  return p;
}

/** A request, signed by the kit that asks (`to`). */
export function openLanRequest(
  raw: unknown,
  keyOf: (kitId: string) => KeyObject | undefined,
): LanRequestPayloadT {
  return openLan<LanRequestPayloadT>(raw, lanStockWire.request, (p) => p.to, keyOf);
}

/** A receipt, signed by the kit that gave (`from`). */
export function openLanReceipt(
  raw: unknown,
  keyOf: (kitId: string) => KeyObject | undefined,
): LanReceiptPayloadT {
  return openLan<LanReceiptPayloadT>(raw, lanStockWire.receipt, (p) => p.from, keyOf);
}
