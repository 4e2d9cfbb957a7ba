// Whole-machine CPU busy fraction from /proc/stat deltas (rooted by POPKIT_HOST_ROOT for tests),
// and this process's own CPU use in cores (GStreamer's threads included: they live in this process).
import fs from 'node:fs';
import { hostPath } from '../../core/host-paths.ts';

export interface CpuSample {
  /** 0..1 of all cores; NaN until two readings exist or when /proc/stat is unreadable. */
  machine: number;
  /** CPU seconds per second used by this process (1.0 = one full core). */
  processCores: number;
}

export class CpuSampler {
  private prevStat: { busy: number; total: number } | undefined;
  private prevProc: { usage: NodeJS.CpuUsage; at: bigint } | undefined;
  private readonly statPath: string;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.statPath = hostPath('/proc/stat', env);
  }

  sample(): CpuSample {
    let machine = Number.NaN;
    const stat = readStat(this.statPath);
    if (stat && this.prevStat && stat.total > this.prevStat.total) {
      machine = (stat.busy - this.prevStat.busy) / (stat.total - this.prevStat.total);
    }
    if (stat) this.prevStat = stat;
    const at = process.hrtime.bigint();
    const usage = process.cpuUsage();
    let processCores = Number.NaN;
    if (this.prevProc) {
      const dtUs = Number(at - this.prevProc.at) / 1000;
      const used = usage.user - this.prevProc.usage.user + (usage.system - this.prevProc.usage.system);
      if (dtUs > 0) processCores = used / dtUs;
    }
    this.prevProc = { usage, at };
    return { machine, processCores };
  }
}

function readStat(file: string): { busy: number; total: number } | undefined {
  try {
    const line = fs.readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    if (f.length < 4 || f.some((n) => !Number.isFinite(n))) return undefined;
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}
