// The embedded hub's prebuilt database (services/hub/pglite-template.ts): a first start into an empty
// directory copies the template instead of running initdb, and the hub works from the copy (migrations,
// commits, a reopen that finds every row). A template that is damaged, incomplete, of another PGlite
// version or missing is refused with its reason, leaves the directory as it was, and the first start
// falls back to initdb.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import { openPglite, PGLITE_READY_MARKER } from '../../services/hub/db.ts';
import { migrate } from '../../services/hub/migrations.ts';
import {
  makePgliteTemplate,
  pgliteVersion,
  seedFromTemplate,
  TEMPLATE_MANIFEST,
} from '../../services/hub/pglite-template.ts';
import { startHub, tmpDir } from '../support/hub-link.ts';

let template: string;

before(async () => {
  template = path.join(tmpDir('pglite-template'), 'template');
  const files = await makePgliteTemplate(template);
  assert.ok(files > 100, `a whole PostgreSQL cluster (${files} files)`);
});

/** A copy of the template to damage. */
function copyOfTemplate(): string {
  const copy = path.join(tmpDir('pglite-template-copy'), 'template');
  fs.cpSync(template, copy, { recursive: true });
  return copy;
}

test('a first start copies the template, the ledger migrates and commits on it, a reopen finds the rows', async () => {
  const dir = path.join(tmpDir('pglite-from-template'), 'hub-db');
  const db = await openPglite(dir, 'ledger', { template });
  try {
    assert.equal(db.origin, 'template');
    assert.ok(fs.existsSync(path.join(dir, PGLITE_READY_MARKER)), 'marked ready once synced');
    assert.ok(!fs.existsSync(`${dir}.seeding`), 'no staging copy left behind');
    await migrate(db);
    await db.exec('CREATE TABLE acked (n integer PRIMARY KEY)');
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO acked (n) VALUES ($1), ($2)', [1, 2]);
    });
  } finally {
    await db.close();
  }
  const again = await openPglite(dir, 'ledger', { template });
  try {
    assert.equal(again.origin, 'existing', 'a second start never copies over the database');
    const rows = (await again.query<{ n: number }>('SELECT n FROM acked ORDER BY n')).rows;
    assert.deepEqual(
      rows.map((r) => r.n),
      [1, 2],
    );
  } finally {
    await again.close();
  }
});

test('a damaged, incomplete, foreign or missing template is refused with its reason and writes nothing', () => {
  const cases: Array<[string, (t: string) => void, RegExp]> = [
    [
      'a flipped byte',
      (t) => {
        const f = path.join(t, 'global/pg_control');
        const buf = fs.readFileSync(f);
        buf[100] = (buf[100] ?? 0) ^ 0xff;
        fs.writeFileSync(f, buf);
      },
      /global\/pg_control is damaged/,
    ],
    ['a missing file', (t) => fs.rmSync(path.join(t, 'PG_VERSION')), /unreadable: .*PG_VERSION/],
    [
      'another PGlite version',
      (t) => {
        const m = path.join(t, TEMPLATE_MANIFEST);
        fs.writeFileSync(m, JSON.stringify({ ...JSON.parse(fs.readFileSync(m, 'utf8')), pglite: '0.0.1' }));
      },
      new RegExp(`made by PGlite 0\\.0\\.1, this is ${pgliteVersion().replace(/\./g, '\\.')}`),
    ],
    ['no manifest', (t) => fs.rmSync(path.join(t, TEMPLATE_MANIFEST)), /no template at/],
    [
      'a torn manifest',
      (t) => fs.writeFileSync(path.join(t, TEMPLATE_MANIFEST), '{"pgl'),
      /unreadable manifest/,
    ],
  ];
  for (const [what, damage, reason] of cases) {
    const t = copyOfTemplate();
    damage(t);
    const dir = path.join(tmpDir('pglite-refused'), 'hub-db');
    fs.mkdirSync(dir);
    const res = seedFromTemplate(dir, t);
    assert.equal(res.seeded, false, what);
    assert.match(res.seeded ? '' : res.reason, reason, what);
    assert.deepEqual(fs.readdirSync(dir), [], `${what}: the directory is left empty`);
    assert.ok(!fs.existsSync(`${dir}.seeding`), `${what}: no staging copy left behind`);
  }
});

test('with a damaged template the first start falls back to initdb and the hub works', async () => {
  const t = copyOfTemplate();
  fs.appendFileSync(path.join(t, 'base/1/1259'), 'x');
  const dir = path.join(tmpDir('pglite-fallback'), 'hub-db');
  const db = await openPglite(dir, 'ledger', { template: t });
  try {
    assert.equal(db.origin, 'initdb');
    assert.ok(fs.existsSync(path.join(dir, PGLITE_READY_MARKER)));
    await migrate(db);
    assert.equal((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
  } finally {
    await db.close();
  }
});

test('popkit hub on PGlite takes its template from POPKIT_HUB_PGLITE_TEMPLATE', async () => {
  const dataDir = tmpDir('hub-template');
  const hub = await startHub({ dataDir, databaseUrl: null, env: { POPKIT_HUB_PGLITE_TEMPLATE: template } });
  try {
    assert.equal((hub.db as { origin?: string }).origin, 'template');
    const res = await fetch(`${hub.httpUrl}/healthz`);
    assert.equal(res.status, 200);
  } finally {
    await hub.stop();
  }
});
