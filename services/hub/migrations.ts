// Ledger schema, applied in order at start. Each migration runs once, in its own transaction, under
// an advisory lock so that several hub workers starting together do not race each other.
import { moduleLogger } from '../../core/logger.ts';
import type { SqlDb } from './db.ts';

const log = moduleLogger('hub-migrations');

/**
 * INSERT of the order_lines rows of every order in \`source\` (a relation with kit_id, order_id and
 * the wire order in body): migration 6's backfill, and what insertOrders runs on the orders it inserts.
 */
export function ORDER_LINES_FROM(source: string): string {
  return `WITH line AS (
        SELECT s.kit_id, s.order_id, l.value AS l, l.n
        FROM ${source} s, jsonb_array_elements(s.body->'lines') WITH ORDINALITY AS l(value, n)
      )
      INSERT INTO order_lines (kit_id, order_id, line_no, kind, sku, bundle_id, qty, unit_price_cents, line_cents)
      SELECT kit_id, order_id, (n * 100)::integer,
        CASE WHEN jsonb_typeof(l->'components') = 'array' THEN 'bundle' ELSE 'item' END,
        l->>'sku',
        CASE WHEN jsonb_typeof(l->'components') = 'array' THEN l->>'sku' END,
        (l->>'qty')::bigint, (l->>'unitPriceCents')::bigint, (l->>'lineCents')::bigint
      FROM line
      UNION ALL
      SELECT line.kit_id, line.order_id, (line.n * 100 + c.m)::integer, 'component', c.value->>'sku', line.l->>'sku',
        (c.value->>'qty')::bigint * (line.l->>'qty')::bigint, 0, 0
      FROM line, jsonb_array_elements(CASE WHEN jsonb_typeof(line.l->'components') = 'array'
        THEN line.l->'components' ELSE '[]'::jsonb END) WITH ORDINALITY AS c(value, m)`;
}

