// The real serial adapter: node-serialport, imported only when a port is actually opened so that
// everything else loads on machines without the native binding.
import { KitError } from '../../core/errors.ts';
import { hostPath } from '../../core/host-paths.ts';
import type { SerialLink, SerialPortOptions } from './types.ts';

type SerialPortCtor = typeof import('serialport').SerialPort;
type SerialPortInstance = InstanceType<SerialPortCtor>;

let serialPortCtor: Promise<SerialPortCtor> | undefined;

async function loadSerialPort(): Promise<SerialPortCtor> {
  serialPortCtor ??= import('serialport').then(
    (m) => m.SerialPort,
    (err: unknown) => {
      serialPortCtor = undefined;
      throw new KitError(
        'HW_UNAVAILABLE',
        `the serialport module does not load (${(err as Error).message}); run \`npm install serialport\` (optional dependency with a native build)`,
      );
    },
  );
  return serialPortCtor;
}

/** `/dev/…` paths resolve under POPKIT_HOST_ROOT so tests can point a fake by-id link at a pty. */
export function resolveSerialPath(p: string, env: NodeJS.ProcessEnv = process.env): string {
  return p.startsWith('/dev/') ? hostPath(p, env) : p;
}

export class SerialPortLink implements SerialLink {
  readonly path: string;
  private readonly baudRate: number;
  private readonly resolvedPath: string;
  private port: SerialPortInstance | undefined;
  private readonly dataCbs = new Set<(chunk: Buffer) => void>();
  private readonly closeCbs = new Set<(err: Error | undefined) => void>();
  private closing = false;

  constructor(opts: SerialPortOptions, env: NodeJS.ProcessEnv = process.env) {
    this.path = opts.path;
    this.baudRate = opts.baudRate;
    this.resolvedPath = resolveSerialPath(opts.path, env);
  }

  get isOpen(): boolean {
    return this.port?.isOpen ?? false;
  }

  async open(): Promise<void> {
    if (this.port?.isOpen) return;
    const SerialPort = await loadSerialPort();
    const port = new SerialPort({ path: this.resolvedPath, baudRate: this.baudRate, autoOpen: false });
    await new Promise<void>((resolve, reject) => {
      port.open((err) => {
        if (err) {
          reject(new KitError('HW_SERIAL_CLOSED', `cannot open ${this.path}: ${err.message}`));
        } else {
          resolve();
        }
      });
    });
    this.closing = false;
    this.port = port;
    port.on('data', (chunk: Buffer) => {
      for (const cb of this.dataCbs) cb(chunk);
    });
    // An unplugged adapter shows up as an error (EIO) and/or a close with `disconnected`.
    let reported = false;
    const closed = (err: Error | undefined) => {
      if (reported) return;
      reported = true;
      if (this.port === port) this.port = undefined;
      const why = this.closing ? undefined : (err ?? new Error('port closed'));
      for (const cb of this.closeCbs) cb(why);
    };
    port.on('close', (err?: Error) => closed(err));
    port.on('error', (err: Error) => {
      closed(err);
      if (port.isOpen) port.close(() => {});
    });
  }

  async close(): Promise<void> {
    const port = this.port;
    if (!port) return;
    this.closing = true;
    await new Promise<void>((resolve) => {
      if (!port.isOpen) return resolve();
      port.close(() => resolve());
    });
    this.port = undefined;
  }

  async write(data: Uint8Array): Promise<void> {
    const port = this.port;
    if (!port?.isOpen) throw new KitError('HW_SERIAL_CLOSED', `${this.path} is not open`);
    await new Promise<void>((resolve, reject) => {
      port.write(Buffer.from(data), (err) =>
        err ? reject(new KitError('HW_SERIAL_CLOSED', err.message)) : resolve(),
      );
    });
  }

  onData(cb: (chunk: Buffer) => void): () => void {
    this.dataCbs.add(cb);
    return () => this.dataCbs.delete(cb);
  }

  onClose(cb: (err: Error | undefined) => void): () => void {
    this.closeCbs.add(cb);
    return () => this.closeCbs.delete(cb);
  }
}
