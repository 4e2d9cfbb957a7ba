// Open-circuit voltage per cell against state of charge, per chemistry. The simulator uses it to
// turn SOC into volts; INA2xx sources use it the other way to seed coulomb counting, which is
// better than the linear voltage guess UPS-HAT vendor scripts make.

export type Chemistry = 'lifepo4' | 'lead-acid' | 'li-ion';

/** [socPct, cell volts at rest], ascending in both. */
const CURVES: Record<Chemistry, ReadonlyArray<readonly [number, number]>> = {
  lifepo4: [
    [0, 2.5],
    [5, 2.9],
    [10, 3.0],
    [20, 3.2],
    [30, 3.25],
    [40, 3.27],
    [50, 3.29],
    [60, 3.3],
    [70, 3.32],
    [80, 3.33],
    [90, 3.34],
    [99, 3.38],
    [100, 3.45],
  ],
  'lead-acid': [
    [0, 1.93],
    [10, 1.96],
    [20, 1.98],
    [30, 2.0],
    [40, 2.02],
    [50, 2.04],
    [60, 2.06],
    [70, 2.08],
    [80, 2.1],
    [90, 2.11],
    [100, 2.13],
  ],
  'li-ion': [
    [0, 3.0],
    [5, 3.3],
    [10, 3.45],
    [20, 3.55],
    [30, 3.62],
    [40, 3.68],
    [50, 3.74],
    [60, 3.8],
    [70, 3.87],
    [80, 3.95],
    [90, 4.05],
    [100, 4.2],
  ],
};

export function cellVoltsAtSoc(chem: Chemistry, socPct: number): number {
  const c = CURVES[chem];
  const s = Math.min(100, Math.max(0, socPct));
  for (let i = 1; i < c.length; i++) {
    const [s1, v1] = c[i]!;
    const [s0, v0] = c[i - 1]!;
    if (s <= s1) return v0 + ((v1 - v0) * (s - s0)) / (s1 - s0);
  }
  return c[c.length - 1]![1];
}

export function socAtCellVolts(chem: Chemistry, volts: number): number {
  const c = CURVES[chem];
  if (volts <= c[0]![1]) return 0;
  for (let i = 1; i < c.length; i++) {
    const [s1, v1] = c[i]!;
    const [s0, v0] = c[i - 1]!;
    if (volts <= v1) return s0 + ((s1 - s0) * (volts - v0)) / (v1 - v0);
  }
  return 100;
}

export function defaultCells(chem: Chemistry): number {
  return chem === 'lead-acid' ? 6 : chem === 'lifepo4' ? 4 : 1;
}
