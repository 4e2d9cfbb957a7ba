// popkit sync: store-and-forward of the kit's outbox to the hub, signed catalogs back. A kit flashed
// with only a one-time enrollment code enrolls itself here first (core/enroll-kit.ts).
import { parseArgs } from 'node:util';
import { BaseConfig, composeConfig, loadConfig, resolveDataDir, resolveKitId } from '../../core/config.ts';
import { EnrollConfig, firstBootCredentials } from '../../core/enroll-kit.ts';
import { moduleLogger } from '../../core/logger.ts';
import { SyncConfig } from '../../services/sync/config.ts';
import { runSync } from '../../services/sync/main.ts';

/** The environment sync runs with: the kit's kept or first-boot credentials filled in when not set by hand. */
export async function syncEnvironment(env: NodeJS.ProcessEnv = process.env): Promise<NodeJS.ProcessEnv> {
  const cfg = loadConfig(composeConfig(composeConfig(BaseConfig, SyncConfig), EnrollConfig), env);
  const log = moduleLogger('sync-enroll');
  const kitId = resolveKitId(cfg);
  const creds = await firstBootCredentials({
    dataDir: resolveDataDir(cfg),
    kitId,
    hubHttpUrl: cfg.POPKIT_HUB_HTTP_URL,
    code: cfg.POPKIT_ENROLL_CODE,
    username: cfg.POPKIT_HUB_USERNAME,
    onWait: (err, waitMs) =>
      log.warn({ err: err.message, waitMs }, 'enrollment: hub not reachable, retrying'),
  });
  if (!creds) return env;
  if (creds.kitId !== kitId)
    log.warn({ kept: creds.kitId, kitId }, 'the kept hub credentials are for another kit id');
  return { ...env, POPKIT_HUB_USERNAME: creds.username, POPKIT_HUB_PASSWORD: creds.password };
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(
      'usage: popkit sync\n\nconfigured by environment: POPKIT_HUB_URL, POPKIT_HUB_PUBLIC_KEY(_FILE),\n' +
        'POPKIT_HUB_USERNAME/PASSWORD (or POPKIT_ENROLL_CODE at first boot), POPKIT_KIT_ID,\n' +
        'POPKIT_DATA_DIR, POPKIT_EVENT_ID (see README)\n',
    );
    return 0;
  }
  return runSync(await syncEnvironment());
}
