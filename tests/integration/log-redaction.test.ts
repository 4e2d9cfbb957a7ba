// The log never carries a payment token: the real logger (core/logger.ts) in a child process under
// NODE_ENV=test with logging ON, and a real `popkit checkout` taking card orders at info level. Each
// capture has a positive control: what is logged on purpose IS in it, so an empty or broken capture
// cannot pass for a clean one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { kitEnv, ROOT, smallCatalog, spawnCheckout, tempDir } from '../support/checkout.ts';
import { freePort, waitUntil } from '../support/net.ts';

const SECRET = 'tok_live_LOGSECRETquux';

/** One logger line from a child process: `fields` logged with message `msg` by moduleLogger('t'). */
function logInChild(fields: Record<string, unknown>, msg: string): string {
  const script = `import { moduleLogger } from ${JSON.stringify(path.join(ROOT, 'core/logger.ts'))};
moduleLogger('t').info(${JSON.stringify(fields)}, ${JSON.stringify(msg)});`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'], NODE_ENV: 'test', POPKIT_LOG_LEVEL: 'info' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('the logger redacts token fields under NODE_ENV=test with logging on; the capture sees the rest', () => {
  const out = logInChild(
    {
      token: SECRET,
      payment: { method: 'token', token: SECRET },
      order: { token: SECRET },
      headers: { authorization: `Bearer ${SECRET}` },
      marker: 'PLANTED_MARKER_1',
    },
    'order with a token',
  );
  // positive control: the line is there, with what was logged on purpose
  assert.match(out, /PLANTED_MARKER_1/);
  assert.match(out, /order with a token/);
  assert.equal(out.match(/\[redacted\]/g)?.length, 4, out);
  assert.equal(out.indexOf('LOGSECRET'), -1, `a token reached the log: ${out}`);
  // and the same capture would show the secret where it is not a token field: the check can fail
  const leak = logInChild({ note: SECRET }, 'not a token field');
  assert.match(leak, /LOGSECRET/);
});

test('a checkout taking card orders at info level logs no token (and does log)', async () => {
  const dataDir = tempDir('popkit-logs-');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const { proc, output } = spawnCheckout(dataDir, port, 'info');
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  try {
    await waitUntil(
      async () => (await fetch(`${base}/healthz`).catch(() => null))?.status !== undefined,
      30_000,
      'checkout to listen',
    );
    const put = await fetch(`${base}/v1/catalog`, {
      method: 'PUT',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${kitEnv(dataDir)['POPKIT_ADMIN_TOKEN']}`,
      },
      body: JSON.stringify(smallCatalog({ A: 100 })),
    });
    assert.equal(put.status, 200);
    const post = (body: unknown) =>
      fetch(`${base}/v1/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    for (let i = 0; i < 5; i++) {
      const r = await post({ lines: [{ sku: 'A', qty: 1 }], payment: { method: 'token', token: SECRET } });
      assert.equal(r.status, 201);
    }
    // refused orders carrying the token: unknown SKU, unknown field, broken JSON around it
    assert.equal(
      (await post({ lines: [{ sku: 'NOPE', qty: 1 }], payment: { method: 'token', token: SECRET } })).status,
      400,
    );
    assert.equal(
      (await post({ lines: [{ sku: 'A', qty: 1 }], payment: { method: 'token', token: SECRET, x: SECRET } }))
        .status,
      400,
    );
    const broken = await fetch(`${base}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"payment":{"token":"${SECRET}"`,
    });
    assert.equal(broken.status, 400);
  } finally {
    proc.kill('SIGTERM');
    await exited;
  }
  // positive control: the line the checkout logs on purpose at info, with the port we gave it
  const out = output();
  const lines = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string; port?: number; level?: number });
  assert.ok(
    lines.some((l) => l.msg === 'checkout listening' && l.port === port),
    `the capture holds the checkout's own info line: ${out}`,
  );
  assert.equal(out.indexOf('LOGSECRET'), -1, `a plaintext token reached the log: ${out}`);
});
