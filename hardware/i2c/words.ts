// Register words of big-endian chips over SMBus little-endian word transfers.
import type { I2cBus } from './types.ts';

export const swap16 = (w: number): number => ((w & 0xff) << 8) | ((w >> 8) & 0xff);
export const toSigned16 = (w: number): number => (w & 0x8000 ? w - 0x10000 : w);

export async function readRegisterBE(bus: I2cBus, address: number, reg: number): Promise<number> {
  return swap16(await bus.readWord(address, reg));
}

export async function writeRegisterBE(
  bus: I2cBus,
  address: number,
  reg: number,
  value: number,
): Promise<void> {
  await bus.writeWord(address, reg, swap16(value & 0xffff));
}
