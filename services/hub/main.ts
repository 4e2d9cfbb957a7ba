// `popkit hub`: one hub worker, until SIGINT/SIGTERM.
import { BaseConfig, composeConfig, loadConfig, resolveDataDir } from '../../core/config.ts';
import { hubDataLayout } from '../../core/data-dir.ts';
import { announceAdminToken } from '../../core/secrets.ts';
import { HubConfig } from './config.ts';
import { HubService } from './hub-service.ts';

export async function runHub(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const cfg = loadConfig(composeConfig(BaseConfig, HubConfig), env);
  const hub = new HubService({ cfg, dataDir: resolveDataDir(cfg), httpLogger: true });
  await hub.start();
  process.stdout.write(`popkit hub: API on ${hub.httpUrl}, signing key ${hub.publicKeyFile}\n`);
  if (hub.adminTokenGenerated) {
    const file = hubDataLayout(hub.dataDir).adminToken;
    process.stdout.write(`popkit hub: ${announceAdminToken(hub.adminToken, file, env)}\n`);
  }
  if (hub.gateway?.sandbox)
    process.stdout.write('popkit hub: payment gateway is the SANDBOX (no money moves)\n');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await hub.stop();
  return 0;
}
