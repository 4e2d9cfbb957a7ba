// The sandbox gateway's charge journal (POPKIT_GATEWAY_SANDBOX_JOURNAL): its charges outlive the process
// that made them, so a hub restarted between a charge and its ledger commit re-exchanges the same key
// and gets the same charge back, and a test can count charges outside the hub's memory.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { type JournalLine, SandboxGateway } from '../../services/hub/gateway.ts';
import { tmpDir } from '../support/hub-link.ts';

const read = (f: string) =>
  fs
    .readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as JournalLine);

test('a restarted sandbox gateway knows its charges: a repeated key is no second charge', async () => {
  const journal = path.join(tmpDir('gw-journal'), 'charges.jsonl');
  const req = { idempotencyKey: 'kit-1:o-1', token: 'tok_x', amountCents: 2500, currency: 'EUR' };
  const first = await new SandboxGateway(journal).exchange(req);
  assert.equal(first.outcome, 'approved');
  // the hub process died; a new one (new gateway object, same journal) sees the order again
  const restarted = new SandboxGateway(journal);
  assert.equal(restarted.chargeCount, 1);
  assert.deepEqual(await restarted.exchange(req), first);
  const declined = await restarted.exchange({
    ...req,
    idempotencyKey: 'kit-1:o-2',
    token: 'tok_decline_do_not_honor',
  });
  assert.deepEqual(declined, { outcome: 'declined', reason: 'do_not_honor' });
  // probes are no charges and leave no line
  await restarted.exchange({ ...req, idempotencyKey: 'probe', token: restarted.testToken });
  const lines = read(journal);
  assert.deepEqual(
    lines.map((l) => [l.key, l.charge, l.amountCents]),
    [
      ['kit-1:o-1', true, 2500],
      ['kit-1:o-1', false, 2500],
      ['kit-1:o-2', true, 2500],
    ],
  );
  // a line torn by a crash mid-append is no charge and breaks nothing
  fs.appendFileSync(journal, '{"key":"kit-1:o-3","cha');
  const again = new SandboxGateway(journal);
  assert.equal(again.chargeCount, 2);
  await again.exchange({ ...req, idempotencyKey: 'kit-1:o-4' });
  assert.equal(new SandboxGateway(journal).chargeCount, 3, 'a charge after a torn line is kept');
});

test('without a journal the sandbox keeps charges in memory only (and writes nothing)', async () => {
  const gw = new SandboxGateway();
  const req = { idempotencyKey: 'k', token: 't', amountCents: 1, currency: 'EUR' };
  await gw.exchange(req);
  await gw.exchange(req);
  assert.equal(gw.chargeCount, 1);
  assert.equal(gw.exchangeCalls, 2);
  assert.equal(new SandboxGateway().chargeCount, 0);
});
