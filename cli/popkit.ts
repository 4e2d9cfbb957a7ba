// The popkit command table. Each command lives in cli/commands/<name>.ts and is imported only when
// it runs, so that `popkit status` never loads GStreamer or a native GPIO module.
import { ConfigError } from '../core/config.ts';
import { isKitError } from '../core/errors.ts';

export type CommandMain = (argv: string[]) => Promise<number>;

interface CommandEntry {
  summary: string;
  load: () => Promise<{ run: CommandMain }>;
}

export const COMMANDS: Record<string, CommandEntry> = {
  up: {
    summary: 'the whole kit on this machine (sim hardware, embedded hub)',
    load: () => import('./commands/up.ts'),
  },
  checkout: { summary: 'the checkout API alone', load: () => import('./commands/checkout.ts') },
  sync: { summary: 'store-and-forward of orders to the hub', load: () => import('./commands/sync.ts') },
  hub: {
    summary: 'the regional hub worker (ledger, catalogs, API)',
    load: () => import('./commands/hub.ts'),
  },
  power: {
    summary: 'power read --driver D: read a charge controller or monitor',
    load: () => import('./commands/power.ts'),
  },
  kitd: { summary: 'control plane: LEDs, buttons, power', load: () => import('./commands/kitd.ts') },
  preflight: { summary: 'pre-flight checklist [--json]', load: () => import('./commands/preflight.ts') },
  config: {
    summary: 'every environment variable, its default and meaning [--markdown]',
    load: () => import('./commands/config.ts'),
  },
  status: {
    summary: 'one screen: state, LEDs, power, health, backlog, stream',
    load: () => import('./commands/status.ts'),
  },
  media: {
    summary: 'the media service alone (HLS, ladder, watchdog)',
    load: () => import('./commands/media.ts'),
  },
  catalog: {
    summary: 'catalog load FILE: load a catalog JSON into a running kit',
    load: () => import('./commands/catalog.ts'),
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: popkit <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`popkit: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    const mod = await entry.load();
    return await mod.run(rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`popkit ${name}: config: ${p}\n`);
      return 78; // EX_CONFIG
    }
    if (isKitError(err)) {
      process.stderr.write(`popkit ${name}: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
