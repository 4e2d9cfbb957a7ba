// Secret files are created 0600 in a 0700 keys dir, by checkout (admin.token, token.key) and by the hub
// (signing key, admin token, held-token key) — both through core/secrets.ts. The public half of the
// hub's signing key is the one file in there meant to be read by others (0644).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { dataLayout, hubDataLayout } from '../../core/data-dir.ts';
import { createCheckout } from '../../services/checkout/main.ts';
import { kitEnv, tempDir } from '../support/checkout.ts';
import { mosquitto, startHub, tmpDir } from '../support/hub-link.ts';

const mode = (file: string) => fs.statSync(file).mode & 0o777;
const octal = (m: number) => m.toString(8).padStart(4, '0');

function assertPrivate(dir: string, files: string[]) {
  assert.equal(octal(mode(dir)), octal(0o700), `${dir} is not 0700`);
  for (const f of files) {
    assert.ok(fs.existsSync(f), `${f} was not created`);
    assert.equal(octal(mode(f)), octal(0o600), `${path.basename(f)} is not 0600`);
  }
}

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('the self-check notices a world-readable file and an open keys dir', () => {
  const dir = path.join(tempDir('popkit-secret-selfcheck-'), 'keys');
  fs.mkdirSync(dir, { mode: 0o755 });
  const file = path.join(dir, 'leaky');
  fs.writeFileSync(file, 'x', { mode: 0o644 });
  assert.throws(() => assertPrivate(dir, [file]), /not 0700/);
  fs.chmodSync(dir, 0o700);
  assert.throws(() => assertPrivate(dir, [file]), /leaky is not 0600/);
});

test('checkout creates keys/admin.token and keys/token.key 0600 in a 0700 keys dir', async () => {
  const dataDir = tempDir('popkit-secrets-');
  const env = kitEnv(dataDir);
  // no token from the environment: checkout must generate (and protect) the file itself
  delete env['POPKIT_ADMIN_TOKEN'];
  const kit = await createCheckout(env);
  cleanups.push(() => kit.close());
  assert.equal(kit.adminTokenCreated, true);
  const layout = dataLayout(dataDir);
  assertPrivate(layout.keys, [layout.adminToken, layout.tokenKey]);
  assert.equal(fs.readFileSync(layout.adminToken, 'utf8').trim(), kit.adminToken);
  assert.equal(fs.readFileSync(layout.tokenKey).length, 32);
});

test('the hub creates its signing key, admin token and held-token key 0600 in a 0700 keys dir', async () => {
  const broker = await mosquitto();
  cleanups.push(() => broker.close());
  const dataDir = tmpDir('hub-secrets');
  // PGlite (no DATABASE_URL): this test is about the key files only
  const hub = await startHub({ dataDir, brokerUrl: broker.url, databaseUrl: null });
  cleanups.push(() => hub.stop());
  const layout = hubDataLayout(dataDir);
  assert.equal(hub.adminTokenGenerated, true);
  assertPrivate(layout.keys, [layout.signingKey, layout.adminToken, layout.heldTokenKey]);
  assert.equal(octal(mode(layout.signingPub)), octal(0o644));
});
