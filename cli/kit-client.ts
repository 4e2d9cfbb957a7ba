// How CLI commands reach a running kit: the one checkout client (core/checkout-client.ts) at the kit's
// HTTP API on this machine, the admin token from the environment or the data dir (where checkout
// generated it on first boot). Answers come back as status and parsed body, errors of any status
// included, so each command words its own message.
import { CheckoutClient, readAdminToken } from '../core/checkout-client.ts';
import { BaseConfig, loadConfig, resolveDataDir } from '../core/config.ts';

export interface KitResponse {
  status: number;
  body: unknown;
}

export function kitApi(url?: string, env: NodeJS.ProcessEnv = process.env) {
  const base = (url ?? `http://127.0.0.1:${env['POPKIT_HTTP_PORT'] ?? '8080'}`).replace(/\/$/, '');
  // the data dir is looked up only when a staff command needs the token
  const adminToken = () =>
    readAdminToken(resolveDataDir(loadConfig(BaseConfig, env)), env['POPKIT_ADMIN_TOKEN']);
  const client = new CheckoutClient(base, adminToken, 10_000);
  return {
    base,
    async request(
      method: string,
      p: string,
      body?: unknown,
      /** `admin`: the admin token is required; `'if-known'`: sent when there is one */
      opts: { admin?: boolean | 'if-known' } = {},
    ): Promise<KitResponse> {
      const res = await client.raw(method, p, body, opts.admin ?? false);
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: res.status, body: parsed };
    },
  };
}
