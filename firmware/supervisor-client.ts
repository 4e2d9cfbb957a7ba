// A client for the balena supervisor's HTTP API (BALENA_SUPERVISOR_ADDRESS, apikey query parameter),
// the endpoints kitd needs: identify (/v1/blink), device state (/v1/device), update check (/v1/update),
// restart-service (/v2/applications/:appId/restart-service), reboot and shutdown. The supervisor
// answers 423 to reboot, shutdown, restart and an update apply while an update lock is held; passing
// `force: true` overrides the lock, as balena documents, so kitd only forces where waiting is worse.
import { KitError } from '../core/errors.ts';
import { moduleLogger } from '../core/logger.ts';

export interface SupervisorDevice {
  api_port?: number;
  ip_address?: string;
  commit?: string;
  status?: string;
  download_progress?: number | null;
  os_version?: string;
  supervisor_version?: string;
  update_pending?: boolean;
  update_downloaded?: boolean;
  update_failed?: boolean;
  [k: string]: unknown;
}

export interface SupervisorClientOptions {
  address: string;
  apiKey: string;
  appId?: string;
  timeoutMs?: number;
}

export class SupervisorClient {
  private readonly log = moduleLogger('supervisor');
  private readonly base: string;

  constructor(private readonly opts: SupervisorClientOptions) {
    this.base = opts.address.replace(/\/+$/, '');
  }

  /** From BALENA_SUPERVISOR_ADDRESS / _API_KEY / BALENA_APP_ID; undefined off balena. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): SupervisorClient | undefined {
    const address = env['BALENA_SUPERVISOR_ADDRESS'];
    const apiKey = env['BALENA_SUPERVISOR_API_KEY'];
    if (!address || !apiKey) return undefined;
    const appId = env['BALENA_APP_ID'];
    return new SupervisorClient(appId ? { address, apiKey, appId } : { address, apiKey });
  }

  async ping(): Promise<boolean> {
    try {
      const res = await this.request('GET', '/ping', undefined, false);
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /** Blink the device's identification LED (the supervisor does it for 15 s). */
  async blink(): Promise<void> {
    await this.request('POST', '/v1/blink');
  }

  async device(): Promise<SupervisorDevice> {
    const res = await this.request('GET', '/v1/device');
    return (await res.json()) as SupervisorDevice;
  }

  /** Ask the supervisor to check for an update now; `force` applies it despite update locks. */
  async update(opts: { force?: boolean } = {}): Promise<void> {
    await this.request('POST', '/v1/update', { force: opts.force ?? false });
  }

  async restartService(serviceName: string, opts: { force?: boolean } = {}): Promise<void> {
    if (!this.opts.appId) throw new KitError('SUPERVISOR_UNAVAILABLE', 'BALENA_APP_ID is not set');
    if (!/^[a-z0-9][a-z0-9_-]*$/i.test(serviceName)) {
      throw new KitError('BAD_REQUEST', `'${serviceName}' is not a service name`);
    }
    await this.request('POST', `/v2/applications/${encodeURIComponent(this.opts.appId)}/restart-service`, {
      serviceName,
      force: opts.force ?? false,
    });
  }

  async reboot(opts: { force?: boolean } = {}): Promise<void> {
    await this.request('POST', '/v1/reboot', { force: opts.force ?? false });
  }

  async shutdown(opts: { force?: boolean } = {}): Promise<void> {
    await this.request('POST', '/v1/shutdown', { force: opts.force ?? false });
  }

  private async request(method: string, p: string, body?: unknown, withKey = true): Promise<Response> {
    const url = new URL(this.base + p);
    if (withKey) url.searchParams.set('apikey', this.opts.apiKey);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new KitError(
        'SUPERVISOR_UNAVAILABLE',
        `supervisor at ${this.base} unreachable: ${(err as Error).message}`,
      );
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    this.log.warn({ method, path: p, status: res.status }, 'supervisor refused');
    if (res.status === 423) {
      throw new KitError('LOCKED', `supervisor: updates are locked (${method} ${p}); force overrides`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new KitError('SUPERVISOR_AUTH', `supervisor rejected the API key (${res.status})`);
    }
    throw new KitError('SUPERVISOR_ERROR', `supervisor ${method} ${p}: ${res.status} ${text.slice(0, 200)}`);
  }
}
