// `popkit terminal pair|list|revoke`: staff terminals, paired by the admin (docs/security.md#roles-and-credentials).
// `pair` asks the kit for a single-use code (10 minutes, a few attempts) and prints it with a QR code of
// the pairing link: the terminal opens the link (the kit's dashboard redeems the code for the
// terminal's own token) or sends the code to POST /v1/terminals/redeem.
import { parseArgs } from 'node:util';
import QRCode from 'qrcode';
import { kitApi } from '../kit-client.ts';

const USAGE =
  'usage: popkit terminal pair [--name N] [--public-url http://KIT:8080] [--json] | list [--json] | revoke ID   [--url http://KIT:8080]\n';

type ApiError = { error?: { code?: string; message?: string } };

function refused(what: string, status: number, body: unknown): number {
  const e = (body as ApiError | null)?.error;
  process.stderr.write(
    `popkit terminal ${what}: refused (${status} ${e?.code ?? ''}): ${e?.message ?? ''}\n`,
  );
  return 1;
}

export async function run(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      name: { type: 'string' },
      'public-url': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const [sub, id, ...rest] = positionals;
  const api = kitApi(values.url);
  if (sub === 'pair' && id === undefined) {
    const res = await api.request(
      'POST',
      '/v1/terminals/pairings',
      values.name ? { name: values.name } : {},
      {
        admin: true,
      },
    );
    if (res.status !== 201) return refused('pair', res.status, res.body);
    const p = res.body as { id: string; name: string; code: string; expiresAt: string; pairPath: string };
    const link = `${(values['public-url'] ?? api.base).replace(/\/$/, '')}${p.pairPath}`;
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ...p, url: link })}\n`);
      return 0;
    }
    const qr = await QRCode.toString(link, { type: 'terminal', small: true });
    process.stdout.write(
      `pairing code for "${p.name}": ${p.code.slice(0, 4)}-${p.code.slice(4)}  (single use, until ${p.expiresAt})\n` +
        `on the terminal open ${link}\nor scan:\n${qr}`,
    );
    return 0;
  }
  if (sub === 'list' && id === undefined) {
    const res = await api.request('GET', '/v1/terminals', undefined, { admin: true });
    if (res.status !== 200) return refused('list', res.status, res.body);
    const body = res.body as {
      terminals: Array<{ id: string; name: string; createdAt: string; revokedAt?: string }>;
      pairings: Array<{ id: string; name: string; expiresAt: string }>;
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(body)}\n`);
      return 0;
    }
    const lines = body.terminals.map(
      (t) =>
        `${t.id}  ${t.revokedAt ? `revoked ${t.revokedAt}` : 'active'}  paired ${t.createdAt}  ${JSON.stringify(t.name)}`,
    );
    if (lines.length === 0) lines.push('no terminals paired');
    for (const p of body.pairings)
      lines.push(`pairing ${JSON.stringify(p.name)} waiting until ${p.expiresAt}`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  }
  if (sub === 'revoke' && id !== undefined && rest.length === 0) {
    const res = await api.request('DELETE', `/v1/terminals/${encodeURIComponent(id)}`, undefined, {
      admin: true,
    });
    if (res.status !== 200) return refused('revoke', res.status, res.body);
    const t = res.body as { id: string; name: string; revokedAt: string };
    process.stdout.write(`terminal ${t.id} (${JSON.stringify(t.name)}) revoked at ${t.revokedAt}\n`);
    return 0;
  }
  process.stderr.write(USAGE);
  return 2;
}
