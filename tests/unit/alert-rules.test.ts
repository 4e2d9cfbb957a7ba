// deploy/hub/alerts.rules.yml against the hub itself: the file parses as Prometheus rule groups, every
// alert kind of core/contracts/alerts.ts has its rule, every expression names only metrics the hub's
// /metrics exposes (scraped from the hub's own health routes), and each rule's threshold is the default
// of the hub config key it names.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import Fastify from 'fastify';
import { parse } from 'yaml';
import { ALERT_KINDS } from '../../core/contracts/alerts.ts';
import type { KitFacts } from '../../services/hub/alerts.ts';
import { HubConfig } from '../../services/hub/config.ts';
import { healthRoutes, KIT_ALERT_GAUGES } from '../../services/hub/routes/health.ts';

const RULES = path.resolve(import.meta.dirname, '../../deploy/hub/alerts.rules.yml');

interface Rule {
  alert?: string;
  expr?: unknown;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** PromQL words that are not metric names: functions, aggregations, operators, modifiers. */
const PROMQL_WORDS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'group',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'increase',
  'rate',
  'irate',
  'delta',
  'idelta',
  'deriv',
  'absent',
  'absent_over_time',
  'changes',
  'resets',
  'time',
  'vector',
  'scalar',
  'clamp_min',
  'clamp_max',
  'max_over_time',
  'min_over_time',
  'avg_over_time',
  'last_over_time',
  'abs',
  'e',
  'inf',
  'nan',
]);

/** The metric names an expression reads: label matchers, groupings, ranges and strings removed. */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const out = new Set<string>();
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const w = m[0];
    if (!PROMQL_WORDS.has(w.toLowerCase())) out.add(w);
  }
  return [...out];
}

/** The hub's /metrics as a scrape sees it, with one kit reporting every per-kit value. */
async function exposedMetrics(): Promise<Set<string>> {
  const fact: KitFacts = {
    kitId: 'kit-1',
    eventId: 'ev',
    online: true,
    live: true,
    seenAgeS: 1,
    socPct: 50,
    powerLevel: 'normal',
    backlogAgeS: 0,
    declined: 0,
    rejected: 0,
    clockTrusted: true,
    clockReason: undefined,
    dropOpeningS: 60,
    dropOpensAt: new Date().toISOString(),
  };
  const app = Fastify();
  await app.register(healthRoutes, {
    adminToken: 'x'.repeat(32),
    ledger: {
      ping: async () => undefined,
      counters: { ordersNew: 0, ordersDuplicate: 0, deadLetters: 0, orderConflicts: 0 },
      heldTokenKey: { state: 'ok' },
    } as never,
    ingest: {
      connected: true,
      stats: {
        batches: 0,
        entries: 0,
        refused: {},
        acksSent: 0,
        dbRetries: 0,
        verdictsResent: 0,
        receipts: 0,
        seriesOpened: 0,
        seriesRefused: {},
      },
    },
    alerts: {
      lastFacts: [fact],
      openByKind: {},
      stats: {
        delivered: { mqtt: 0, webhook: 0 },
        failed: { mqtt: 0, webhook: 0 },
        gaveUp: { mqtt: 0, webhook: 0 },
      },
    },
  });
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  await app.close();
  assert.equal(res.statusCode, 200);
  const names = new Set<string>();
  for (const line of res.body.split('\n')) {
    const m = /^# TYPE (\S+) /.exec(line);
    if (m) names.add(m[1]!);
    const s = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{[^}]*\})? /.exec(line);
    if (s) names.add(s[1]!);
  }
  return names;
}

test('the rules file parses, covers every alert kind, and names only metrics the hub exposes', async () => {
  const doc = parse(fs.readFileSync(RULES, 'utf8')) as { groups?: { name?: string; rules?: Rule[] }[] };
  assert.ok(Array.isArray(doc.groups) && doc.groups.length > 0, 'groups');
  const rules = doc.groups.flatMap((g) => {
    assert.equal(typeof g.name, 'string');
    assert.ok(Array.isArray(g.rules));
    return g.rules;
  });
  const exposed = await exposedMetrics();
  for (const name of Object.keys(KIT_ALERT_GAUGES)) assert.ok(exposed.has(name), `/metrics shows ${name}`);
  const kinds = new Set<string>();
  for (const r of rules) {
    assert.match(r.alert ?? '', /^[A-Za-z][A-Za-z0-9]*$/, 'alert name');
    assert.equal(typeof r.expr, 'string', `${r.alert}: expr`);
    const expr = r.expr as string;
    const used = metricNames(expr);
    assert.ok(used.length > 0, `${r.alert} reads some metric`);
    for (const m of used) assert.ok(exposed.has(m), `${r.alert}: ${m} is not on the hub's /metrics`);
    assert.ok(r.annotations?.['summary'], `${r.alert}: summary`);
    const kind = r.labels?.['popkit_kind'];
    if (!kind) continue;
    assert.ok((ALERT_KINDS as readonly string[]).includes(kind), `${r.alert}: kind ${kind}`);
    kinds.add(kind);
    // the threshold is the default of the first config key the rule names
    const key = (r.annotations?.['config'] ?? '').split(/\s+/)[0] as keyof typeof HubConfig.properties;
    const schema = HubConfig.properties[key] as { default?: unknown } | undefined;
    assert.ok(schema, `${r.alert}: config key ${key}`);
    assert.ok(
      new RegExp(`[<>=]=?\\s*${String(schema.default)}(?![0-9])`).test(expr),
      `${r.alert}: threshold ${String(schema.default)} (${key}'s default) in ${expr}`,
    );
  }
  assert.deepEqual([...kinds].sort(), [...ALERT_KINDS].sort());
});

test('the metric name reader sees through matchers, groupings, ranges and strings', () => {
  assert.deepEqual(
    metricNames(
      'sum by (channel) (increase(foo_total{result="gave_up", x=~"a|b"}[15m])) > 0 and on(kit_id) bar',
    ),
    ['foo_total', 'bar'],
  );
  // a misspelt metric is caught
  assert.deepEqual(metricNames('max by (kit_id) (popkit_hub_kit_liv) == 1'), ['popkit_hub_kit_liv']);
});
