// How CLI commands reach a running kit: its HTTP API on this machine, the admin token from the
// environment or the data dir (where checkout generated it on first boot).
import { BaseConfig, loadConfig, resolveDataDir } from '../core/config.ts';
import { dataLayout } from '../core/data-dir.ts';
import { KitError } from '../core/errors.ts';
import { readToken } from '../core/secrets.ts';

export interface KitResponse {
  status: number;
  body: unknown;
}

export function kitApi(url?: string, env: NodeJS.ProcessEnv = process.env) {
  const base = (url ?? `http://127.0.0.1:${env['POPKIT_HTTP_PORT'] ?? '8080'}`).replace(/\/$/, '');
  const adminToken = (): string => {
    const fromEnv = env['POPKIT_ADMIN_TOKEN'];
    if (fromEnv) return fromEnv;
    const dataDir = resolveDataDir(loadConfig(BaseConfig, env));
    const token = readToken(dataLayout(dataDir).adminToken);
    if (token) return token;
    throw new KitError('UNAUTHORIZED', `no admin token: set POPKIT_ADMIN_TOKEN or run where ${dataDir} is`);
  };
  return {
    base,
    async request(
      method: string,
      p: string,
      body?: unknown,
      opts: { admin?: boolean } = {},
    ): Promise<KitResponse> {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (opts.admin) headers['authorization'] = `Bearer ${adminToken()}`;
      let res: Response;
      try {
        res = await fetch(`${base}${p}`, {
          method,
          headers,
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(10_000),
        });
      } catch (err) {
        throw new KitError('NOT_READY', `no kit answering at ${base} (${(err as Error).message}): is it up?`);
      }
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: res.status, body: parsed };
    },
  };
}
