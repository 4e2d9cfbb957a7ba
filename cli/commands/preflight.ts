// `popkit preflight [--json]`: the pre-flight checklist against a running kit; exit 0 only if all pass.
import { parseArgs } from 'node:util';
import { CheckoutClient, readAdminToken } from '../../core/checkout-client.ts';
import { loadConfig, resolveDataDir } from '../../core/config.ts';
import { KitdConfig } from '../../firmware/config.ts';
import { capacityWhFromProfile } from '../../firmware/power-policy.ts';
import { formatPreflight, runPreflight } from '../../firmware/preflight.ts';
import { detectBoard } from '../../hardware/boards/index.ts';

export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean' },
      'min-free-mb': { type: 'string' },
      'queue-wait-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: popkit preflight [--json] [--min-free-mb N] [--queue-wait-ms N]\n\n' +
        'Checks a running kit: edge node and catalog cache, payment exchange with the hub, queue fallback,\n' +
        'connectivity (and the hub over each link on its own), power plan, free storage, clock. Exit 0 only when every check passes.\n',
    );
    return 0;
  }
  const num = (v: string | undefined, name: string, def: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) {
      process.stderr.write(`popkit preflight: --${name} must be a non-negative number\n`);
      return Number.NaN;
    }
    return n;
  };
  const minFreeMb = num(values['min-free-mb'], 'min-free-mb', 256);
  const queueWaitMs = num(values['queue-wait-ms'], 'queue-wait-ms', 5000);
  if (Number.isNaN(minFreeMb) || Number.isNaN(queueWaitMs)) return 2;
  const cfg = loadConfig(KitdConfig, env);
  const dataDir = resolveDataDir(cfg);
  const board = detectBoard(env);
  const checkout = new CheckoutClient(
    (cfg.POPKIT_CHECKOUT_URL ?? `http://127.0.0.1:${cfg.POPKIT_HTTP_PORT}`).replace(/\/+$/, ''),
    () => readAdminToken(dataDir, cfg.POPKIT_ADMIN_TOKEN),
  );
  const capacityWh = cfg.POPKIT_BATTERY_WH ?? capacityWhFromProfile(board);
  const report = await runPreflight({
    checkout,
    hubHttpUrl: cfg.POPKIT_HUB_HTTP_URL.replace(/\/+$/, ''),
    hubAdminToken: cfg.POPKIT_HUB_ADMIN_TOKEN,
    dataDir,
    plannedEventMin: cfg.POPKIT_EVENT_PLANNED_MIN,
    lowSocPct: cfg.POPKIT_POWER_LOW_SOC,
    ...(capacityWh !== undefined ? { capacityWh } : {}),
    minFreeMb,
    queueWaitMs,
    catalogMaxMs: 250,
    maxClockSkewS: 5,
    redundancy: cfg.POPKIT_PREFLIGHT_REDUNDANCY,
    clockFloor: Date.UTC(2025, 0, 1),
  });
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatPreflight(report));
  return report.ok ? 0 : 1;
}
