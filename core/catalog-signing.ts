// Signing and verifying the hub's per-event catalogs (ed25519, node:crypto). The hub signs the exact
// payload bytes; a kit verifies them against the hub public key from its configuration before it
// parses anything inside.
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { type CatalogPayloadT, type SignedCatalogT, type WireCatalogT, wire } from './contracts/hub-wire.ts';
import {
  type AllocationPayloadT,
  type SignedAllocationT,
  sharedStockWire,
} from './contracts/shared-stock.ts';
import { KitError } from './errors.ts';

/** A public key from PEM text or from base64 of its SPKI DER (what fits in one env var). */
export function parsePublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  try {
    const key = trimmed.includes('-----BEGIN')
      ? createPublicKey(trimmed)
      : createPublicKey({ key: Buffer.from(trimmed, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`not ed25519 but ${key.asymmetricKeyType}`);
    return key;
  } catch (err) {
    throw new KitError('CONFIG_INVALID', `hub public key is not an ed25519 key: ${(err as Error).message}`);
  }
}

export function parsePrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new KitError('CONFIG_INVALID', 'signing key is not ed25519');
  return key;
}

/**
 * Does `sig` (base64) verify over the exact bytes of `payload` with the hub's ed25519 key? Any
 * malformed signature is a no, never a throw (the callers' *_FORGED).
 */
export function signatureVerifies(publicKey: KeyObject, signed: { payload: string; sig: string }): boolean {
  const sig = Buffer.from(signed.sig, 'base64');
  try {
    return sig.length === 64 && verify(null, Buffer.from(signed.payload, 'utf8'), publicKey, sig);
  } catch {
    return false;
  }
}

/**
 * The one signed envelope every ed25519-signed message uses (SignedEnvelope in contracts/common.ts):
 * the body's exact JSON bytes as `payload` and the signature over them, so no canonical-JSON step is
 * needed on either side. Catalogs, allocation statements, the seal key and LAN messages are signed here.
 */
export function signEnvelope(
  privateKey: KeyObject,
  body: unknown,
): { v: 1; alg: 'ed25519'; payload: string; sig: string } {
  const payload = JSON.stringify(body);
  return {
    v: 1,
    alg: 'ed25519',
    payload,
    sig: sign(null, Buffer.from(payload, 'utf8'), privateKey).toString('base64'),
  };
}

export function signCatalog(
  privateKey: KeyObject,
  catalog: WireCatalogT,
  issuedAt = new Date().toISOString(),
): SignedCatalogT {
  const body: CatalogPayloadT = {
    v: 1,
    eventId: catalog.eventId,
    version: catalog.version,
    issuedAt,
    catalog,
  };
  return signEnvelope(privateKey, body);
}

/**
 * The verified catalog of a signed message, or a KitError: CATALOG_MALFORMED (not our shape),
 * CATALOG_FORGED (signature does not verify), CATALOG_WRONG_EVENT (signed for another event).
 */
export function verifySignedCatalog(publicKey: KeyObject, raw: Buffer | string, expectedEventId?: string) {
  let outer: unknown;
  try {
    outer = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch {
    throw new KitError('CATALOG_MALFORMED', 'catalog message is not JSON');
  }
  if (!wire.signedCatalog.check(outer)) {
    throw new KitError(
      'CATALOG_MALFORMED',
      `catalog message: ${wire.signedCatalog.errors(outer).join('; ')}`,
    );
  }
  if (!signatureVerifies(publicKey, outer))
    throw new KitError('CATALOG_FORGED', 'catalog signature does not verify against the hub key');
  let inner: unknown;
  try {
    inner = JSON.parse(outer.payload);
  } catch {
    throw new KitError('CATALOG_MALFORMED', 'signed catalog payload is not JSON');
  }
  if (!wire.catalogPayload.check(inner)) {
    throw new KitError(
      'CATALOG_MALFORMED',
      `signed catalog payload: ${wire.catalogPayload.errors(inner).join('; ')}`,
    );
  }
  if (inner.catalog.eventId !== inner.eventId || inner.catalog.version !== inner.version) {
    throw new KitError(
      'CATALOG_MALFORMED',
      'signed catalog: envelope and catalog disagree on event or version',
    );
  }
  if (expectedEventId !== undefined && inner.eventId !== expectedEventId) {
    throw new KitError(
      'CATALOG_WRONG_EVENT',
      `catalog signed for event ${inner.eventId}, arrived on ${expectedEventId}`,
    );
  }
  return inner;
}

/** Sign a kit's allocation statement with the catalog key, over the exact payload bytes (as catalogs). */
export function signAllocation(privateKey: KeyObject, body: AllocationPayloadT): SignedAllocationT {
  return signEnvelope(privateKey, body);
}

/**
 * The verified allocation statement of a signed message for `kitId`, or a KitError:
 * ALLOCATION_MALFORMED (not our shape, or a SKU twice), ALLOCATION_FORGED (signature),
 * ALLOCATION_WRONG_KIT (signed for another kit). Staleness is the store's to judge.
 */
export function verifySignedAllocation(
  publicKey: KeyObject,
  raw: Buffer | string,
  kitId: string,
): AllocationPayloadT {
  let outer: unknown;
  try {
    outer = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch {
    throw new KitError('ALLOCATION_MALFORMED', 'allocation message is not JSON');
  }
  const { signedAllocation, allocationPayload } = sharedStockWire;
  if (!signedAllocation.check(outer)) {
    throw new KitError('ALLOCATION_MALFORMED', `allocation: ${signedAllocation.errors(outer).join('; ')}`);
  }
  if (!signatureVerifies(publicKey, outer))
    throw new KitError('ALLOCATION_FORGED', 'allocation signature does not verify against the hub key');
  let inner: unknown;
  try {
    inner = JSON.parse(outer.payload);
  } catch {
    throw new KitError('ALLOCATION_MALFORMED', 'signed allocation payload is not JSON');
  }
  if (!allocationPayload.check(inner)) {
    throw new KitError(
      'ALLOCATION_MALFORMED',
      `signed allocation payload: ${allocationPayload.errors(inner).join('; ')}`,
    );
  }
  const ids = new Set<string>();
  for (const m of [...inner.grants, ...inner.releaseRequests]) {
    if (ids.has(m.id)) throw new KitError('ALLOCATION_MALFORMED', `allocation: move id ${m.id} twice`);
    ids.add(m.id);
  }
  if (inner.kitId !== kitId) {
    throw new KitError('ALLOCATION_WRONG_KIT', `allocation signed for kit ${inner.kitId}, not ${kitId}`);
  }
  return inner;
}
