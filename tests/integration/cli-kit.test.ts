// `popkit catalog load` and `popkit status` as commands, against a running checkout: they go through
// the one checkout client (core/checkout-client.ts) with the admin token from the environment or the
// data dir, and a staff command without a token is refused before anything is sent.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ADMIN, BIN, kitEnv, smallCatalog, startCheckout, tempDir } from '../support/checkout.ts';

const run = promisify(execFile);

async function popkit(args: string[], env: NodeJS.ProcessEnv) {
  try {
    const r = await run(process.execPath, [BIN, ...args], { env, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('popkit catalog load and popkit status', () => {
  let kit: Awaited<ReturnType<typeof startCheckout>>;
  let url: string;
  const file = path.join(tempDir('popkit-cli-'), 'catalog.json');

  before(async () => {
    kit = await startCheckout();
    await kit.app.listen({ port: 0, host: '127.0.0.1' });
    const addr = kit.app.server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    fs.writeFileSync(file, JSON.stringify(smallCatalog({ A: 5, B: 7 }, 1, 'ev-cli')));
  });
  after(async () => {
    await kit.kit.close();
  });

  test('catalog load with the token from the environment; status shows it', async () => {
    const env = kitEnv(kit.dataDir);
    const load = await popkit(['catalog', 'load', file, '--url', url], env);
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout, /catalog ev-cli v1 loaded: 2 items/);
    const status = await popkit(['status', '--url', url], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /catalog: ev-cli v1 \(2 items, local\)/);
    const json = await popkit(['status', '--json', '--url', url], env);
    assert.equal(JSON.parse(json.stdout).catalog.eventId, 'ev-cli');
  });

  test('the token is read from the data dir when the environment has none', async () => {
    const dir = tempDir('popkit-cli-dir-');
    fs.mkdirSync(path.join(dir, 'keys'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'keys', 'admin.token'), `${ADMIN}\n`, { mode: 0o600 });
    const env = { ...kitEnv(dir), POPKIT_ADMIN_TOKEN: '' };
    fs.writeFileSync(file, JSON.stringify(smallCatalog({ A: 5 }, 2, 'ev-cli')));
    const load = await popkit(['catalog', 'load', file, '--url', url], env);
    assert.equal(load.code, 0, load.stderr);
    assert.match(load.stdout, /v2 loaded: 1 items/);
  });

  test('no token anywhere: refused with a coded error, the catalog unchanged', async () => {
    const env = { ...kitEnv(tempDir('popkit-cli-none-')), POPKIT_ADMIN_TOKEN: '' };
    // what the kit sells now (whatever an earlier test loaded, or nothing): the refused load keeps it
    const catalogNow = async () => {
      const status = await popkit(['status', '--json', '--url', url], kitEnv(kit.dataDir));
      const c = JSON.parse(status.stdout).catalog;
      return c ? `${c.eventId} v${c.version}` : null;
    };
    const before = await catalogNow();
    fs.writeFileSync(file, JSON.stringify(smallCatalog({ Z: 1 }, 9, 'ev-other')));
    const load = await popkit(['catalog', 'load', file, '--url', url], env);
    assert.notEqual(load.code, 0);
    assert.match(load.stderr, /UNAUTHORIZED|no admin token/);
    assert.equal(await catalogNow(), before);
    assert.notEqual(before, 'ev-other v9');
  });

  test('a wrong token is refused by the kit (401) and a missing file is a clear error', async () => {
    const env = { ...kitEnv(kit.dataDir), POPKIT_ADMIN_TOKEN: 'not-the-admin-token-xyz' };
    const load = await popkit(['catalog', 'load', file, '--url', url], env);
    assert.equal(load.code, 1);
    assert.match(load.stderr, /refused \(401 UNAUTHORIZED\)/);
    const missing = await popkit(['catalog', 'load', '/nonexistent.json', '--url', url], kitEnv(kit.dataDir));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read \/nonexistent.json/);
  });

  test('status without any token: the kit refuses (401) and the command says how to fix it', async () => {
    const env = { ...kitEnv(tempDir('popkit-cli-notoken-')), POPKIT_ADMIN_TOKEN: '' };
    const r = await popkit(['status', '--url', url], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /answered 401: set POPKIT_ADMIN_TOKEN/);
    assert.equal(r.stdout, '', 'nothing of the kit shown');
  });

  test('no kit answering: status says so and exits non-zero', async () => {
    const r = await popkit(['status', '--url', 'http://127.0.0.1:9'], kitEnv(kit.dataDir));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unreachable|NOT_READY/);
  });
});

describe('popkit terminal pair|list|revoke', () => {
  let kit: Awaited<ReturnType<typeof startCheckout>>;
  let url: string;
  before(async () => {
    kit = await startCheckout();
    await kit.app.listen({ port: 0, host: '127.0.0.1' });
    const addr = kit.app.server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  after(async () => {
    await kit.kit.close();
  });

  test('pair prints a code and a QR of the pairing link; the code works once; list and revoke', async () => {
    const env = kitEnv(kit.dataDir);
    const pair = await popkit(['terminal', 'pair', '--name', 'front till', '--url', url], env);
    assert.equal(pair.code, 0, pair.stderr);
    const m = /pairing code for "front till": ([A-Z2-9]{4})-([A-Z2-9]{4})/.exec(pair.stdout);
    assert.ok(m, pair.stdout);
    const code = `${m[1]}${m[2]}`;
    assert.ok(pair.stdout.includes(`${url}/#pair=${code}`), 'the pairing link');
    assert.match(pair.stdout, /[\u2580\u2584\u2588]/, 'a QR drawn in block characters');
    // --public-url: the link a phone on the venue network can open
    const pub = await popkit(
      ['terminal', 'pair', '--json', '--public-url', 'http://10.0.0.5:8080', '--url', url],
      env,
    );
    assert.equal(pub.code, 0, pub.stderr);
    assert.match(JSON.parse(pub.stdout).url, /^http:\/\/10\.0\.0\.5:8080\/#pair=[A-Z2-9]{8}$/);

    const redeem = (c: string) =>
      fetch(`${url}/v1/terminals/redeem`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ code: c }),
      });
    const first = await redeem(code);
    assert.equal(first.status, 201);
    const { id, token } = (await first.json()) as { id: string; token: string };
    assert.equal((await redeem(code)).status, 401, 'single use');

    const list = await popkit(['terminal', 'list', '--url', url], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${id}  active .*"front till"`));
    assert.match(list.stdout, /pairing "terminal" waiting until/);
    assert.ok(!list.stdout.includes(token), 'tokens are never listed');

    const status = () => fetch(`${url}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await status()).status, 200);
    const revoke = await popkit(['terminal', 'revoke', id, '--url', url], env);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match(revoke.stdout, new RegExp(`terminal ${id} \\("front till"\\) revoked at`));
    assert.equal((await status()).status, 401, 'a revoked terminal is refused');
    assert.match(
      (await popkit(['terminal', 'list', '--url', url], env)).stdout,
      new RegExp(`${id}  revoked `),
    );
  });

  test('without the admin token, or with bad arguments, nothing is paired', async () => {
    const none = { ...kitEnv(tempDir('popkit-cli-term-')), POPKIT_ADMIN_TOKEN: '' };
    const before = await popkit(['terminal', 'list', '--json', '--url', url], kitEnv(kit.dataDir));
    const r = await popkit(['terminal', 'pair', '--url', url], none);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /UNAUTHORIZED|no admin token/);
    const wrong = await popkit(['terminal', 'pair', '--url', url], {
      ...kitEnv(kit.dataDir),
      POPKIT_ADMIN_TOKEN: 'not-the-admin-token-xyz',
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused \(401 UNAUTHORIZED\)/);
    const hostile = await popkit(
      ['terminal', 'pair', '--name', 'till\u0007bell', '--url', url],
      kitEnv(kit.dataDir),
    );
    assert.equal(hostile.code, 1);
    assert.match(hostile.stderr, /refused \(400 VALIDATION\)/);
    const badId = await popkit(['terminal', 'revoke', '__proto__', '--url', url], kitEnv(kit.dataDir));
    assert.equal(badId.code, 1);
    assert.match(badId.stderr, /400 VALIDATION/);
    assert.equal((await popkit(['terminal', 'frobnicate', '--url', url], kitEnv(kit.dataDir))).code, 2);
    const after = await popkit(['terminal', 'list', '--json', '--url', url], kitEnv(kit.dataDir));
    assert.deepEqual(JSON.parse(after.stdout).pairings.length, JSON.parse(before.stdout).pairings.length);
  });
});
