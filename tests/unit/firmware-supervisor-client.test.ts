// The supervisor client against the balena supervisor's documented answers, canned per route: the
// server below has no logic of its own beyond a `locked` flag the test sets. Documented shapes from
// the supervisor API reference (balena-os/balena-supervisor docs/API.md; balena-io/docs
// pages/reference/supervisor/supervisor-api.md): every endpoint but /ping needs ?apikey=;
// POST /v1/blink → empty 200; GET /v1/device → the state object (example body below, verbatim);
// POST /v1/update → empty 204, body may carry {force}; POST /v1/reboot and /v1/shutdown → 202
// {"Data":"OK","Error":""}, "fail if there is an update lock" unless {"force": true};
// POST /v2/applications/:appId/restart-service {serviceName, force} → 200 "OK"; a held lock → 423.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { isKitError } from '../../core/errors.ts';
import { SupervisorClient } from '../../firmware/supervisor-client.ts';

const API_KEY = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const APP_ID = '2167';
/** The example answer of GET /v1/device in the supervisor API reference. */
const DOCUMENTED_DEVICE =
  '{"api_port":48484,"ip_address":"192.168.0.114 10.42.0.3","commit":"414e65cd378a69a96f403b75f14b40b55856f860","status":"Downloading","download_progress":84,"os_version":"Resin OS 1.0.4 (fido)","supervisor_version":"1.6.0","update_pending":true,"update_downloaded":false,"update_failed":false}';
const OK_202 = '{"Data":"OK","Error":""}';
const LOCKED_423 = '{"Data":"","Error":"Updates are locked"}';

interface Seen {
  method: string;
  path: string;
  apikey: string | null;
  contentType: string | undefined;
  body: unknown;
}

type Canned = [status: number, type: string, body: string];

/** The documented answer for a route; `locked` is the only state, and the test sets it. */
function documentedAnswer(method: string, route: string, body: unknown, locked: boolean): Canned {
  const force = (body as { force?: unknown } | undefined)?.force === true;
  const refused: Canned = [423, 'application/json', LOCKED_423];
  switch (`${method} ${route}`) {
    case 'POST /v1/blink':
      return [200, 'text/plain', ''];
    case 'GET /v1/device':
      return [200, 'application/json', DOCUMENTED_DEVICE];
    case 'POST /v1/update':
      return [204, 'text/plain', ''];
    case 'POST /v1/reboot':
    case 'POST /v1/shutdown':
      return locked && !force ? refused : [202, 'application/json', OK_202];
    case `POST /v2/applications/${APP_ID}/restart-service`:
      return locked && !force ? refused : [200, 'text/plain', 'OK'];
    default:
      return [404, 'text/plain', 'Not Found'];
  }
}

