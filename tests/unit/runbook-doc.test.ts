// docs/runbook.md is what a creator reads at the table: its lights, buttons and timings must be the
// ones the code uses, or a red light at a drop means something else than the page says.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_BUTTON_OPTIONS, parseButtonMap } from '../../firmware/buttons.ts';
import { KitdOwnConfig } from '../../firmware/config.ts';
import { IDENTIFY_MS, ledsFor } from '../../firmware/led-patterns.ts';

const doc = fs.readFileSync(path.join(import.meta.dirname, '../../docs/runbook.md'), 'utf8');
const rows = doc
  .split('\n')
  .filter((l) => l.startsWith('|') && !/^\|\s*-/.test(l))
  .map((l) =>
    l
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim()),
  );
const quiet = { fault: false, degraded: false, offlineQueueing: false };

test('the power-on table names the green pattern the code plays for each kit state', () => {
  for (const state of ['booting', 'preflight', 'ready', 'live', 'draining', 'off']) {
    const row = rows.find((r) => r[1] === state);
    assert.ok(row, `docs/runbook.md has a row for ${state}`);
    assert.equal(row[0], `\`${ledsFor({ state, ...quiet }).green}\``, `green for ${state}`);
  }
});

test('the red-light table names the patterns the code plays for fault and degraded', () => {
  const red = (overlay: string) => rows.find((r) => r[1]?.startsWith(overlay))?.[0];
  assert.equal(red('fault'), `\`${ledsFor({ state: 'live', ...quiet, fault: true }).red}\``);
  assert.equal(red('degraded'), `\`${ledsFor({ state: 'live', ...quiet, degraded: true }).red}\``);
  // amber: red mirrors green while orders wait for the hub
  assert.equal(ledsFor({ state: 'live', ...quiet, offlineQueueing: true }).red, 'mirror');
  assert.equal(red('offline queueing'), 'same rhythm as green (amber)');
  // a fault outranks degraded, as the page says
  assert.equal(ledsFor({ state: 'live', fault: true, degraded: true, offlineQueueing: true }).red, 'flicker');
  assert.match(doc, /A fault outranks degraded, which outranks amber/);
});

test('the buttons and timings the page describes are the defaults', () => {
  const def = (KitdOwnConfig.properties.POPKIT_BUTTONS as { default: string }).default;
  const map = parseButtonMap(def);
  assert.equal(map.get('a.long'), 'toggle-event', 'long press on A starts or stops the event');
  assert.equal(map.get('a.short'), 'mark-moment', 'short press on A marks a moment');
  assert.equal(map.get('a.double'), 'identify', 'double press on A identifies');
  assert.equal(map.get('b.long'), 'safe-shutdown', 'long press on B shuts down');
  assert.match(doc, new RegExp(`long press \\(${DEFAULT_BUTTON_OPTIONS.longMs / 1000} s\\)`));
  assert.match(doc, new RegExp(`for ${IDENTIFY_MS / 1000} s`));
});
