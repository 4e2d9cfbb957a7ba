// Catalog signatures: the exact payload bytes are signed; anything else is refused with a code.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { parsePublicKey, signCatalog, verifySignedCatalog } from '../../core/catalog-signing.ts';
import { kitIdFromTopic, topics } from '../../core/contracts/hub-wire.ts';

const pair = generateKeyPairSync('ed25519');
const catalog = {
  version: 3,
  eventId: 'summer-tour',
  items: [{ sku: 'TEE', name: 'Tee', priceCents: 2500, currency: 'EUR', stock: 10 }],
};

test('a signed catalog verifies with the public key as PEM or as base64 DER', () => {
  const signed = JSON.stringify(signCatalog(pair.privateKey, catalog));
  const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const der = (pair.publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64');
  for (const key of [parsePublicKey(pem), parsePublicKey(der)]) {
    const v = verifySignedCatalog(key, signed, 'summer-tour');
    assert.equal(v.version, 3);
    assert.deepEqual(v.catalog, catalog);
  }
});

test('forged, tampered, malformed and misrouted catalogs are refused with a code', () => {
  const key = parsePublicKey(pair.publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const other = generateKeyPairSync('ed25519').privateKey;
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return (err as { code: string }).code;
    }
    return 'accepted';
  };
  assert.equal(
    code(() => verifySignedCatalog(key, JSON.stringify(signCatalog(other, catalog)))),
    'CATALOG_FORGED',
  );
  const t = signCatalog(pair.privateKey, catalog);
  t.payload = t.payload.replace('2500', '1');
  assert.equal(
    code(() => verifySignedCatalog(key, JSON.stringify(t))),
    'CATALOG_FORGED',
  );
  assert.equal(
    code(() => verifySignedCatalog(key, 'nope')),
    'CATALOG_MALFORMED',
  );
  assert.equal(
    code(() => verifySignedCatalog(key, '{"v":1}')),
    'CATALOG_MALFORMED',
  );
  const bad = signCatalog(pair.privateKey, { ...catalog, items: [{ sku: 'X' }] } as never);
  assert.equal(
    code(() => verifySignedCatalog(key, JSON.stringify(bad))),
    'CATALOG_MALFORMED',
  );
  const good = JSON.stringify(signCatalog(pair.privateKey, catalog));
  assert.equal(
    code(() => verifySignedCatalog(key, good, 'winter-tour')),
    'CATALOG_WRONG_EVENT',
  );
  assert.throws(() => parsePublicKey('not a key at all, certainly not ed25519 ...........'), /ed25519/);
});

test('topics carry the kit id, and only well-formed topics yield one', () => {
  assert.deepEqual(kitIdFromTopic(topics.orders('kit-1')), { kitId: 'kit-1', leaf: 'orders' });
  assert.equal(kitIdFromTopic('popkit/v1/kits/kit-1/orders/extra'), undefined);
  assert.equal(kitIdFromTopic('other/v1/kits/kit-1/orders'), undefined);
});
