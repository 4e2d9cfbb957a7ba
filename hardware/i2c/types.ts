// The I2C seam: the subset of i2c-bus's promise API (PromisifiedBus) the drivers use. SMBus word
// transfers are little-endian on the wire order: the first byte the chip sends is the low byte of
// readWord's result. INA2xx and MAX17048 send MSB first, so drivers swap (see i2c/words.ts).

export interface I2cBus {
  readonly busNumber: number;
  readWord(address: number, command: number): Promise<number>;
  writeWord(address: number, command: number, word: number): Promise<void>;
  readByte(address: number, command: number): Promise<number>;
  writeByte(address: number, command: number, byte: number): Promise<void>;
  close(): Promise<void>;
}