export const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'ledger',
    sql: `
      CREATE TABLE kits (
        kit_id text PRIMARY KEY,
        first_seen timestamptz NOT NULL DEFAULT now(),
        last_seen timestamptz NOT NULL DEFAULT now(),
        online boolean NOT NULL DEFAULT false,
        status jsonb,
        stock jsonb,
        stock_at bigint,
        health jsonb,
        health_at bigint
      );
      -- the kit's own order id is the key: a redelivered or replayed order is a no-op
      CREATE TABLE orders (
        kit_id text NOT NULL,
        order_id text NOT NULL,
        event_id text NOT NULL,
        kit_created_at text NOT NULL,
        total_cents bigint NOT NULL,
        currency text NOT NULL,
        payment_method text NOT NULL,
        token_hint text,
        state text NOT NULL CHECK (state IN ('forwarded', 'settled', 'declined')),
        decline_reason text,
        gateway_ref text,
        -- only while a token exchange is pending (gateway unreachable); sealed with the hub's key
        sealed_token jsonb,
        body jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        settled_at timestamptz,
        PRIMARY KEY (kit_id, order_id)
      );
      CREATE INDEX orders_pending_exchange ON orders (received_at) WHERE state = 'forwarded';
      CREATE TABLE kit_telemetry (
        kit_id text NOT NULL,
        entry_id text NOT NULL,
        lane text NOT NULL,
        at bigint NOT NULL,
        body jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kit_id, entry_id)
      );
      CREATE TABLE catalogs (
        event_id text NOT NULL,
        version integer NOT NULL,
        signed jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (event_id, version)
      );
    `,
  },
  {
    version: 2,
    name: 'dead letters',
    sql: `
      -- entries the hub cannot store (shape, text, arithmetic): kept with the reason and the entry as sent,
      -- as bytes (jsonb cannot hold \\u0000); the kit is acked 'rejected' so it stops resending
      CREATE TABLE dead_letters (
        id bigserial PRIMARY KEY,
        kit_id text NOT NULL,
        lane text,
        entry_id text,
        reason text NOT NULL,
        raw bytea NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX dead_letters_entry ON dead_letters (kit_id, lane, entry_id) WHERE entry_id IS NOT NULL;
    `,
  },
  {
    version: 3,
    name: 'pending verdicts',
    sql: `
      -- verdicts reached after the kit was acked 'forwarded' (it no longer resends the order): kept and
      -- resent with confirm until the kit names them in a receipt, however long it stays offline
      CREATE TABLE pending_verdicts (
        kit_id text NOT NULL,
        order_id text NOT NULL,
        state text NOT NULL CHECK (state IN ('settled', 'declined', 'rejected')),
        reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_sent_at timestamptz NOT NULL DEFAULT now(),
        sends integer NOT NULL DEFAULT 1,
        PRIMARY KEY (kit_id, order_id)
      );
    `,
  },
  {
    version: 4,
    name: 'order conflicts',
    sql: `
      -- an order resent with other content than the ledger's: the ledger's row stands, the other copy is
      -- kept here (once per distinct content) for someone to look at
      CREATE TABLE order_conflicts (
        id bigserial PRIMARY KEY,
        kit_id text NOT NULL,
        order_id text NOT NULL,
        body jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX order_conflicts_copy ON order_conflicts (kit_id, order_id, md5(body::text));
    `,
  },
  {
    version: 5,
    name: 'order events',
    sql: `
      -- what happened to an order after the kit took it (picked up, a hold confirmed or released), as
      -- the kit sent it; kept even when it arrives before its order
      CREATE TABLE order_events (
        kit_id text NOT NULL,
        entry_id text NOT NULL,
        order_id text NOT NULL,
        type text NOT NULL CHECK (type IN ('picked_up', 'confirmed', 'released')),
        at text NOT NULL,
        by text,
        reason text,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kit_id, entry_id)
      );
      CREATE INDEX order_events_order ON order_events (kit_id, order_id);
      -- an order's state on its kit: as it was taken (body.status, 'accepted' for older kits), then
      -- released or confirmed by its events; and when it was picked up
      CREATE VIEW order_status AS
        SELECT o.kit_id, o.order_id, o.event_id, o.state,
          CASE
            WHEN EXISTS (SELECT 1 FROM order_events e WHERE e.kit_id = o.kit_id AND e.order_id = o.order_id
                           AND e.type = 'released') THEN 'released'
            WHEN EXISTS (SELECT 1 FROM order_events e WHERE e.kit_id = o.kit_id AND e.order_id = o.order_id
                           AND e.type = 'confirmed') THEN 'accepted'
            ELSE COALESCE(o.body->>'status', 'accepted')
          END AS kit_status,
          (SELECT e.at FROM order_events e WHERE e.kit_id = o.kit_id AND e.order_id = o.order_id
             AND e.type = 'picked_up') AS picked_up_at
        FROM orders o;
    `,
  },
  {
    version: 6,
    name: 'order lines',
    sql: `
      -- every order's lines as rows (services/hub/ledger.ts insertOrders fills them with the order, in
      -- its statement): kind 'item' (a SKU; bundle_id NULL), 'bundle' (the bundle as sold: sku and
      -- bundle_id are its id, with its price), 'component' (what the bundle took of a SKU: qty is
      -- bundles x component qty, price 0, since the bundle row carries the money). Units sold per SKU
      -- are the sum of item and component rows (docs/drops.md#bundles).
      CREATE TABLE order_lines (
        kit_id text NOT NULL,
        order_id text NOT NULL,
        -- line n of the order is n*100; its components n*100+1, n*100+2, ... (at most 50 per bundle)
        line_no integer NOT NULL,
        kind text NOT NULL CHECK (kind IN ('item', 'bundle', 'component')),
        sku text NOT NULL,
        bundle_id text,
        qty bigint NOT NULL CHECK (qty > 0),
        unit_price_cents bigint NOT NULL,
        line_cents bigint NOT NULL,
        PRIMARY KEY (kit_id, order_id, line_no),
        FOREIGN KEY (kit_id, order_id) REFERENCES orders (kit_id, order_id) ON DELETE CASCADE,
        CHECK ((kind = 'item') = (bundle_id IS NULL))
      );
      CREATE INDEX order_lines_sku ON order_lines (sku);
      -- the orders already in the ledger
      ${ORDER_LINES_FROM('orders')}
    `,
  },
  {
    version: 7,
    name: 'pickup orders by event',
    sql: `
      -- an event's pickups (GET /v1/events/:eventId/pickups) read its pickup orders only
      CREATE INDEX orders_pickup_event ON orders (event_id) WHERE body ? 'pickup';
    `,
  },
  {
    version: 8,
    name: 'loyalty',
    sql: `
      -- loyalty passes the hub issued (services/hub/loyalty.ts): their uses per event are what a
      -- redemption count is held against
      CREATE TABLE loyalty_passes (
        pass_id text PRIMARY KEY,
        holder text NOT NULL,
        tier text NOT NULL,
        uses integer NOT NULL CHECK (uses >= 1),
        expires_at timestamptz NOT NULL,
        payload jsonb NOT NULL,
        issued_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX loyalty_passes_holder ON loyalty_passes (holder);
      -- one row per order that carried a discount, written with the order: kits offline from each
      -- other can each redeem a pass, and the hub sees it here
      CREATE TABLE loyalty_redemptions (
        kit_id text NOT NULL,
        order_id text NOT NULL,
        pass_id text NOT NULL,
        event_id text NOT NULL,
        holder text NOT NULL,
        cents bigint NOT NULL,
        kit_created_at text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kit_id, order_id)
      );
      CREATE INDEX loyalty_redemptions_pass ON loyalty_redemptions (pass_id, event_id);
    `,
  },
  {
    version: 9,
    name: 'online authorizations',
    sql: `
      -- the kits' online card checks (services/hub/authorize.ts): one row per request, written before the
      -- gateway is asked (a replayed request id finds its row and is refused); no token is kept. An
      -- approved one whose order never reaches the ledger is reported for a void (reported_at).
      CREATE TABLE authorizations (
        kit_id text NOT NULL,
        request_id text NOT NULL,
        order_id text NOT NULL,
        amount_cents bigint NOT NULL,
        currency text NOT NULL,
        -- NULL while the gateway is asked (a crash leaves it NULL: reported like an approval)
        verdict text CHECK (verdict IN ('approved', 'declined', 'unavailable')),
        gateway_ref text,
        reason text,
        requested_at timestamptz NOT NULL DEFAULT now(),
        answered_at timestamptz,
        reported_at timestamptz,
        PRIMARY KEY (kit_id, request_id)
      );
      CREATE INDEX authorizations_unreported ON authorizations (requested_at)
        WHERE reported_at IS NULL AND (verdict IS NULL OR verdict = 'approved');
    `,
  },
  {
    version: 10,
    name: 'product images',
    sql: `
      -- product image renditions (services/hub/images.ts), content-addressed: the key is the sha256 of
      -- the bytes, so a row never changes and every worker and read replica serves the same bytes
      CREATE TABLE product_images (
        sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        content_type text NOT NULL,
        width integer NOT NULL,
        height integer NOT NULL,
        bytes bytea NOT NULL,
        -- the sha256 of the upload it was made from and which rendition it is (re-uploads find it)
        source_sha256 text NOT NULL,
        rendition text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX product_images_source ON product_images (source_sha256, rendition);
    `,
  },
  {
    version: 11,
    name: 'event series and audience',
    sql: `
      -- per-second samples of each kit (core/contracts/series.ts), opened from sealed telemetry; the
      -- key makes a resent batch a no-op; BRIN on time: rows arrive roughly in time order and a report
      -- reads ranges
      CREATE TABLE kit_series (
        kit_id text NOT NULL,
        event_id text NOT NULL,
        t timestamptz NOT NULL,
        v jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kit_id, event_id, t)
      );
      CREATE INDEX kit_series_t ON kit_series USING brin (t);
      CREATE INDEX kit_series_event ON kit_series (event_id, t);
      CREATE TABLE kit_markers (
        kit_id text NOT NULL,
        event_id text NOT NULL,
        t timestamptz NOT NULL,
        kind text NOT NULL,
        label text NOT NULL,
        PRIMARY KEY (kit_id, event_id, t, kind, label)
      );
      -- the newest audience aggregate of each kit for an event (only groups of at least k people)
      CREATE TABLE kit_audience (
        kit_id text NOT NULL,
        event_id text NOT NULL,
        at timestamptz NOT NULL,
        body jsonb NOT NULL,
        -- orders the kit held for the event when it sent this (reconciliation)
        kit_orders integer,
        PRIMARY KEY (kit_id, event_id)
      );
      -- which creator an event belongs to (from its catalogs), for the cross-event feed
      CREATE TABLE event_creators (
        event_id text PRIMARY KEY,
        creator_id text NOT NULL,
        first_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX event_creators_creator ON event_creators (creator_id);
    `,
  },
  {
    // there is no 12 (it was reserved for a branch that took 15); versions are applied in order, each once
    version: 13,
    name: 'alerts',
    sql: `
      -- the fleet's alerts (services/hub/alerts.ts): one row per raised condition; the dedupe key makes
      -- one condition one alert while it is unresolved (acked still counts as unresolved)
      CREATE TABLE alerts (
        id bigserial PRIMARY KEY,
        kind text NOT NULL,
        kit_id text NOT NULL,
        event_id text,
        dedupe_key text NOT NULL,
        state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acked', 'resolved')),
        raised_at timestamptz NOT NULL DEFAULT now(),
        acked_at timestamptz,
        acked_by text,
        resolved_at timestamptz,
        detail jsonb NOT NULL DEFAULT '{}'::jsonb,
        CHECK ((state = 'resolved') = (resolved_at IS NOT NULL)),
        CHECK ((acked_at IS NULL) = (acked_by IS NULL))
      );
      CREATE UNIQUE INDEX alerts_unresolved ON alerts (dedupe_key) WHERE resolved_at IS NULL;
      CREATE INDEX alerts_kit ON alerts (kit_id, raised_at DESC);
      CREATE INDEX alerts_event ON alerts (event_id, raised_at DESC);
      -- every change of an alert to deliver, per channel: written in the change's transaction, sent
      -- after, retried with backoff until delivered or out of attempts (a restart picks them up)
      CREATE TABLE alert_deliveries (
        id bigserial PRIMARY KEY,
        alert_id bigint NOT NULL REFERENCES alerts (id),
        channel text NOT NULL CHECK (channel IN ('mqtt', 'webhook')),
        change text NOT NULL CHECK (change IN ('raised', 'acked', 'resolved')),
        body jsonb NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz,
        gave_up_at timestamptz,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX alert_deliveries_due ON alert_deliveries (next_at)
        WHERE delivered_at IS NULL AND gave_up_at IS NULL;
      -- the evaluator counts each kit's recent declines and rejected orders every interval
      CREATE INDEX orders_declined_recent ON orders (kit_id, (COALESCE(settled_at, received_at)))
        WHERE state = 'declined';
      CREATE INDEX dead_letters_kit_recent ON dead_letters (kit_id, received_at);
    `,
  },
  {
    version: 14,
    name: 'orders by event',
    sql: `
      -- the post-event report and the creator's page read an event's orders (services/hub/routes/report.ts):
      -- without it each report scanned the whole ledger
      CREATE INDEX orders_event ON orders (event_id);
    `,
  },
  {
    // see 13 for the missing 12
    version: 15,
    name: 'enrollment codes',
    sql: `
      -- one-time codes a kit enrolls itself with at first boot (services/hub/enrollment-codes.ts): the
      -- secret part is kept as its SHA-256 only (24 random bytes: nothing to brute-force offline);
      -- attempts counts wrong secrets, used_* is the one kit that used it
      CREATE TABLE enrollment_codes (
        code_id text PRIMARY KEY,
        secret_sha256 bytea NOT NULL,
        event_ids text[] NOT NULL,
        kit_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        max_attempts integer NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        used_at timestamptz,
        used_kit_id text,
        used_public_key text
      );
      CREATE INDEX enrollment_codes_expires ON enrollment_codes (expires_at);
    `,
  },
  {
    version: 16,
    name: 'shared stock',
    sql: `
      -- an event's stock shared by its kits (services/hub/shared-stock.ts, docs/shared-stock.md). Every
      -- move once by (event, kind, id): 'grant' gives a kit units, 'release_request' asks a kit to give
      -- units back (for a transfer to transfer_to), 'release' is what the kit released, in its own
      -- transaction. A transfer is the request, its release and the grant to the receiver, one id.
      CREATE TABLE stock_moves (
        event_id text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('grant', 'release_request', 'release')),
        move_id text NOT NULL,
        kit_id text NOT NULL,
        sku text NOT NULL,
        qty integer NOT NULL CHECK (qty >= 0),
        transfer_to text,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (event_id, kind, move_id)
      );
      CREATE INDEX stock_moves_kit ON stock_moves (event_id, kit_id);
      -- the version of the last statement signed for each kit of an event (it only rises)
      CREATE TABLE stock_statements (
        event_id text NOT NULL,
        kit_id text NOT NULL,
        version integer NOT NULL,
        PRIMARY KEY (event_id, kit_id)
      );
    `,
  },
  {
    version: 17,
    name: 'LAN stock transfers',
    sql: `
      -- each kit's identity public key (ed25519, JWK x) from its retained status: the hub lists it to the
      -- event's kits in their signed statements (peers) and checks the kits' signed LAN messages with it
      ALTER TABLE kits ADD COLUMN identity_key text;
      -- a move made by two kits over the venue LAN (docs/shared-stock.md#lan-transfers-the-hubs-side):
      -- its release and grant rows say 'lan', and the release keeps what the receiver asked for (there
      -- is no hub release_request for it)
      ALTER TABLE stock_moves ADD COLUMN via text NOT NULL DEFAULT 'hub' CHECK (via IN ('hub', 'lan'));
      ALTER TABLE stock_moves ADD COLUMN requested integer CHECK (requested IS NULL OR requested >= 1);
      -- the signed messages each side reported for a LAN transfer (the receiver's request, the giver's
      -- receipt), kept as they came: the evidence behind the move, once each
      CREATE TABLE lan_proofs (
        event_id text NOT NULL,
        move_id text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('request', 'receipt')),
        reported_by text NOT NULL,
        signed jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (event_id, move_id, kind)
      );
    `,
  },
];

export async function migrate(db: SqlDb): Promise<number> {
  let applied = 0;
  await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(727274)`);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set(
      (await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) =>
        Number(r.version),
      ),
    );
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied++;
      log.info({ version: m.version, name: m.name }, 'migration applied');
    }
  });
  return applied;
}
