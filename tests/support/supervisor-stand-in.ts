// A stand-in for the balena supervisor's HTTP API (the one part of balena that cannot run here),
// speaking the documented shapes: apikey query parameter on every endpoint but /ping (401 without
// it), /v1/blink, /v1/device, /v1/update, /v1/reboot, /v1/shutdown and
// /v2/applications/:appId/restart-service; 423 while an update lock file exists unless the body
// says `force: true`, as the real supervisor does.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInCall {
  method: string;
  path: string;
  body: Record<string, unknown> | undefined;
  status: number;
}

export interface SupervisorStandIn {
  address: string;
  apiKey: string;
  appId: string;
  calls: StandInCall[];
  device: Record<string, unknown>;
  /** services the stand-in knows (restart of another is 404) */
  services: Set<string>;
  /** called on restart-service, e.g. to make a test's heartbeats resume */
  onRestart?: (service: string) => void;
  close(): Promise<void>;
}

export async function startSupervisorStandIn(opts: {
  lockFile: string;
  apiKey?: string;
  appId?: string;
}): Promise<SupervisorStandIn> {
  const apiKey = opts.apiKey ?? 'stand-in-key-0123456789';
  const appId = opts.appId ?? '1234567';
  const calls: StandInCall[] = [];
  const standIn: SupervisorStandIn = {
    address: '',
    apiKey,
    appId,
    calls,
    services: new Set(['kitd', 'checkout', 'sync', 'media', 'mosquitto']),
    device: {
      api_port: 48484,
      ip_address: '192.168.1.42',
      commit: '7c4e2a1f0d9b8e3c',
      status: 'Idle',
      download_progress: null,
      os_version: 'balenaOS 6.0.13',
      supervisor_version: '16.4.6',
      update_pending: false,
      update_downloaded: false,
      update_failed: false,
    },
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const locked = () => fs.existsSync(opts.lockFile);

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://stand-in');
      const send = (status: number, type: string, payload: string) => {
        calls.push({ method: req.method ?? '', path: url.pathname, body, status });
        res.writeHead(status, { 'content-type': type });
        res.end(payload);
      };
      let body: Record<string, unknown> | undefined;
      if (chunks.length > 0) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        } catch {
          return send(400, 'text/plain', 'Invalid JSON');
        }
      }
      const json = (status: number, v: unknown) => send(status, 'application/json', JSON.stringify(v));
      const force = body?.['force'] === true;

      if (url.pathname === '/ping' && req.method === 'GET') return send(200, 'text/plain', 'OK');
      if (url.searchParams.get('apikey') !== apiKey) return send(401, 'text/plain', 'Unauthorized');

      const route = `${req.method} ${url.pathname}`;
      if (route === 'POST /v1/blink') return send(200, 'text/plain', 'OK');
      if (route === 'GET /v1/device') return json(200, standIn.device);
      if (route === 'POST /v1/update') {
        if (standIn.device['update_pending'] && locked() && !force) {
          // the supervisor accepts the check; the lock only defers the apply
          return send(202, 'text/plain', '');
        }
        if (standIn.device['update_pending']) {
          standIn.device = {
            ...standIn.device,
            update_pending: false,
            status: 'Idle',
            commit: 'next-release-commit',
          };
        }
        return send(204, 'text/plain', '');
      }
      if (route === 'POST /v1/reboot' || route === 'POST /v1/shutdown') {
        if (locked() && !force) return json(423, { Data: '', Error: 'Updates are locked' });
        return json(202, { Data: 'OK', Error: '' });
      }
      const restart = /^POST \/v2\/applications\/([^/]+)\/restart-service$/.exec(route);
      if (restart) {
        if (restart[1] !== appId) return send(404, 'text/plain', 'Application not found');
        const name = body?.['serviceName'];
        if (typeof name !== 'string' || !standIn.services.has(name))
          return send(404, 'text/plain', 'Service not found');
        if (locked() && !force) return json(423, { status: 'failed', message: 'Updates are locked' });
        standIn.onRestart?.(name);
        return send(200, 'text/plain', 'OK');
      }
      return send(404, 'text/plain', 'Not found');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  standIn.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return standIn;
}
