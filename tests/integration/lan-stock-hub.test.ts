// LAN stock transfers, the hub's side (docs/shared-stock.md#lan-transfers-the-hubs-side): the real hub
// ingest (HubIngest.handleExternal, the path a JetStream consumer feeds: entry contracts, the ledger's
// batch transaction, dead letters) on a real PostgreSQL schema, with the real SharedStock signing and
// "publishing" statements (captured). Kits A, B and C share an event's DROP; N is in the event but never
// told its identity key; X has a key but no stock in the event. A moves units to B over the venue LAN:
// the hub hears of it from the giver, the receiver, both in either order, replays and at once, and
// records one release and one grant; units only move. Forged, misrouted and hostile reports are
// dead-lettered and change nothing.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, randomBytes, randomUUID, sign } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { signCatalog, verifySignedAllocation } from '../../core/catalog-signing.ts';
import { topics } from '../../core/contracts/hub-wire.ts';
import type {
  LanReceiptPayloadT,
  LanRequestPayloadT,
  SignedLanMessageT,
} from '../../core/contracts/lan-stock.ts';
import { eventReport } from '../../core/contracts/report.ts';
import type { AllocationPayloadT } from '../../core/contracts/shared-stock.ts';
import { renderReportHtml } from '../../core/report/render.ts';
import { TokenVault } from '../../core/token-vault.ts';
import { openPostgres, type SqlDb } from '../../services/hub/db.ts';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import { HubIngest } from '../../services/hub/ingest.ts';
import { Ledger } from '../../services/hub/ledger.ts';
import { migrate } from '../../services/hub/migrations.ts';
import { hubEventReport } from '../../services/hub/report.ts';
import { SharedStock } from '../../services/hub/shared-stock.ts';
import { dropSchema, PG_URL, uniqueId, waitFor } from '../support/hub-link.ts';

const SKU = 'DROP';
const EVENT_STOCK = 30;

interface Kit {
  kitId: string;
  privateKey: KeyObject;
  /** the identity public key as the kit's status carries it (JWK x) */
  x: string;
}

function identity(kitId: string): Kit {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { kitId, privateKey, x: (privateKey.export({ format: 'jwk' }) as { x: string }).x };
}

/** A signed LAN message over the exact payload text (an object is JSON-encoded first). */
function signLan(key: KeyObject, payload: unknown): SignedLanMessageT {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return { v: 1, alg: 'ed25519', payload: text, sig: sign(null, Buffer.from(text), key).toString('base64') };
}

const lanId = () => `l-${randomUUID()}`;

