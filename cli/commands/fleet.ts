// `popkit fleet provision`: per-kit identities for a vendor's fleet (docs/fleet.md#provisioning-with-dynamic-security).
// For each kit id: an ed25519 key pair and a token key made here, broker credentials from the hub's
// enrollment API (POST /v1/kits/enroll), and the balena device variables as JSON and as
// `balena env set` lines, plus a report. Every file is 0600 in a 0700 directory; nothing is overwritten.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { isKitError } from '../../core/errors.ts';
import { checkId, ENROLL_EVENTS_MAX } from '../../services/hub/dynsec.ts';

const USAGE =
  'usage: popkit fleet provision --hub-http URL --event E[,E2] --ids a,b:UUID,c --out DIR\n' +
  '                              [--hub-mqtt URL] [--admin-token T]\n\n' +
  "Enrolls each kit at the hub (its broker's dynamic security plugin), makes its ed25519 key pair and\n" +
  'token key, and writes DIR/<kit>/balena-env.json, DIR/<kit>/identity.key|.pub, DIR/balena-env.sh\n' +
  '(balena env set lines; `kit:UUID` names the device, else set DEVICE) and DIR/report.json.\n' +
  'The admin token may come from POPKIT_HUB_ADMIN_TOKEN instead of --admin-token (kept out of ps).\n';

interface KitResult {
  kitId: string;
  device?: string;
  ok: boolean;
  error?: { code: string; message: string };
  files?: string[];
}

const SAFE_URL = /^[A-Za-z0-9:/._~%?=&@+-]+$/;

function fail(msg: string): number {
  process.stderr.write(`popkit fleet: ${msg}\n`);
  return 2;
}

function writePrivate(file: string, content: string): void {
  fs.writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
}

/** The kits of `--ids`: `kit` or `kit:balena-uuid`, each checked before anything leaves this machine. */
export function parseIds(spec: string): Array<{ kitId: string; device?: string }> {
  const out = spec
    .split(',')
    .filter((s) => s !== '')
    .map((item) => {
      const [kitId, device, extra] = item.split(':');
      if (extra !== undefined) throw new Error(`--ids: ${item}: one ':' at most`);
      checkId('kit', kitId);
      if (device !== undefined && !/^[0-9a-f]{7,64}$/.test(device)) {
        throw new Error(`--ids: ${item}: a device uuid is 7 to 64 lowercase hex characters`);
      }
      return { kitId: kitId as string, ...(device ? { device } : {}) };
    });
  if (out.length === 0) throw new Error('--ids: at least one kit id');
  if (new Set(out.map((k) => k.kitId.toLowerCase())).size !== out.length)
    throw new Error('--ids: a kit twice');
  return out;
}

