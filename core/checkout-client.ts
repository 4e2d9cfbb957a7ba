// The one HTTP client of a kit's checkout API, for the processes on the same kit that drive it (kitd,
// `popkit preflight`, the CLI): status (parsed with the /v1/status contract), event start/stop with
// the admin token, the catalog, and raw requests. Errors come back as coded KitErrors. /v1/status and
// /metrics need a credential: these processes run on the kit and send its admin token.
import { type KitStatusViewT, kitStatusView } from './contracts/kit-status.ts';
import { dataLayout } from './data-dir.ts';
import { KitError, toErrorCode } from './errors.ts';
import { readToken } from './secrets.ts';

/** POPKIT_ADMIN_TOKEN, else `<dataDir>/keys/admin.token`, else undefined (buttons then cannot start events). */
export function readAdminToken(dataDir: string, fromEnv?: string): string | undefined {
  return readToken(dataLayout(dataDir).adminToken, fromEnv);
}

export class CheckoutClient {
  constructor(
    readonly baseUrl: string,
    private readonly adminToken: () => string | undefined,
    private readonly timeoutMs = 3000,
  ) {}

  /** GET /v1/status; an answer of another shape is an INTERNAL error (the contract is broken), never a silent cast. */
  async status(): Promise<KitStatusViewT> {
    const body = await this.json('GET', '/v1/status', undefined, true);
    if (!kitStatusView.check(body)) {
      throw new KitError(
        'INTERNAL',
        `checkout GET /v1/status: unexpected shape (${kitStatusView.errors(body, 3).join('; ')})`,
      );
    }
    return body;
  }

  /** GET /healthz; with the admin token when there is one, so a 503 names its problems. */
  async healthz(): Promise<{ ok: boolean; status: number; body: unknown }> {
    const res = await this.raw('GET', '/healthz', undefined, 'if-known');
    return { ok: res.status === 200, status: res.status, body: await res.json().catch(() => null) };
  }

  async catalog(): Promise<{
    version?: number;
    items?: Array<Record<string, unknown>>;
    [k: string]: unknown;
  }> {
    return (await this.json('GET', '/v1/catalog')) as { items?: Array<Record<string, unknown>> };
  }

  async startEvent(eventId?: string): Promise<unknown> {
    return this.json('POST', '/v1/event/start', eventId ? { eventId } : {}, true);
  }

  async stopEvent(): Promise<unknown> {
    return this.json('POST', '/v1/event/stop', undefined, true);
  }

  /** `admin`: send the admin token (UNAUTHORIZED here when there is none); `'if-known'`: when there is one. */
  async raw(
    method: string,
    p: string,
    body?: unknown,
    admin: boolean | 'if-known' = false,
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (admin) {
      const token = this.adminToken();
      if (token) headers['authorization'] = `Bearer ${token}`;
      else if (admin === true)
        throw new KitError('UNAUTHORIZED', 'no admin token (POPKIT_ADMIN_TOKEN or keys/admin.token)');
    }
    try {
      return await fetch(this.baseUrl + p, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new KitError('NOT_READY', `checkout at ${this.baseUrl} unreachable: ${(err as Error).message}`);
    }
  }

  private async json(method: string, p: string, body?: unknown, admin = false): Promise<unknown> {
    const res = await this.raw(method, p, body, admin);
    const data = (await res.json().catch(() => null)) as {
      error?: { code?: string; message?: string };
    } | null;
    if (!res.ok) {
      throw new KitError(
        toErrorCode(data?.error?.code, 'BAD_REQUEST'),
        `checkout ${method} ${p}: ${data?.error?.message ?? res.status}`,
      );
    }
    return data;
  }
}
