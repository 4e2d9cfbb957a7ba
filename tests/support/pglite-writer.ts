// A child process for the PGlite power-cut tests (tests/integration/hub-pglite-power-cut.test.ts):
// opens the hub's PGlite handle (services/hub/db.ts) in argv[2] with durability argv[3] (and on a first
// start the prebuilt template argv[4], when given; else initdb), then commits
// one row per transaction, as the ledger stores an order, and prints `acked <n>` only once the commit
// resolved: what the hub would ack to a kit. `ready <max> <count>` when open; it runs until killed.
import { openPglite, type PgliteDurability } from '../../services/hub/db.ts';

const [dir, durability, template] = process.argv.slice(2) as [string, PgliteDurability, string?];
const db = await openPglite(dir, 'ledger_cut', { durability, template: template ?? null });
await db.exec('CREATE TABLE IF NOT EXISTS acked (n integer PRIMARY KEY, body text NOT NULL)');
const seen = (
  await db.query<{ m: number | null; c: number }>('SELECT max(n) AS m, count(*)::int AS c FROM acked')
).rows[0];
const start = seen?.m ?? 0;
// what the table holds at start: the test checks every acked row is there, once, with no gap
process.stdout.write(`ready ${start} ${seen?.c ?? 0}\n`);
for (let n = start + 1; ; n++) {
  await db.transaction(async (tx) => {
    await tx.query('INSERT INTO acked (n, body) VALUES ($1, $2)', [n, `order ${n} `.repeat(20)]);
  });
  process.stdout.write(`acked ${n}\n`);
}