export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'provision') {
    process.stdout.write(USAGE);
    return sub === undefined || sub === '--help' || sub === '-h' ? 0 : 2;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        'hub-http': { type: 'string' },
        'hub-mqtt': { type: 'string' },
        'admin-token': { type: 'string' },
        event: { type: 'string' },
        ids: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    return fail((err as Error).message);
  }
  if (values['help']) {
    process.stdout.write(USAGE);
    return 0;
  }
  const hubHttp = String(values['hub-http'] ?? '').replace(/\/+$/, '');
  const hubMqtt = values['hub-mqtt'] === undefined ? undefined : String(values['hub-mqtt']);
  const token = String(values['admin-token'] ?? env['POPKIT_HUB_ADMIN_TOKEN'] ?? '');
  const outDir = String(values['out'] ?? '');
  if (!/^https?:\/\//.test(hubHttp) || !SAFE_URL.test(hubHttp)) return fail('--hub-http: an http(s) URL');
  if (hubMqtt !== undefined && (!/^(mqtts?|wss?|tcp):\/\//.test(hubMqtt) || !SAFE_URL.test(hubMqtt)))
    return fail('--hub-mqtt: an mqtt(s)/ws(s) URL');
  if (token.length < 16 || !/^[\x21-\x7e]+$/.test(token))
    return fail('--admin-token or POPKIT_HUB_ADMIN_TOKEN: the hub admin token');
  if (!outDir) return fail('--out DIR');
  let kits: Array<{ kitId: string; device?: string }>;
  let events: string[];
  try {
    events = String(values['event'] ?? '')
      .split(',')
      .filter((e) => e !== '');
    if (events.length === 0 || events.length > ENROLL_EVENTS_MAX)
      throw new Error('--event: 1 to 64 event ids');
    for (const e of events) checkId('event', e);
    kits = parseIds(String(values['ids'] ?? ''));
  } catch (err) {
    return fail(isKitError(err) ? err.message : (err as Error).message);
  }
  fs.mkdirSync(outDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(outDir, 0o700);
  for (const k of kits) {
    if (fs.existsSync(path.join(outDir, k.kitId)))
      return fail(`${path.join(outDir, k.kitId)} exists: not overwritten`);
  }

  const results: KitResult[] = [];
  const shell: string[] = ['#!/bin/sh', '# balena device variables made by popkit fleet provision', 'set -e'];
  for (const k of kits) {
    const r: KitResult = { kitId: k.kitId, ...(k.device ? { device: k.device } : {}), ok: false };
    results.push(r);
    let res: Response;
    try {
      res = await fetch(`${hubHttp}/v1/kits/enroll`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ kitId: k.kitId, eventIds: events }),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (err) {
      r.error = { code: 'HUB_UNREACHABLE', message: (err as Error).message };
      continue;
    }
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    const password = body['password'];
    const username = body['username'];
    if (res.status !== 201 || typeof password !== 'string' || typeof username !== 'string') {
      const e = (body['error'] ?? {}) as { code?: unknown; message?: unknown };
      r.error = {
        code: typeof e.code === 'string' ? e.code : `HTTP_${res.status}`,
        message: typeof e.message === 'string' ? e.message : 'unexpected answer',
      };
      continue;
    }
    if (!/^[A-Za-z0-9_-]{16,256}$/.test(password) || username !== k.kitId) {
      r.error = { code: 'BAD_ANSWER', message: 'the hub answered credentials of an unexpected shape' };
      continue;
    }
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const vars: Record<string, string> = {
      POPKIT_KIT_ID: k.kitId,
      POPKIT_HUB_USERNAME: username,
      POPKIT_HUB_PASSWORD: password,
      POPKIT_TOKEN_KEY: randomBytes(32).toString('hex'),
      POPKIT_HUB_HTTP_URL: hubHttp,
      ...(hubMqtt ? { POPKIT_HUB_URL: hubMqtt } : {}),
    };
    const kitDir = path.join(outDir, k.kitId);
    fs.mkdirSync(kitDir, { mode: 0o700 });
    const files = ['balena-env.json', 'identity.key', 'identity.pub'].map((f) => path.join(kitDir, f));
    writePrivate(files[0] as string, `${JSON.stringify(vars, null, 2)}\n`);
    writePrivate(files[1] as string, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    writePrivate(files[2] as string, publicKey.export({ type: 'spki', format: 'pem' }).toString());
    r.ok = true;
    r.files = files;
    const device = k.device ?? '"${DEVICE:?set DEVICE to the balena uuid of kit ' + k.kitId + '}"';
    shell.push(`# kit ${k.kitId}`);
    for (const [name, value] of Object.entries(vars)) {
      shell.push(`balena env set ${name} '${value}' --device ${device}`);
    }
  }
  writePrivate(path.join(outDir, 'balena-env.sh'), `${shell.join('\n')}\n`);
  const report = {
    v: 1,
    hub: hubHttp,
    events,
    kits: results,
    enrolled: results.filter((r) => r.ok).length,
    failed: results.filter((r) => !r.ok).length,
  };
  writePrivate(path.join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  for (const r of results) {
    process.stdout.write(
      r.ok ? `enrolled ${r.kitId}\n` : `FAILED ${r.kitId}: ${r.error?.code} ${r.error?.message}\n`,
    );
  }
  process.stdout.write(
    `${report.enrolled} enrolled, ${report.failed} failed; report: ${path.join(outDir, 'report.json')}\n`,
  );
  return report.failed === 0 ? 0 : 1;
}
