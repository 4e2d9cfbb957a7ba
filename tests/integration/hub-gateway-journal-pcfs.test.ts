// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// The sandbox gateway's charge journal (services/hub/gateway.ts) stands for a provider's own records: a
// charge the hub was told of must still be known after a power cut, or a retry under the same
// idempotency key would charge again. On pcfs (tests/support/pcfs.ts) every line appended before the
// cut is there after it; a torn last line is skipped and the next charge starts a line of its own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { SandboxGateway } from '../../services/hub/gateway.ts';
import { tempDir } from '../support/checkout.ts';
import { mountPcfs } from '../support/pcfs.ts';

const mountPoints: string[] = [];
after(() => {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  for (const m of mountPoints) if (mounts.includes(` ${m} fuse`)) spawnSync('fusermount', ['-uz', m]);
});

const charge = (g: SandboxGateway, i: number) =>
  g.exchange({
    idempotencyKey: `kit-1:o${i}`,
    token: `tok_sandbox_ok_${i}`,
    amountCents: 100 + i,
    currency: 'EUR',
  });

test('every charge journalled before a power cut is known after it: a repeat is no second charge', async () => {
  const root = tempDir('popkit-journal-pcfs-');
  const mnt = path.join(root, 'mnt');
  mountPoints.push(mnt);
  let fsys = await mountPcfs(path.join(root, 'backing'), mnt);
  const journal = path.join(mnt, 'hub', 'sandbox-charges.jsonl');
  fs.mkdirSync(path.dirname(journal));
  const g = new SandboxGateway(journal);
  const verdicts = [];
  for (let i = 0; i < 25; i++) verdicts.push(await charge(g, i));
  const cut = await fsys.cut();
  assert.equal(cut.cut, true);
  assert.ok(cut.fsyncs >= 25, `one fsync per charge at least: ${JSON.stringify(cut)}`);

  // a torn last line, as a cut in the middle of an append leaves it
  fs.appendFileSync(path.join(root, 'backing', 'hub', 'sandbox-charges.jsonl'), '{"key":"kit-1:o9');
  fsys = await mountPcfs(path.join(root, 'backing'), mnt);
  try {
    const again = new SandboxGateway(journal);
    assert.equal(again.chargeCount, 25);
    for (let i = 0; i < 25; i++) assert.deepEqual(await charge(again, i), verdicts[i]);
    assert.equal(again.chargeCount, 25, 'the repeats are no new charges');
    await charge(again, 99);
    const lines = fs.readFileSync(journal, 'utf8').split('\n').filter(Boolean);
    assert.equal(JSON.parse(lines[lines.length - 1]!).key, 'kit-1:o99', 'the new charge is a whole line');
    assert.equal(new SandboxGateway(journal).chargeCount, 26);
  } finally {
    await fsys.unmount();
  }
});
