// Baseline for bench/checkout.ts: the same fastify route and JSON Schema, storing each order in SQLite
// (better-sqlite3, WAL, synchronous=FULL, one transaction per order). Run as its own process.
import path from 'node:path';
import Database from 'better-sqlite3';
import Fastify from 'fastify';
import { OrderBody } from '../services/checkout/schemas.ts';

const dir = process.env['BENCH_DIR'] ?? '/tmp';
const port = Number(process.env['BENCH_PORT'] ?? 18099);
const db = new Database(path.join(dir, 'baseline.sqlite'));
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec(`CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS catalog (sku TEXT PRIMARY KEY, name TEXT, price INTEGER);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, total INTEGER, created TEXT);
CREATE TABLE IF NOT EXISTS outbox (order_id INTEGER PRIMARY KEY);`);
const items = JSON.parse(process.env['BENCH_CATALOG'] ?? '[]') as Array<{
  sku: string;
  name: string;
  priceCents: number;
  stock: number;
}>;
const seed = db.transaction(() => {
  for (const i of items) {
    db.prepare('INSERT OR REPLACE INTO stock VALUES (?, ?)').run(i.sku, i.stock);
    db.prepare('INSERT OR REPLACE INTO catalog VALUES (?, ?, ?)').run(i.sku, i.name, i.priceCents);
  }
});
seed();
const getStock = db.prepare<[string], { qty: number }>('SELECT qty FROM stock WHERE sku = ?');
const getItem = db.prepare<[string], { name: string; price: number }>(
  'SELECT name, price FROM catalog WHERE sku = ?',
);
const setStock = db.prepare('UPDATE stock SET qty = ? WHERE sku = ?');
const insOrder = db.prepare('INSERT INTO orders (body, total, created) VALUES (?, ?, ?)');
const insOutbox = db.prepare('INSERT INTO outbox VALUES (?)');

const place = db.transaction((lines: Array<{ sku: string; qty: number }>) => {
  let total = 0;
  const out = [];
  for (const l of lines) {
    const s = getStock.get(l.sku);
    const item = getItem.get(l.sku);
    if (!s || !item || s.qty < l.qty) return null;
    setStock.run(s.qty - l.qty, l.sku);
    total += item.price * l.qty;
    out.push({ ...l, name: item.name, unitPriceCents: item.price });
  }
  const created = new Date().toISOString();
  const info = insOrder.run(JSON.stringify(out), total, created);
  insOutbox.run(info.lastInsertRowid);
  return { id: String(info.lastInsertRowid), totalCents: total, lines: out, createdAt: created };
});

const app = Fastify({ ajv: { customOptions: { removeAdditional: false, coerceTypes: false } } });
app.post('/v1/orders', { schema: { body: OrderBody } }, async (req, reply) => {
  const body = req.body as { lines: Array<{ sku: string; qty: number }> };
  const order = place(body.lines);
  if (!order) return reply.status(409).send({ error: { code: 'SOLD_OUT', message: 'sold out' } });
  return reply.status(201).send({ ...order, status: 'accepted' });
});
app.get('/v1/catalog', async () => ({
  items: db
    .prepare(
      'SELECT c.sku, c.name, c.price AS priceCents, s.qty AS stock FROM catalog c JOIN stock s USING (sku)',
    )
    .all(),
}));
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write('ready\n');
