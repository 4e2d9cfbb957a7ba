// An in-process serial cable: two SerialLink ends whose writes arrive at the other end, and an
// unplug()/replug() that behaves like pulling the USB adapter (close with an error, opens fail).
import { KitError } from '../../core/errors.ts';
import type { SerialLink } from '../serial/types.ts';

class PairEnd implements SerialLink {
  readonly path: string;
  peer!: PairEnd;
  private opened = false;
  private readonly dataCbs = new Set<(chunk: Buffer) => void>();
  private readonly closeCbs = new Set<(err: Error | undefined) => void>();

  constructor(
    path: string,
    private readonly pair: SimSerialPair,
  ) {
    this.path = path;
  }

  get isOpen(): boolean {
    return this.opened;
  }

  async open(): Promise<void> {
    if (!this.pair.plugged)
      throw new KitError('HW_SERIAL_CLOSED', `cannot open ${this.path}: ENOENT (unplugged)`);
    this.opened = true;
  }

  async close(): Promise<void> {
    if (!this.opened) return;
    this.opened = false;
    for (const cb of this.closeCbs) cb(undefined);
  }

  async write(data: Uint8Array): Promise<void> {
    if (!this.opened) throw new KitError('HW_SERIAL_CLOSED', `${this.path} is not open`);
    if (!this.pair.plugged) throw new KitError('HW_SERIAL_CLOSED', `${this.path}: EIO (unplugged)`);
    const copy = Buffer.from(data);
    const peer = this.peer;
    // Delivered on a later tick, like bytes from a real UART, so a writer never re-enters its reader.
    queueMicrotask(() => {
      if (peer.opened && this.pair.plugged) peer.deliver(copy);
    });
  }

  deliver(chunk: Buffer): void {
    for (const cb of this.dataCbs) cb(chunk);
  }

  hangUp(): void {
    if (!this.opened) return;
    this.opened = false;
    const err = new Error('EIO: device disconnected');
    for (const cb of this.closeCbs) cb(err);
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

export class SimSerialPair {
  plugged = true;
  /** The end the driver (host) opens. */
  readonly host: SerialLink;
  /** The end the device simulator writes to and reads from. */
  readonly device: SerialLink;
  private readonly hostEnd: PairEnd;

  constructor(path = 'sim') {
    const host = new PairEnd(path, this);
    const device = new PairEnd(`${path}#device`, this);
    host.peer = device;
    device.peer = host;
    this.hostEnd = host;
    this.host = host;
    this.device = device;
  }

  /** A fresh host-side handle, as a reconnecting link opens a new port object each attempt. */
  hostLink(): SerialLink {
    return this.hostEnd;
  }

  unplug(): void {
    this.plugged = false;
    this.hostEnd.hangUp();
  }

  replug(): void {
    this.plugged = true;
  }
}
