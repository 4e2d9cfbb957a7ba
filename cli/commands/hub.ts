// popkit hub: the regional hub worker (MQTT ingest → PostgreSQL ledger, catalog publisher, HTTP API).
import { parseArgs } from 'node:util';
import { runHub } from '../../services/hub/main.ts';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(
      'usage: popkit hub\n\nconfigured by environment: POPKIT_HUB_BROKER_URL, DATABASE_URL (unset: embedded),\n' +
        'POPKIT_HUB_HTTP_PORT, POPKIT_HUB_ADMIN_TOKEN, POPKIT_DATA_DIR (see docs/scaling.md)\n',
    );
    return 0;
  }
  return runHub();
}
