// An in-process MQTT broker (aedes) for `popkit up`: the kit's local bus, and the embedded hub's broker
// when no POPKIT_HUB_URL is given. In the field these are Mosquitto containers; the MQTT they speak is
// the same, so every client is unchanged.
import net from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(opts: { port: number; host?: string }): Promise<EmbeddedBroker> {
  const host = opts.host ?? '127.0.0.1';
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle as (socket: net.Socket) => void);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  return {
    url: `mqtt://${host}:${addr.port}`,
    port: addr.port,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}
