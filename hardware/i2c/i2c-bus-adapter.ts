// The real I2C bus: the i2c-bus native module, imported only when a bus is opened. Errno codes
// become coded errors so a missing chip is a status (HW_I2C_NACK), not a crash.
import { KitError } from '../../core/errors.ts';
import type { I2cBus } from './types.ts';

type PromisifiedBus = import('i2c-bus').PromisifiedBus;

function classify(err: unknown, what: string): KitError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT' || e.code === 'EACCES') {
    return new KitError(
      'HW_UNAVAILABLE',
      `${what}: ${e.message} (is I2C enabled? dtparam=i2c_arm=on, and /dev/i2c-* mapped into the container)`,
    );
  }
  // EREMOTEIO / ENXIO / EIO: nobody acknowledged the address or the transfer.
  return new KitError('HW_I2C_NACK', `${what}: ${e.code ?? ''} ${e.message}`.trim());
}

export class I2cBusAdapter implements I2cBus {
  readonly busNumber: number;
  private bus: PromisifiedBus | undefined;

  private constructor(busNumber: number, bus: PromisifiedBus) {
    this.busNumber = busNumber;
    this.bus = bus;
  }

  static async open(busNumber: number): Promise<I2cBusAdapter> {
    let mod: typeof import('i2c-bus');
    try {
      mod = await import('i2c-bus');
    } catch (err) {
      throw new KitError(
        'HW_UNAVAILABLE',
        `the i2c-bus module does not load (${(err as Error).message}); run \`npm install i2c-bus\` (optional dependency with a native build)`,
      );
    }
    const open = mod.openPromisified ?? (mod as unknown as { default: typeof mod }).default.openPromisified;
    try {
      // i2c-bus opens even when /dev/i2c-N is missing; the first transfer reports ENOENT.
      return new I2cBusAdapter(busNumber, await open(busNumber));
    } catch (err) {
      throw classify(err, `open /dev/i2c-${busNumber}`);
    }
  }

  private get b(): PromisifiedBus {
    if (!this.bus) throw new KitError('HW_UNAVAILABLE', `I2C bus ${this.busNumber} is closed`);
    return this.bus;
  }

  async readWord(address: number, command: number): Promise<number> {
    try {
      return await this.b.readWord(address, command);
    } catch (err) {
      throw classify(err, `i2c-${this.busNumber} 0x${address.toString(16)} read 0x${command.toString(16)}`);
    }
  }

  async writeWord(address: number, command: number, word: number): Promise<void> {
    try {
      await this.b.writeWord(address, command, word);
    } catch (err) {
      throw classify(err, `i2c-${this.busNumber} 0x${address.toString(16)} write 0x${command.toString(16)}`);
    }
  }

  async readByte(address: number, command: number): Promise<number> {
    try {
      return await this.b.readByte(address, command);
    } catch (err) {
      throw classify(err, `i2c-${this.busNumber} 0x${address.toString(16)} read 0x${command.toString(16)}`);
    }
  }

  async writeByte(address: number, command: number, byte: number): Promise<void> {
    try {
      await this.b.writeByte(address, command, byte);
    } catch (err) {
      throw classify(err, `i2c-${this.busNumber} 0x${address.toString(16)} write 0x${command.toString(16)}`);
    }
  }

  async close(): Promise<void> {
    const bus = this.bus;
    this.bus = undefined;
    await bus?.close();
  }
}
