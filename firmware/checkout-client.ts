// kitd's (and pre-flight's) view of checkout over its HTTP API: status (event state, sync backlog
// and link), event start/stop with the admin token, and the catalog.
import fs from 'node:fs';
import path from 'node:path';
import { KitError, toErrorCode } from '../core/errors.ts';

export interface CheckoutStatus {
  kitId?: string;
  board?: string;
  event?: { live: boolean; eventId: string | null; startedAt: string | null };
  sync?: { link?: string; backlog?: { orders?: number; [k: string]: unknown }; [k: string]: unknown };
  power?: unknown;
  [k: string]: unknown;
}

/** POPKIT_ADMIN_TOKEN, else `<dataDir>/keys/admin.token`, else undefined (buttons then cannot start events). */
export function readAdminToken(dataDir: string, fromEnv?: string): string | undefined {
  if (fromEnv) return fromEnv;
  try {
    return fs.readFileSync(path.join(dataDir, 'keys', 'admin.token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export class CheckoutClient {
  constructor(
    readonly baseUrl: string,
    private readonly adminToken: () => string | undefined,
    private readonly timeoutMs = 3000,
  ) {}

  async status(): Promise<CheckoutStatus> {
    return (await this.json('GET', '/v1/status')) as CheckoutStatus;
  }

  async healthz(): Promise<{ ok: boolean; status: number; body: unknown }> {
    const res = await this.raw('GET', '/healthz');
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

  async raw(method: string, p: string, body?: unknown, admin = false): Promise<Response> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (admin) {
      const token = this.adminToken();
      if (!token)
        throw new KitError('UNAUTHORIZED', 'no admin token (POPKIT_ADMIN_TOKEN or keys/admin.token)');
      headers['authorization'] = `Bearer ${token}`;
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