describe('supervisor client against the documented supervisor API', () => {
  let server: http.Server;
  let address = '';
  let locked = false;
  let override: Canned | undefined;
  const seen: Seen[] = [];
  const client = () => new SupervisorClient({ address, apiKey: API_KEY, appId: APP_ID, timeoutMs: 2000 });

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://supervisor');
        const raw = Buffer.concat(chunks).toString('utf8');
        const body: unknown = raw ? JSON.parse(raw) : undefined;
        seen.push({
          method: req.method ?? '',
          path: url.pathname,
          apikey: url.searchParams.get('apikey'),
          contentType: req.headers['content-type'],
          body,
        });
        let answer: Canned;
        if (override) answer = override;
        else if (url.pathname === '/ping') answer = [200, 'text/plain', 'OK'];
        else if (url.searchParams.get('apikey') !== API_KEY) answer = [401, 'text/plain', 'Unauthorized'];
        else answer = documentedAnswer(req.method ?? '', url.pathname, body, locked);
        res.writeHead(answer[0], { 'content-type': answer[1] });
        res.end(answer[2]);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    address = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });
  beforeEach(() => {
    locked = false;
    override = undefined;
    seen.length = 0;
  });

  test('fromEnv reads the BALENA_ variables, and is undefined off balena', () => {
    assert.equal(SupervisorClient.fromEnv({}), undefined);
    assert.equal(
      SupervisorClient.fromEnv({ BALENA_SUPERVISOR_ADDRESS: 'http://127.0.0.1:48484' }),
      undefined,
    );
    assert.ok(
      SupervisorClient.fromEnv({ BALENA_SUPERVISOR_ADDRESS: address, BALENA_SUPERVISOR_API_KEY: API_KEY }),
    );
  });

  test('/ping goes without the key; every other call carries ?apikey=', async () => {
    const c = client();
    assert.equal(await c.ping(), true);
    await c.blink();
    await c.device();
    await c.update();
    await c.reboot();
    await c.shutdown();
    await c.restartService('media');
    assert.deepEqual(
      seen.map((s) => [s.method, s.path, s.apikey]),
      [
        ['GET', '/ping', null],
        ['POST', '/v1/blink', API_KEY],
        ['GET', '/v1/device', API_KEY],
        ['POST', '/v1/update', API_KEY],
        ['POST', '/v1/reboot', API_KEY],
        ['POST', '/v1/shutdown', API_KEY],
        ['POST', `/v2/applications/${APP_ID}/restart-service`, API_KEY],
      ],
    );
  });

  test('GET /v1/device: the documented state object comes back as it is', async () => {
    const d = await client().device();
    assert.deepEqual(d, JSON.parse(DOCUMENTED_DEVICE));
    assert.equal(d.update_pending, true);
    assert.equal(d.download_progress, 84);
  });

  test('POST /v1/update: the empty 204 is success; the body is JSON {force}', async () => {
    await client().update();
    await client().update({ force: true });
    assert.deepEqual(
      seen.map((s) => [s.contentType, s.body]),
      [
        ['application/json', { force: false }],
        ['application/json', { force: true }],
      ],
    );
  });

  test('reboot, shutdown and restart-service: 423 under a lock is LOCKED; force:true is sent and accepted', async () => {
    locked = true;
    const c = client();
    const isLocked = (e: unknown) => isKitError(e) && e.code === 'LOCKED' && e.status === 423;
    await assert.rejects(c.reboot(), isLocked);
    await assert.rejects(c.shutdown(), isLocked);
    await assert.rejects(c.restartService('media'), isLocked);
    await c.reboot({ force: true });
    await c.shutdown({ force: true });
    await c.restartService('media', { force: true });
    assert.deepEqual(
      seen.map((s) => s.body),
      [
        { force: false },
        { force: false },
        { serviceName: 'media', force: false },
        { force: true },
        { force: true },
        { serviceName: 'media', force: true },
      ],
    );
  });

  test('a rejected key (401) is SUPERVISOR_AUTH', async () => {
    const bad = new SupervisorClient({ address, apiKey: 'wrong', appId: APP_ID });
    await assert.rejects(bad.device(), (e: unknown) => isKitError(e) && e.code === 'SUPERVISOR_AUTH');
    await assert.rejects(bad.reboot(), (e: unknown) => isKitError(e) && e.code === 'SUPERVISOR_AUTH');
    assert.equal(seen[0]?.apikey, 'wrong');
  });

  test('any other refusal is SUPERVISOR_ERROR with the status; an unreachable supervisor is SUPERVISOR_UNAVAILABLE', async () => {
    override = [500, 'text/plain', 'Internal Server Error'];
    await assert.rejects(
      client().reboot(),
      (e: unknown) => isKitError(e) && e.code === 'SUPERVISOR_ERROR' && /500/.test(e.message),
    );
    assert.equal(await client().ping(), false);
    const gone = new SupervisorClient({ address: 'http://127.0.0.1:1', apiKey: 'k', timeoutMs: 500 });
    assert.equal(await gone.ping(), false);
    await assert.rejects(gone.reboot(), (e: unknown) => isKitError(e) && e.code === 'SUPERVISOR_UNAVAILABLE');
  });

  test('bad input is refused before any request', async () => {
    await assert.rejects(
      client().restartService('../etc'),
      (e: unknown) => isKitError(e) && e.code === 'BAD_REQUEST',
    );
    const noApp = new SupervisorClient({ address, apiKey: API_KEY });
    await assert.rejects(
      noApp.restartService('media'),
      (e: unknown) => isKitError(e) && e.code === 'SUPERVISOR_UNAVAILABLE',
    );
    assert.equal(seen.length, 0);
  });
});
