// docs/configuration.md is what `popkit config --markdown` prints, and covers CONTRACT.md's variables and
// every POPKIT_* name the code reads.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { configMarkdown } from '../../cli/commands/config.ts';
import { ROOT } from '../support/checkout.ts';

const doc = fs.readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8');

test('docs/configuration.md is the generated reference (run `npx popkit config --markdown > docs/configuration.md`)', () => {
  assert.equal(doc, configMarkdown());
});

test("CONTRACT.md's variables are all in the schemas", () => {
  for (const name of [
    'POPKIT_KIT_ID',
    'POPKIT_BOARD',
    'POPKIT_DATA_DIR',
    'POPKIT_HTTP_PORT',
    'POPKIT_HUB_URL',
    'POPKIT_ADMIN_TOKEN',
    'DATABASE_URL',
    'POPKIT_HUB_HTTP_PORT',
  ]) {
    assert.ok(doc.includes(`| \`${name}\` |`), name);
  }
});

test('every POPKIT_* variable the code reads is documented (and so validated at start)', () => {
  const src = execFileSync(
    'grep',
    ['-rhoE', 'POPKIT_[A-Z0-9_]+', 'core', 'services', 'firmware', 'hardware', 'cli', 'bin'],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  // name prefixes used to build names are not variables
  const used = new Set(src.split('\n').filter((n) => n && !n.endsWith('_')));
  const missing = [...used].filter((n) => !doc.includes(`\`${n}\``));
  assert.deepEqual(missing, []);
});
