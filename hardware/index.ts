// The real-hardware side of `hardware/`: interfaces, adapters and drivers. Simulators have their own
// entry, `hardware/sim/index.ts` (createPowerSources still reaches them for `{ sim: true }`; they are
// plain TypeScript with no native modules, so loading them costs nothing on a board).
export * from './boards/index.ts';
export { EpeverSource } from './drivers/epever-tracer.ts';
export { InaSource } from './drivers/ina2xx.ts';
export { Max17048Source } from './drivers/max17048.ts';
export { RenogySource } from './drivers/renogy-rover.ts';
export { decodeVeDirect, VeDirectSource } from './drivers/vedirect.ts';
export { VeDirectParser } from './drivers/vedirect-parser.ts';
export { chooseGpioBackend, createGpioProvider } from './gpio/index.ts';
export type { GpioChipProvider, GpioLine, GpioOpenOptions, GpioValue } from './gpio/types.ts';
export type { I2cBus } from './i2c/types.ts';
export { createPowerSources, createRealSource } from './power/index.ts';
export * from './power/reading.ts';
export { ReconnectingLink } from './serial/reconnecting-link.ts';
export { SerialPortLink } from './serial/serialport-link.ts';
export type { SerialLink } from './serial/types.ts';
