// `popkit status [--json]`: one screen of a running kit: state, LEDs, power, health, sync backlog, stream.
import { parseArgs } from 'node:util';
import { kitApi } from '../kit-client.ts';

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});

export function renderStatus(s: Obj): string {
  const lines: string[] = [];
  const event = obj(s['event']);
  lines.push(
    `kit ${s['kitId']} (${s['board']})  state: ${s['state']}${event['live'] ? `  LIVE ${event['eventId'] ?? ''}` : ''}`,
  );
  const cat = obj(s['catalog']);
  lines.push(
    `catalog: ${s['catalog'] ? `${cat['eventId']} v${cat['version']} (${cat['items']} items, ${cat['source']})` : 'none loaded'}`,
  );
  const leds = obj(s['leds']);
  lines.push(
    `leds: ${
      Object.keys(leds).length
        ? Object.entries(leds)
            .map(([k, v]) => `${k}=${obj(v)['pattern'] ?? JSON.stringify(v)}`)
            .join('  ')
        : 'unknown (kitd not running)'
    }`,
  );
  const power = Array.isArray(s['power']) ? (s['power'] as Obj[]) : [];
  if (power.length === 0) lines.push('power: no readings');
  for (const p of power) {
    const parts = [
      p['socPct'] !== undefined ? `SOC ${p['socPct']}%` : '',
      p['batteryV'] !== undefined ? `${p['batteryV']} V` : '',
      p['solarW'] !== undefined ? `solar ${p['solarW']} W` : '',
      p['chargeState'] ? String(p['chargeState']) : '',
      p['stale'] ? `STALE (${p['staleReason'] ?? '?'})` : '',
    ].filter(Boolean);
    lines.push(`power ${p['device']}: ${parts.join(', ')}`);
  }
  const health = obj(s['health']);
  lines.push(`health: ${s['health'] ? `${health['score']}/100` : 'unknown'}`);
  const sync = obj(s['sync']);
  const backlog = obj(sync['backlog']);
  lines.push(
    `sync: link ${sync['link']}  backlog ${Object.entries(backlog)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  const risk = obj(s['risk']);
  const blocking = Array.isArray(risk['blocking']) ? (risk['blocking'] as string[]) : [];
  lines.push(
    `offline risk: ${blocking.length ? `card orders PAUSED by ${blocking.join(', ')}` : 'within limits'}`,
  );
  const declines = Array.isArray(s['declines']) ? (s['declines'] as Obj[]) : [];
  const latest = declines[0];
  if (latest) {
    const amount = (Number(latest['totalCents']) / 100).toFixed(2);
    lines.push(
      `declined cards: ${declines.length} recent; latest order …${String(latest['orderId']).slice(-6)} ${amount} ${latest['currency']} (${latest['reason'] ?? 'declined'}): collect another way`,
    );
  }
  const media = obj(s['media']);
  lines.push(
    `stream: ${s['media'] ? `${media['state']}${media['fps'] !== undefined ? ` ${media['fps']} fps` : ''}${media['bitrateKbps'] !== undefined ? ` ${media['bitrateKbps']} kb/s` : ''}` : 'not running'}`,
  );
  return `${lines.join('\n')}\n`;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean', default: false }, url: { type: 'string' } },
  });
  const res = await kitApi(values.url).request('GET', '/v1/status');
  if (res.status !== 200) {
    process.stderr.write(`popkit status: kit answered ${res.status}\n`);
    return 1;
  }
  process.stdout.write(values.json ? `${JSON.stringify(res.body, null, 2)}\n` : renderStatus(obj(res.body)));
  return 0;
}
