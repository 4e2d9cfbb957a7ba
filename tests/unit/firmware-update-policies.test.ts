// The `immediate` and `when-idle` update policies, on UpdateControl with the real lock file (under a
// private POPKIT_HOST_ROOT) and the balena supervisor stand-in, which defers an update while the lock
// file exists, as the real supervisor does. "The supervisor's poll" below is its own update check
// (POST /v1/update without force), which applies a pending release only when no lock is held.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import type { UpdatePolicy } from '../../core/contracts/run-status.ts';
import { SupervisorClient } from '../../firmware/supervisor-client.ts';
import { UpdateControl } from '../../firmware/update-control.ts';
import { UpdateLock } from '../../firmware/update-lock.ts';
import { waitFor } from '../support/hub-link.ts';
import { type SupervisorStandIn, startSupervisorStandIn } from '../support/supervisor-stand-in.ts';

let root: string;
let standIn: SupervisorStandIn;
let lock: UpdateLock;

beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'popkit-policy-'));
  lock = new UpdateLock(18 * 3_600_000, { POPKIT_HOST_ROOT: root });
  standIn = await startSupervisorStandIn({ lockFile: lock.file });
  standIn.device['update_pending'] = true;
});
afterEach(async () => {
  await standIn.close();
  fs.rmSync(root, { recursive: true, force: true });
});

function control(policy: UpdatePolicy): { updates: UpdateControl; supervisor: SupervisorClient } {
  const supervisor = new SupervisorClient({ address: standIn.address, apiKey: standIn.apiKey });
  return {
    updates: new UpdateControl({ lock, supervisor, policy, deviceEveryMs: 0, now: Date.now }),
    supervisor,
  };
}

/** The supervisor's own update check; true when it applied the pending release. */
async function supervisorPoll(supervisor: SupervisorClient): Promise<boolean> {
  await supervisor.update({ force: false });
  return standIn.device['update_pending'] === false;
}

const kitdUpdateCalls = (pollsByTest: number) =>
  standIn.calls.filter((c) => c.path === '/v1/update').length - pollsByTest;

test('immediate: no lock even while an event is live with unsynced orders; the update lands mid-event', async () => {
  const { updates, supervisor } = control('immediate');
  updates.reconcile({ live: true, backlog: 7, shuttingDown: false });
  assert.equal(fs.existsSync(lock.file), false, 'immediate must never create the lock file');
  assert.equal(updates.view().held, false);
  assert.equal(updates.view().policy, 'immediate');
  assert.equal(await supervisorPoll(supervisor), true, 'the supervisor applies during the live event');
  assert.equal(standIn.device['commit'], 'next-release-commit');
});

test('when-idle: lock while live or unsynced, released when idle; the supervisor then applies on its own', async () => {
  const { updates, supervisor } = control('when-idle');
  let polls = 0;

  updates.reconcile({ live: true, backlog: 0, shuttingDown: false });
  assert.equal(fs.existsSync(lock.file), true);
  assert.equal(updates.view().reason, 'event-live');
  polls++;
  assert.equal(await supervisorPoll(supervisor), false, 'deferred while the event is live');

  updates.reconcile({ live: false, backlog: 3, shuttingDown: false });
  assert.equal(fs.existsSync(lock.file), true);
  assert.equal(updates.view().reason, 'unsynced-orders');
  polls++;
  assert.equal(await supervisorPoll(supervisor), false, 'deferred while orders are unsynced');

  updates.maybePollDevice();
  await waitFor(() => updates.pendingUpdate?.update_pending, 5000, 'device state');
  updates.reconcile({ live: false, backlog: 0, shuttingDown: false });
  assert.equal(fs.existsSync(lock.file), false, 'released once idle');
  assert.equal(updates.view().held, false);
  // when-idle leaves the apply to the supervisor's next poll: kitd itself never asks for it
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(kitdUpdateCalls(polls), 0, 'when-idle must not trigger the update itself');
  polls++;
  assert.equal(await supervisorPoll(supervisor), true, 'the supervisor applies at its next poll');
});

test('self-check: after-event, unlike when-idle, asks the supervisor to apply once idle', async () => {
  const { updates } = control('after-event');
  updates.reconcile({ live: true, backlog: 0, shuttingDown: false });
  assert.equal(fs.existsSync(lock.file), true);
  updates.maybePollDevice();
  await waitFor(() => updates.pendingUpdate?.update_pending, 5000, 'device state');
  updates.reconcile({ live: false, backlog: 0, shuttingDown: false });
  await waitFor(() => kitdUpdateCalls(0) === 1, 5000, 'after-event trigger');
  assert.equal(standIn.device['update_pending'], false);
});
