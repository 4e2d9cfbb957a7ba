// `popkit kitd`: the kit's control plane (firmware/). Env: see firmware/config.ts and docs/fleet.md.
import { parseArgs } from 'node:util';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: popkit kitd\n\nRuns the control plane: lifecycle, LEDs and buttons, health, power policy, watchdog,\n' +
        'balena update lock. Env: POPKIT_BOARD, POPKIT_DATA_DIR, POPKIT_LOCAL_BUS_URL, POPKIT_HTTP_PORT,\n' +
        'POPKIT_HUB_HTTP_URL, POPKIT_POWER_*, POPKIT_BUTTONS, POPKIT_UPDATE_POLICY (firmware/config.ts).\n',
    );
    return 0;
  }
  const { runKitd } = await import('../../firmware/main.ts');
  return runKitd(process.env);
}
