// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// A signed catalog proves the hub issued it, not that it is current. After the kit moved from event A
// to event B, an old signed A catalog (retained on the broker, or replayed by anyone holding a copy)
// must be refused with a code and counted, on a real Mosquitto and real LMDB; returning to A takes a
// new version from the hub.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { signCatalog } from '../../core/catalog-signing.ts';
import { topics } from '../../core/contracts/hub-wire.ts';
import {
  hubCatalogHighWater,
  readEventState,
  readStoredCatalog,
  setEventState,
} from '../../core/store/index.ts';
import { CatalogIntake } from '../../services/sync/catalog-intake.ts';
import type { SyncService } from '../../services/sync/sync-service.ts';
import {
  type Mosquitto,
  makeKit,
  mosquitto,
  startSync,
  type TestKit,
  uniqueId,
  waitFor,
} from '../support/hub-link.ts';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

function catalog(eventId: string, version: number, name: string) {
  return {
    eventId,
    version,
    currency: 'EUR',
    items: [{ sku: 'TEE', name, priceCents: 2500, currency: 'EUR', stock: 100 }],
  };
}
const signed = (eventId: string, version: number, name = `${eventId} v${version}`) =>
  JSON.stringify(signCatalog(privateKey, catalog(eventId, version, name)));

async function switchEvent(kit: TestKit, eventId: string): Promise<void> {
  if (readEventState(kit.store).live) await setEventState(kit.store, false, null, null);
  await setEventState(kit.store, true, eventId, null);
}

describe('signed catalog replay after an event switch', () => {
  const evA = uniqueId('evA');
  const evB = uniqueId('evB');
  let broker: Mosquitto;
  let kit: TestKit;
  let sync: SyncService;
  let hub: mqtt.MqttClient;

  before(async () => {
    broker = await mosquitto();
    kit = await makeKit(uniqueId('kit'));
    await switchEvent(kit, evA);
    hub = await mqtt.connectAsync(broker.url, { clientId: uniqueId('hubpub') });
    sync = startSync(kit, broker.url, { POPKIT_HUB_PUBLIC_KEY: pubPem, POPKIT_EVENT_ID: evA });
  });

  after(async () => {
    await sync?.stop();
    await hub?.endAsync();
    await broker?.stop();
    await kit?.close();
  });

  const stored = () => {
    const c = readStoredCatalog(kit.store);
    return c ? `${c.eventId} v${c.version}` : 'none';
  };
  const refused = (code: string) => sync.catalogRefused[code] ?? 0;

  test('A v5, switch to B, replays of A are refused (CATALOG_REPLAY), counted; A v6 is taken', async () => {
    await hub.publishAsync(topics.catalog(evA), signed(evA, 5), { qos: 1, retain: true });
    await waitFor(() => stored() === `${evA} v5`, 20_000, 'A v5 in LMDB');

    await switchEvent(kit, evB);
    await waitFor(() => sync.status().catalogSubscribed === evB, 20_000, 'sync follows B');
    await hub.publishAsync(topics.catalog(evB), signed(evB, 1), { qos: 1, retain: true });
    await waitFor(() => stored() === `${evB} v1`, 20_000, 'B v1 in LMDB');

    // a rogue replays the genuine A v5 on B's topic
    await hub.publishAsync(topics.catalog(evB), signed(evA, 5), { qos: 1 });
    await waitFor(() => refused('CATALOG_WRONG_EVENT') === 1, 20_000, 'wrong-event refusal counted');

    // the kit is made to follow A again: the retained A v5 arrives and is a replay
    await switchEvent(kit, evA);
    await waitFor(() => refused('CATALOG_REPLAY') === 1, 20_000, 'retained A v5 refused');
    assert.equal(stored(), `${evB} v1`, 'the current catalog stays');
    // an older genuine A catalog (v3, kept by someone) too
    await hub.publishAsync(topics.catalog(evA), signed(evA, 3), { qos: 1 });
    await waitFor(() => refused('CATALOG_REPLAY') === 2, 20_000, 'A v3 refused');
    assert.equal(stored(), `${evB} v1`);
    const last = sync.catalogRefusals.at(-1);
    assert.equal(last?.code, 'CATALOG_REPLAY');
    assert.match(last?.message ?? '', /already accepted v5/);
    assert.deepEqual(sync.status().catalogRefused, { CATALOG_WRONG_EVENT: 1, CATALOG_REPLAY: 2 });

    // returning to an event takes a new version from the hub
    await hub.publishAsync(topics.catalog(evA), signed(evA, 6), { qos: 1, retain: true });
    await waitFor(() => stored() === `${evA} v6`, 20_000, 'A v6 in LMDB');
    assert.equal(hubCatalogHighWater(kit.store, evA), 6);
    assert.equal(hubCatalogHighWater(kit.store, evB), 1);
    assert.equal(refused('CATALOG_REPLAY'), 2);
  });
});

describe('the event is checked inside the catalog transaction', () => {
  test('a catalog of the event the kit left while the message was in flight is refused', async (t) => {
    const kit = await makeKit(uniqueId('kit'));
    t.after(() => kit.close());
    const evA = uniqueId('evA');
    const evB = uniqueId('evB');
    await switchEvent(kit, evA);
    const intake = new CatalogIntake(kit.store, { hubPublicKey: publicKey, eventId: evA });
    const topic = intake.topicOnConnect(); // subscribed to A
    await switchEvent(kit, evB); // the host switched; the subscription has not followed yet
    await intake.receive(topic, Buffer.from(signed(evA, 7)));
    assert.equal(intake.refusals.at(-1)?.code, 'CATALOG_REPLAY');
    assert.equal(intake.refusedCount['CATALOG_REPLAY'], 1);
    assert.notEqual(readStoredCatalog(kit.store)?.eventId, evA);
    assert.equal(hubCatalogHighWater(kit.store, evA), undefined);
    // hostile ids never reach an object key: the marks live under meta keys
    assert.equal(hubCatalogHighWater(kit.store, '__proto__'), undefined);
  });
});
