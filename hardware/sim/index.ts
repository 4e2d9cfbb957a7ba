// The simulators, a separate export from the real drivers: vendors use them to run a kit on a
// laptop, tests use them to inject faults.
export { BatteryModel, type BatteryModelOptions, type BatterySnapshot } from './battery-model.ts';
export { type GpioWrite, SimGpio } from './gpio-sim.ts';
export { type I2cRegisterModel, Ina219Model, Ina226Model, Max17048Model, SimI2cBus } from './i2c-sim.ts';
export { EpeverSimulator, type ModbusSimFaults, RenogySimulator } from './modbus-sims.ts';
export { createSimDevice, type SimDeviceHandle } from './power-rig.ts';
export { type PtyPair, startPtyPair } from './pty-pair.ts';
export { SimSerialPair } from './serial-pair.ts';
export { type VeDirectFaults, VeDirectSimulator } from './vedirect-sim.ts';
