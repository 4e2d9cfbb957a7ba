// POPKIT_HUB_BROKER_URL may list the nodes of one clustered broker (comma-separated, e.g. a NATS
// cluster's MQTT gateways): mqtt.js's `servers` then moves each reconnect to the next node, so a worker
// whose node died reconnects to a live one (its clean session subscribes again there).
import type { IClientOptions } from 'mqtt';
import { hubUrlList } from '../../core/config.ts';

type Server = NonNullable<IClientOptions['servers']>[number];

/** The URL to hand mqtt.connect and, for a list, the servers it rotates through (in order). */
export function brokerTarget(value: string): { url: string; servers?: Server[] } {
  const urls = hubUrlList(value);
  if (urls.length === 1) return { url: urls[0]! };
  const servers = urls.map((u) => {
    const url = new URL(u);
    const protocol = url.protocol.replace(/:$/, '') as Server['protocol'];
    const port = url.port ? Number(url.port) : protocol === 'mqtts' || protocol === 'ssl' ? 8883 : 1883;
    return { host: url.hostname, port, ...(protocol ? { protocol } : {}) };
  });
  return { url: urls[0]!, servers };
}
