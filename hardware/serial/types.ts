// The serial seam: drivers and device simulators see only this, whether the bytes travel through
// the real serialport binding (a USB adapter, or a socat pty pair) or an in-process pair.

export interface SerialLink {
  readonly path: string;
  readonly isOpen: boolean;
  open(): Promise<void>;
  close(): Promise<void>;
  write(data: Uint8Array): Promise<void>;
  onData(cb: (chunk: Buffer) => void): () => void;
  /** The link closed (unplugged, hung up, or close() called); `err` is set unless close() was asked for. */
  onClose(cb: (err: Error | undefined) => void): () => void;
}

export interface SerialPortOptions {
  path: string;
  baudRate: number;
}
