// `popkit catalog load FILE`: load a catalog JSON into a running kit over its staff API (no hub needed).
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { kitApi } from '../kit-client.ts';

export async function run(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { url: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const [sub, file] = positionals;
  if (sub !== 'load' || !file) {
    process.stderr.write('usage: popkit catalog load FILE [--url http://KIT:8080]\n');
    return 2;
  }
  let body: unknown;
  try {
    body = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    process.stderr.write(`popkit catalog: cannot read ${file}: ${(err as Error).message}\n`);
    return 1;
  }
  const api = kitApi(values.url);
  const res = await api.request('PUT', '/v1/catalog', body, { admin: true });
  if (res.status !== 200) {
    const e = (res.body as { error?: { code: string; message: string } }).error;
    process.stderr.write(`popkit catalog: refused (${res.status} ${e?.code ?? ''}): ${e?.message ?? ''}\n`);
    return 1;
  }
  const c = res.body as { version: number; eventId: string; items: unknown[] };
  if (values.json) process.stdout.write(`${JSON.stringify(c)}\n`);
  else process.stdout.write(`catalog ${c.eventId} v${c.version} loaded: ${c.items.length} items\n`);
  return 0;
}
