// The real-hardware side of `hardware/`: interfaces, adapters, drivers and the factories that assemble
// them. Simulators are imported from their own files under `hardware/sim/` (createPowerSources still
// reaches them for `{ sim: true }`; they are plain TypeScript with no native modules, so loading them
// costs nothing on a board).
//
// Layers inside hardware/, lowest first; a file imports only from its own folder or a lower layer, and
// tests/unit/import-graph.test.ts holds this table and checks it:
//   power (the reading contract, pure helpers) < boards < gpio | i2c | serial (interfaces, real adapters)
//   < drivers < sim (simulated devices) < factories (assembly) < this file.
export * from './boards/index.ts';
export { EpeverSource } from './drivers/epever-tracer.ts';
export { InaSource } from './drivers/ina2xx.ts';
export { Max17048Source } from './drivers/max17048.ts';
export { RenogySource } from './drivers/renogy-rover.ts';
export { decodeVeDirect, VeDirectSource } from './drivers/vedirect.ts';
export { VeDirectParser } from './drivers/vedirect-parser.ts';
export { chooseGpioBackend, createGpioProvider } from './factories/gpio-providers.ts';
export { createPowerSources, createRealSource } from './factories/power-sources.ts';
export type { GpioChipProvider, GpioLine, GpioOpenOptions, GpioValue } from './gpio/types.ts';
export type { I2cBus } from './i2c/types.ts';
export * from './power/reading.ts';
export { ReconnectingLink } from './serial/reconnecting-link.ts';
export { SerialPortLink } from './serial/serialport-link.ts';
export type { SerialLink } from './serial/types.ts';
