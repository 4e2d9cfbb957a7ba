// The popkit command table: the names and summaries in cli/commands/registry.ts, each with its loader.
// Each command lives in cli/commands/<name>.ts and is imported only when it runs, so that
// `popkit status` never loads GStreamer or a native GPIO module.
import { ConfigError } from '../core/config.ts';
import { isKitError } from '../core/errors.ts';
import { type CommandName, COMMANDS as NAMED } from './commands/registry.ts';

export type CommandMain = (argv: string[]) => Promise<number>;

interface CommandEntry {
  summary: string;
  load: () => Promise<{ run: CommandMain }>;
}

/** Each command's module, imported only when that command runs. */
const LOADERS: Record<CommandName, () => Promise<{ run: CommandMain }>> = {
  up: () => import('./commands/up.ts'),
  checkout: () => import('./commands/checkout.ts'),
  sync: () => import('./commands/sync.ts'),
  kit: () => import('./commands/kit.ts'),
  hub: () => import('./commands/hub.ts'),
  power: () => import('./commands/power.ts'),
  kitd: () => import('./commands/kitd.ts'),
  preflight: () => import('./commands/preflight.ts'),
  config: () => import('./commands/config.ts'),
  status: () => import('./commands/status.ts'),
  media: () => import('./commands/media.ts'),
  catalog: () => import('./commands/catalog.ts'),
  terminal: () => import('./commands/terminal.ts'),
  loyalty: () => import('./commands/loyalty.ts'),
  report: () => import('./commands/report.ts'),
  fleet: () => import('./commands/fleet.ts'),
};

export const COMMANDS: Record<string, CommandEntry> = Object.fromEntries(
  (Object.keys(NAMED) as CommandName[]).map((name) => [name, { ...NAMED[name], load: LOADERS[name] }]),
);

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