describe('LAN stock transfers at the hub: keys, peers, one move per transfer, refusals', () => {
  const schema = uniqueId('t_lanhub').replace(/-/g, '_');
  const eventId = uniqueId('ev-lan');
  const hubKey = generateKeyPairSync('ed25519');
  let db: SqlDb;
  let ledger: Ledger;
  let shared: SharedStock;
  let ingest: HubIngest;
  /** every statement the hub "retained", in order */
  const published: Array<{ topic: string; payload: string }> = [];
  const A = identity(uniqueId('kit-a'));
  let B = identity(uniqueId('kit-b'));
  const C = identity(uniqueId('kit-c'));
  const N = identity(uniqueId('kit-n'));
  const X = identity(uniqueId('kit-x'));

  const status = (k: Kit, key: string | undefined = k.x) =>
    ingest.handleExternal(
      topics.status(k.kitId),
      Buffer.from(
        JSON.stringify({
          v: 1,
          kitId: k.kitId,
          online: true,
          at: Date.now(),
          ...(key ? { identityKey: key } : {}),
        }),
      ),
    );

  /** a second hub worker: its own pool, ledger and ingest on the same database */
  let db2: SqlDb;
  let ingest2: HubIngest;

  const send = (k: Kit, entries: unknown[], worker: HubIngest = ingest) =>
    worker.handleExternal(
      topics.orders(k.kitId),
      Buffer.from(JSON.stringify({ v: 1, kitId: k.kitId, sentAt: Date.now(), entries })),
    );

  function request(over: Partial<LanRequestPayloadT> = {}): LanRequestPayloadT {
    return {
      v: 1,
      use: 'lan-stock-request',
      id: lanId(),
      eventId,
      from: A.kitId,
      to: B.kitId,
      sku: SKU,
      qty: 4,
      at: new Date().toISOString(),
      ...over,
    };
  }

  function receiptFor(q: LanRequestPayloadT, released: number, over: Partial<LanReceiptPayloadT> = {}) {
    const r: LanReceiptPayloadT = {
      v: 1,
      use: 'lan-stock-receipt',
      id: q.id,
      eventId: q.eventId,
      from: q.from,
      to: q.to,
      sku: q.sku,
      requested: q.qty,
      released,
      at: new Date().toISOString(),
      ...over,
    };
    return r;
  }

  /** the giver's report: its release with the receiver's signed request */
  function releaseEntry(
    q: LanRequestPayloadT,
    released: number,
    opts: { signedBy?: KeyObject; signed?: SignedLanMessageT; to?: string; release?: object } = {},
  ) {
    const release = {
      id: q.id,
      eventId: q.eventId,
      sku: q.sku,
      requested: q.qty,
      released,
      at: new Date().toISOString(),
      lan: { to: opts.to ?? q.to, request: opts.signed ?? signLan(opts.signedBy ?? B.privateKey, q) },
      ...opts.release,
    };
    return { lane: 'orders', id: release.id, release };
  }

  /** the receiver's report: the giver's signed receipt */
  const grantEntry = (id: string, receipt: SignedLanMessageT) => ({
    lane: 'orders',
    id,
    lanGrant: { receipt },
  });

  async function movesOf(id: string) {
    const res = await db.query<{
      kind: string;
      kit_id: string;
      transfer_to: string | null;
      qty: number;
      via: string;
    }>(
      `SELECT kind, kit_id, transfer_to, qty, via FROM stock_moves WHERE event_id = $1 AND move_id = $2 ORDER BY kind`,
      [eventId, id],
    );
    return res.rows.map((r) => [r.kind, r.kit_id, r.transfer_to, Number(r.qty), r.via]);
  }

  /** kit → DROP allocated, and their sum, by the hub's view */
  async function allocations() {
    const view = await shared.view(eventId);
    const sku = view.skus.find((s) => s.sku === SKU)!;
    const byKit = new Map(sku.kits.map((k) => [k.kitId, k.allocated]));
    return { byKit, sum: sku.kits.reduce((n, k) => n + k.allocated, 0), unallocated: sku.unallocated };
  }

  async function deadLetter(k: Kit, id: string): Promise<string | undefined> {
    const res = await db.query<{ reason: string }>(
      'SELECT reason FROM dead_letters WHERE kit_id = $1 AND entry_id = $2',
      [k.kitId, id],
    );
    return res.rows[0]?.reason;
  }

  /** the latest statement the hub published for a kit, verified with the hub key */
  function latestStatement(k: Kit): AllocationPayloadT | undefined {
    const topic = topics.allocation(k.kitId, eventId);
    const last = published.filter((p) => p.topic === topic).at(-1);
    return last ? verifySignedAllocation(hubKey.publicKey, last.payload, k.kitId) : undefined;
  }

  before(async () => {
    db = await openPostgres(PG_URL, schema, 4);
    await migrate(db);
    ledger = new Ledger(db, new SandboxGateway(), new TokenVault(randomBytes(32)));
    shared = new SharedStock({
      db,
      signingKey: hubKey.privateKey,
      publishRetained: async (topic, payload) => {
        published.push({ topic, payload });
      },
      storeAndPublishCatalog: (e, v, s) => ledger.storeCatalog(e, v, s),
    });
    ingest = new HubIngest(ledger, {
      brokerUrl: 'mqtt://127.0.0.1:1',
      workerId: 'lan-test',
      shareGroup: 'lan-test',
      shared: 'off',
      retryDeferredMs: 3_600_000,
      verdictResendMs: 3_600_000,
      kitQuota: { batchMax: 5000, ratePerS: 1e6, burst: 1e6 },
      batches: 'external',
    });
    ingest.sharedStock = shared;
    db2 = await openPostgres(PG_URL, schema, 2);
    ingest2 = new HubIngest(new Ledger(db2, new SandboxGateway(), new TokenVault(randomBytes(32))), {
      brokerUrl: 'mqtt://127.0.0.1:1',
      workerId: 'lan-test-2',
      shareGroup: 'lan-test',
      shared: 'off',
      retryDeferredMs: 3_600_000,
      verdictResendMs: 3_600_000,
      kitQuota: { batchMax: 5000, ratePerS: 1e6, burst: 1e6 },
      batches: 'external',
    });
    await ledger.storeCatalog(
      eventId,
      1,
      signCatalog(hubKey.privateKey, {
        version: 1,
        eventId,
        currency: 'EUR',
        items: [
          { sku: SKU, name: 'Drop tee', priceCents: 4000, currency: 'EUR', stock: EVENT_STOCK },
          { sku: 'CAP', name: 'Cap', priceCents: 1000, currency: 'EUR', stock: 5 },
        ],
      }),
    );
    await shared.setAllocations(eventId, {
      allocations: [
        { kitId: A.kitId, sku: SKU, qty: 10 },
        { kitId: B.kitId, sku: SKU, qty: 10 },
        { kitId: C.kitId, sku: SKU, qty: 10 },
        { kitId: N.kitId, sku: 'CAP', qty: 1 },
      ],
    });
  });

  after(async () => {
    await db?.close();
    await db2?.close();
    await dropSchema(schema);
  });

  test("each kit's identity key from its status, listed as the event's peers in a verified statement", async () => {
    // before any key: the statements list no peer
    assert.deepEqual(latestStatement(A)?.peers, []);
    for (const k of [A, B, C, X]) await status(k);
    const keys = await db.query<{ kit_id: string; identity_key: string | null }>(
      'SELECT kit_id, identity_key FROM kits WHERE kit_id = ANY($1::text[]) ORDER BY kit_id',
      [[A.kitId, B.kitId, C.kitId, X.kitId]],
    );
    assert.deepEqual(
      keys.rows.map((r) => r.identity_key),
      [A, B, C, X].sort((a, b) => (a.kitId < b.kitId ? -1 : 1)).map((k) => k.x),
    );
    // A, B and C in the event with keys, sorted; not X (no stock there), not N (no key)
    const expected = [A, B, C]
      .map((k) => ({ kitId: k.kitId, key: k.x }))
      .sort((a, b) => (a.kitId < b.kitId ? -1 : 1));
    await waitFor(
      () => [A, B, C].every((k) => JSON.stringify(latestStatement(k)?.peers) === JSON.stringify(expected)),
      10_000,
      'statements listing the peers',
    );
    // a last will carries no key: the known one stays
    await ingest.handleExternal(
      topics.status(A.kitId),
      Buffer.from(JSON.stringify({ v: 1, kitId: A.kitId, online: false, at: Date.now() })),
    );
    assert.equal((await shared.peers(eventId)).find((p) => p.kitId === A.kitId)?.key, A.x);
    // the same key again republishes nothing; a changed key republishes the kit's events
    assert.deepEqual(
      (await ledger.recordStatus({ v: 1, kitId: B.kitId, online: true, at: 1, identityKey: B.x })).keyEvents,
      [],
    );
    const B2 = identity(B.kitId);
    const before = published.length;
    await status(B2);
    await waitFor(
      () =>
        latestStatement(C)?.peers?.find((p) => p.kitId === B.kitId)?.key === B2.x &&
        published.length > before,
      10_000,
      "the peers hear B's new key",
    );
    B = B2;
    // a status that is not a key (a hostile value) is refused before the ledger: the key stays
    for (const bad of ['x'.repeat(42), `${'A'.repeat(42)}=`, '__proto__', `${'A'.repeat(42)}\u0000`]) {
      await status(B, bad);
    }
    assert.equal((await shared.peers(eventId)).find((p) => p.kitId === B.kitId)?.key, B.x);
  });

  test('reported by the giver only: one release, one grant, units only move', async () => {
    const before = await allocations();
    assert.equal(before.sum, EVENT_STOCK);
    const q = request({ qty: 4 });
    await send(A, [releaseEntry(q, 4)]);
    assert.deepEqual(await movesOf(q.id), [
      ['grant', B.kitId, null, 4, 'lan'],
      ['release', A.kitId, B.kitId, 4, 'lan'],
    ]);
    const now = await allocations();
    assert.equal(now.sum, EVENT_STOCK);
    assert.equal(now.byKit.get(A.kitId), before.byKit.get(A.kitId)! - 4);
    assert.equal(now.byKit.get(B.kitId), before.byKit.get(B.kitId)! + 4);
    // B's next statement lists the grant under the transfer's id, and its allocation with it
    await waitFor(
      () => latestStatement(B)?.grants.some((g) => g.id === q.id && g.qty === 4),
      10_000,
      "B's statement with the LAN grant",
    );
    assert.deepEqual(latestStatement(B)?.allocated, [[SKU, now.byKit.get(B.kitId)]]);
    // the giver's report sent again changes nothing
    await send(A, [releaseEntry(q, 4)]);
    assert.equal((await movesOf(q.id)).length, 2);
    assert.deepEqual((await allocations()).byKit, now.byKit);
  });

  test('reported by the receiver only: the same two rows from the signed receipt', async () => {
    const before = await allocations();
    const q = request({ qty: 5 });
    await send(B, [grantEntry(q.id, signLan(A.privateKey, receiptFor(q, 3)))]);
    assert.deepEqual(await movesOf(q.id), [
      ['grant', B.kitId, null, 3, 'lan'],
      ['release', A.kitId, B.kitId, 3, 'lan'],
    ]);
    const now = await allocations();
    assert.equal(now.sum, EVENT_STOCK);
    assert.equal(now.byKit.get(A.kitId), before.byKit.get(A.kitId)! - 3);
    assert.equal(now.byKit.get(B.kitId), before.byKit.get(B.kitId)! + 3);
  });

  test('reported by both, in either order, replayed, and at once: exactly one release and one grant', async () => {
    const start = await allocations();
    const first = request({ qty: 2 });
    const second = request({ qty: 3 });
    const third = request({ qty: 2, from: C.kitId });
    // the giver first, then the receiver, then both again
    await send(A, [releaseEntry(first, 2)]);
    await send(B, [grantEntry(first.id, signLan(A.privateKey, receiptFor(first, 2)))]);
    await send(A, [releaseEntry(first, 2)]);
    await send(B, [grantEntry(first.id, signLan(A.privateKey, receiptFor(first, 2)))]);
    // the receiver first, then the giver
    await send(B, [grantEntry(second.id, signLan(A.privateKey, receiptFor(second, 1)))]);
    await send(A, [releaseEntry(second, 1)]);
    // every report of a third at once, on two hub workers (each its own pool and transactions)
    await Promise.all([
      send(C, [releaseEntry(third, 2)]),
      send(B, [grantEntry(third.id, signLan(C.privateKey, receiptFor(third, 2)))], ingest2),
      send(C, [releaseEntry(third, 2)], ingest2),
      send(B, [grantEntry(third.id, signLan(C.privateKey, receiptFor(third, 2)))]),
    ]);
    assert.deepEqual(await movesOf(first.id), [
      ['grant', B.kitId, null, 2, 'lan'],
      ['release', A.kitId, B.kitId, 2, 'lan'],
    ]);
    assert.deepEqual(await movesOf(second.id), [
      ['grant', B.kitId, null, 1, 'lan'],
      ['release', A.kitId, B.kitId, 1, 'lan'],
    ]);
    assert.deepEqual(await movesOf(third.id), [
      ['grant', B.kitId, null, 2, 'lan'],
      ['release', C.kitId, B.kitId, 2, 'lan'],
    ]);
    const now = await allocations();
    assert.equal(now.sum, EVENT_STOCK);
    assert.equal(now.byKit.get(A.kitId), start.byKit.get(A.kitId)! - 3);
    assert.equal(now.byKit.get(C.kitId), start.byKit.get(C.kitId)! - 2);
    assert.equal(now.byKit.get(B.kitId), start.byKit.get(B.kitId)! + 5);
    // both signed messages kept as the evidence, once each
    const proofs = await db.query<{ kind: string; reported_by: string }>(
      'SELECT kind, reported_by FROM lan_proofs WHERE event_id = $1 AND move_id = $2 ORDER BY kind',
      [eventId, first.id],
    );
    assert.deepEqual(
      proofs.rows.map((r) => [r.kind, r.reported_by]),
      [
        ['receipt', B.kitId],
        ['request', A.kitId],
      ],
    );
    // nothing of these went to the dead letters
    for (const q of [first, second, third]) {
      assert.equal(await deadLetter(A, q.id), undefined);
      assert.equal(await deadLetter(B, q.id), undefined);
      assert.equal(await deadLetter(C, q.id), undefined);
    }
  });

  test('nothing given: a release of 0 is recorded, no grant', async () => {
    const q = request({ qty: 2 });
    await send(A, [releaseEntry(q, 0)]);
    await send(B, [grantEntry(q.id, signLan(A.privateKey, receiptFor(q, 0)))]);
    assert.deepEqual(await movesOf(q.id), [['release', A.kitId, B.kitId, 0, 'lan']]);
    assert.equal((await allocations()).sum, EVENT_STOCK);
  });

  test('forged, misrouted and hostile reports are dead-lettered with a reason and change nothing', async () => {
    const start = await allocations();
    const refusedBefore = ledger.counters.lanRefused;
    const outsider = identity(uniqueId('kit-nobody'));
    const cases: Array<[string, Kit, () => { id: string; entry: unknown }, RegExp]> = [
      // the giver's release
      [
        'a forged request (a key no kit has)',
        A,
        () => {
          const q = request();
          return { id: q.id, entry: releaseEntry(q, 4, { signedBy: outsider.privateKey }) };
        },
        /^LAN_REPORT_FORGED/,
      ],
      [
        "a request signed with another peer's key",
        A,
        () => {
          const q = request();
          return { id: q.id, entry: releaseEntry(q, 4, { signedBy: C.privateKey }) };
        },
        /^LAN_REPORT_FORGED/,
      ],
      [
        'a request signed by a kit not in the event',
        A,
        () => {
          const q = request({ to: X.kitId });
          return { id: q.id, entry: releaseEntry(q, 4, { signedBy: X.privateKey }) };
        },
        /^LAN_REPORT_UNKNOWN_KIT/,
      ],
      [
        'a request by a kit of the event whose key the hub does not know',
        A,
        () => {
          const q = request({ to: N.kitId });
          return { id: q.id, entry: releaseEntry(q, 4, { signedBy: N.privateKey }) };
        },
        /^LAN_REPORT_UNKNOWN_KIT/,
      ],
      [
        'a request from a kit that never enrolled',
        A,
        () => {
          const q = request({ to: outsider.kitId });
          return { id: q.id, entry: releaseEntry(q, 4, { signedBy: outsider.privateKey }) };
        },
        /^LAN_REPORT_UNKNOWN_KIT/,
      ],
      [
        'a release by a giver not in the event (to a kit that is)',
        X,
        () => {
          const q = request({ from: X.kitId });
          return { id: q.id, entry: releaseEntry(q, 4) };
        },
        /^LAN_REPORT_UNKNOWN_KIT.*not in event/,
      ],
      [
        'a request for another transfer id',
        A,
        () => {
          const q = request();
          const e = releaseEntry(q, 4);
          const id = lanId();
          return { id, entry: { ...e, id, release: { ...e.release, id } } };
        },
        /^LAN_REPORT_MISMATCH.*id/,
      ],
      [
        'a request for another SKU',
        A,
        () => {
          const q = request({ sku: 'CAP' });
          const e = releaseEntry(q, 4);
          return { id: q.id, entry: { ...e, release: { ...e.release, sku: SKU } } };
        },
        /^LAN_REPORT_MISMATCH.*sku/,
      ],
      [
        'a request for another event',
        A,
        () => {
          const q = request({ eventId: 'ev-other' });
          const e = releaseEntry(q, 4);
          return { id: q.id, entry: { ...e, release: { ...e.release, eventId } } };
        },
        /^LAN_REPORT_/,
      ],
      [
        'a request to another giver (from)',
        A,
        () => {
          const q = request({ from: C.kitId });
          return { id: q.id, entry: releaseEntry(q, 4) };
        },
        /^LAN_REPORT_MISMATCH.*from/,
      ],
      [
        'a request for another receiver (to)',
        A,
        () => {
          const q = request({ to: C.kitId });
          return { id: q.id, entry: releaseEntry(q, 4, { to: B.kitId, signedBy: B.privateKey }) };
        },
        /^LAN_REPORT_/,
      ],
      [
        'released more than requested',
        A,
        () => {
          const q = request({ qty: 4 });
          return { id: q.id, entry: releaseEntry(q, 5) };
        },
        /^LAN_REPORT_MISMATCH.*released 5 > requested 4/,
      ],
      [
        'requested differs from the signed qty',
        A,
        () => {
          const q = request({ qty: 4 });
          const e = releaseEntry(q, 2);
          return { id: q.id, entry: { ...e, release: { ...e.release, requested: 9 } } };
        },
        /^LAN_REPORT_MISMATCH.*qty/,
      ],
      [
        'a release to the giver itself',
        A,
        () => {
          const q = request({ to: A.kitId });
          return { id: q.id, entry: releaseEntry(q, 1, { signedBy: A.privateKey }) };
        },
        /^LAN_REPORT_MISMATCH/,
      ],
      [
        'a signed request whose payload has __proto__',
        A,
        () => {
          const q = request();
          const text = JSON.stringify(q).replace('"v":1,', '"__proto__":{"polluted":1},"v":1,');
          return { id: q.id, entry: releaseEntry(q, 4, { signed: signLan(B.privateKey, text) }) };
        },
        /^LAN_REPORT_MALFORMED/,
      ],
      [
        'a signed request with __proto__ as its SKU',
        A,
        () => {
          const q = request({ sku: '__proto__' });
          const e = releaseEntry(q, 4);
          return { id: q.id, entry: { ...e, release: { ...e.release, sku: SKU } } };
        },
        /^LAN_REPORT_MALFORMED/,
      ],
      [
        'a signed request with NUL in a kit id',
        A,
        () => {
          const q = request({ to: `${B.kitId}\u0000` });
          return { id: q.id, entry: releaseEntry(q, 4, { to: B.kitId }) };
        },
        /^LAN_REPORT_MALFORMED/,
      ],
      [
        'a signed request for a huge qty',
        A,
        () => {
          const q = request({ qty: 1e15 });
          const e = releaseEntry(q, 4);
          return { id: q.id, entry: { ...e, release: { ...e.release, requested: 4 } } };
        },
        /^LAN_REPORT_MALFORMED/,
      ],
      [
        'a signed request that is not JSON',
        A,
        () => {
          const q = request();
          return { id: q.id, entry: releaseEntry(q, 4, { signed: signLan(B.privateKey, '{"v":1,') }) };
        },
        /^LAN_REPORT_MALFORMED/,
      ],
      [
        'a signed receipt passed off as a request',
        A,
        () => {
          const q = request();
          return { id: q.id, entry: releaseEntry(q, 4, { signed: signLan(B.privateKey, receiptFor(q, 4)) }) };
        },
        /^LAN_REPORT_MALFORMED/,
      ],
      // off the entry contract before the ledger: NUL, __proto__, huge numbers in the release itself
      [
        '__proto__ as the release SKU',
        A,
        () => {
          const q = request({ sku: '__proto__' });
          return { id: q.id, entry: releaseEntry(q, 4) };
        },
        /sku/,
      ],
      [
        'a huge released',
        A,
        () => {
          const q = request();
          const e = releaseEntry(q, 4);
          return { id: q.id, entry: { ...e, release: { ...e.release, released: 1e15 } } };
        },
        /released/,
      ],
      [
        'an extra field in lan',
        A,
        () => {
          const q = request();
          const e = releaseEntry(q, 4);
          return { id: q.id, entry: { ...e, release: { ...e.release, lan: { ...e.release.lan, qty: 99 } } } };
        },
        /lan/,
      ],
      // the receiver's receipt
      [
        'a receipt signed by the receiver itself, not the giver',
        B,
        () => {
          const q = request();
          return { id: q.id, entry: grantEntry(q.id, signLan(B.privateKey, receiptFor(q, 4))) };
        },
        /^LAN_REPORT_FORGED/,
      ],
      [
        'a receipt from a giver not in the event',
        B,
        () => {
          const q = request({ from: X.kitId });
          return { id: q.id, entry: grantEntry(q.id, signLan(X.privateKey, receiptFor(q, 4))) };
        },
        /^LAN_REPORT_UNKNOWN_KIT/,
      ],
      [
        'a receipt for another kit (to), reported by B',
        B,
        () => {
          const q = request({ to: C.kitId });
          return { id: q.id, entry: grantEntry(q.id, signLan(A.privateKey, receiptFor(q, 4))) };
        },
        /^LAN_REPORT_MISMATCH.*to/,
      ],
      [
        'a receipt under another entry id',
        B,
        () => {
          const q = request();
          const id = lanId();
          return { id, entry: grantEntry(id, signLan(A.privateKey, receiptFor(q, 4))) };
        },
        /^LAN_REPORT_MISMATCH.*id/,
      ],
      [
        'a receipt that released more than requested',
        B,
        () => {
          const q = request({ qty: 2 });
          return { id: q.id, entry: grantEntry(q.id, signLan(A.privateKey, receiptFor(q, 3))) };
        },
        /^LAN_REPORT_MISMATCH/,
      ],
      [
        'a receipt with a huge released',
        B,
        () => {
          const q = request();
          return {
            id: q.id,
            entry: grantEntry(q.id, signLan(A.privateKey, receiptFor(q, 4, { released: 2 ** 53 }))),
          };
        },
        /^LAN_REPORT_MALFORMED/,
      ],
      [
        'a receipt with NUL in its SKU',
        B,
        () => {
          const q = request({ sku: 'DR\u0000P' });
          return { id: q.id, entry: grantEntry(q.id, signLan(A.privateKey, receiptFor(q, 1))) };
        },
        /^LAN_REPORT_MALFORMED/,
      ],
      [
        'a receipt whose signature was cut',
        B,
        () => {
          const q = request();
          const s = signLan(A.privateKey, receiptFor(q, 4));
          return { id: q.id, entry: grantEntry(q.id, { ...s, sig: s.sig.slice(0, 40) }) };
        },
        /^LAN_REPORT_FORGED/,
      ],
      [
        'a receipt whose payload was changed after signing',
        B,
        () => {
          const q = request();
          const s = signLan(A.privateKey, receiptFor(q, 1));
          return {
            id: q.id,
            entry: grantEntry(q.id, { ...s, payload: s.payload.replace('"released":1', '"released":4') }),
          };
        },
        /^LAN_REPORT_FORGED/,
      ],
      [
        'a grant entry whose id is not a LAN id',
        B,
        () => {
          const q = request();
          return { id: 't-1', entry: grantEntry('t-1', signLan(A.privateKey, receiptFor(q, 4))) };
        },
        /LAN transfer id/,
      ],
    ];
    for (const [what, sender, make, reason] of cases) {
      const { id, entry } = make();
      await send(sender, [entry]);
      const dl = await deadLetter(sender, id);
      assert.ok(dl, `${what}: dead-lettered`);
      assert.match(dl, reason, what);
      const moved = await db.query('SELECT 1 FROM stock_moves WHERE move_id = $1', [id]);
      assert.equal(moved.rows.length, 0, `${what}: no move`);
    }
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    const now = await allocations();
    assert.deepEqual(now.byKit, start.byKit);
    assert.equal(now.sum, EVENT_STOCK);
    // every case the ledger refused (not the entry contract) counted once
    assert.equal(
      ledger.counters.lanRefused - refusedBefore,
      cases.filter(([, , , r]) => r.source.startsWith('^LAN_REPORT_')).length,
    );
  });

  test('a recorded transfer reported again with other figures: LAN_REPORT_CONFLICT, the first stands; the kit is acked rejected', async () => {
    const q = request({ qty: 3 });
    await send(A, [releaseEntry(q, 3)]);
    const before = await allocations();
    // a receipt the giver signed with another figure (a giver contradicting itself)
    const acks = await ledger.recordBatch(B.kitId, [
      grantEntry(q.id, signLan(A.privateKey, receiptFor(q, 1))) as never,
    ]);
    assert.equal(acks.length, 1);
    assert.equal(acks[0]?.state, 'rejected');
    assert.match(acks[0]?.reason ?? '', /^LAN_REPORT_CONFLICT/);
    assert.deepEqual(await movesOf(q.id), [
      ['grant', B.kitId, null, 3, 'lan'],
      ['release', A.kitId, B.kitId, 3, 'lan'],
    ]);
    assert.deepEqual((await allocations()).byKit, before.byKit);
    // the right receipt is acked stored
    const ok = await ledger.recordBatch(B.kitId, [
      grantEntry(q.id, signLan(A.privateKey, receiptFor(q, 3))) as never,
    ]);
    assert.deepEqual(ok, [{ lane: 'orders', id: q.id, state: 'stored' }]);
  });

  test("the report and the stock view list LAN transfers with via 'lan', beside the hub's", async () => {
    // one hub transfer, answered, to compare
    const { transferId } = await shared.transfer(eventId, { from: C.kitId, to: A.kitId, sku: SKU, qty: 1 });
    await send(C, [
      {
        lane: 'orders',
        id: transferId,
        release: {
          id: transferId,
          eventId,
          sku: SKU,
          requested: 1,
          released: 1,
          at: new Date().toISOString(),
        },
      },
    ]);
    const report = await hubEventReport(db, eventId, Math.floor(Date.now() / 1000));
    assert.ok(eventReport.check(report), eventReport.errors(report).join('; '));
    const transfers = report.inventory.transfers ?? [];
    const lan = transfers.filter((t) => t.via === 'lan');
    const lanMoves = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM stock_moves WHERE event_id = $1 AND kind = 'release' AND via = 'lan'`,
      [eventId],
    );
    assert.equal(lan.length, Number(lanMoves.rows[0]?.n));
    assert.ok(lan.length >= 6);
    const hub = transfers.filter((t) => t.via === 'hub');
    assert.deepEqual(hub, [
      { id: transferId, sku: SKU, from: C.kitId, to: A.kitId, requested: 1, released: 1, via: 'hub' },
    ]);
    // a LAN transfer as the giver reported it: asked 5, gave 3
    const asked5 = lan.find((t) => t.requested === 5)!;
    assert.deepEqual([asked5.from, asked5.to, asked5.released], [A.kitId, B.kitId, 3]);
    // the start is the allocation, transfers in and out included: the kits' starts add to the event's stock
    assert.equal(report.inventory.skus.find((s) => s.sku === SKU)?.start, EVENT_STOCK);
    const html = renderReportHtml(report);
    assert.match(html, /<th>via<\/th>/);
    assert.match(html, /venue LAN/);
    const view = await shared.view(eventId);
    const viewLan = view.moves.filter((m) => m.via === 'lan');
    assert.equal(viewLan.filter((m) => m.kind === 'release').length, lan.length);
    assert.ok(viewLan.some((m) => m.kind === 'grant' && m.kitId === B.kitId));
    assert.ok(view.moves.some((m) => m.via === 'hub' && m.kind === 'release_request' && m.id === transferId));
  });
});
