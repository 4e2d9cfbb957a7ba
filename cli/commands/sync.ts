// popkit sync: store-and-forward of the kit's outbox to the hub, signed catalogs back.
import { parseArgs } from 'node:util';
import { runSync } from '../../services/sync/main.ts';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(
      'usage: popkit sync\n\nconfigured by environment: POPKIT_HUB_URL, POPKIT_HUB_PUBLIC_KEY(_FILE),\n' +
        'POPKIT_HUB_USERNAME/PASSWORD, POPKIT_KIT_ID, POPKIT_DATA_DIR, POPKIT_EVENT_ID (see README)\n',
    );
    return 0;
  }
  return runSync();
}
