// The kit's health score (0–100) and its visible components: CPU load, disk write latency (a small
// fsync probe), network jitter and loss to the hub, battery SOC / time-to-go, and the watchdog's view
// of the services. Scoring is pure (tested on numbers); probes are small and cheap.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { HealthComponent, HealthViewT } from '../core/contracts/run-status.ts';
import { hostPath } from '../core/host-paths.ts';

export type { HealthComponent };
export type HealthView = HealthViewT;

const clamp = (v: number) => Math.max(0, Math.min(100, Math.round(v)));
/** 100 at or below `good`, 0 at or above `bad`, straight in between. */
const ramp = (v: number, good: number, bad: number) => clamp(((bad - v) / (bad - good)) * 100);

/** One-minute load per core: 100 up to 0.7, 0 at 2.0. */
export function scoreCpu(loadPerCore: number): number {
  return ramp(loadPerCore, 0.7, 2.0);
}

/** fsync latency of a 4 KiB write: 100 up to 20 ms, 0 at 1 s (an SD card about to die). */
export function scoreDisk(fsyncMs: number): number {
  return ramp(fsyncMs, 20, 1000);
}

export interface NetworkSample {
  sent: number;
  received: number;
  lossPct: number;
  rttMs?: number;
  jitterMs?: number;
}

/** Loss hurts most, then jitter; an unreachable hub scores 0 (the kit still sells, offline). */
export function scoreNetwork(n: NetworkSample): number {
  if (n.received === 0) return 0;
  const loss = ramp(n.lossPct, 0, 50);
  const jitter = ramp(n.jitterMs ?? 0, 30, 500);
  const rtt = ramp(n.rttMs ?? 0, 150, 2000);
  return clamp(Math.min(loss, 0.6 * jitter + 0.4 * rtt));
}

/** SOC, and whether time-to-go covers what is left of the planned event. */
export function scoreBattery(b: { socPct?: number; ttgMin?: number; neededMin?: number }): number {
  if (b.socPct === undefined) return 50; // unknown power: neither fine nor failed
  const soc = ramp(100 - b.socPct, 50, 95); // 100 above 50 %, 0 at 5 %
  if (b.ttgMin === undefined || b.neededMin === undefined || b.neededMin <= 0) return soc;
  const cover = ramp(-b.ttgMin / b.neededMin, -1.5, -0.5); // 100 at 1.5× the need, 0 at half
  return clamp(Math.min(soc, cover));
}

/** Each service down costs 40, each restart within the window 10. */
export function scoreServices(s: { down: number; recentRestarts: number }): number {
  return clamp(100 - 40 * s.down - 10 * s.recentRestarts);
}

export const HEALTH_WEIGHTS = { cpu: 0.15, disk: 0.2, network: 0.2, battery: 0.3, services: 0.15 } as const;

/**
 * Weighted mean of the components present, capped at the worst component + 50, so that one failing
 * part can never hide behind four healthy ones.
 */
export function combineHealth(components: Record<string, HealthComponent>): number {
  const list = Object.values(components);
  if (list.length === 0) return 0;
  const w = list.reduce((a, c) => a + c.weight, 0);
  const mean = list.reduce((a, c) => a + c.score * c.weight, 0) / (w || 1);
  const worst = Math.min(...list.map((c) => c.score));
  return clamp(Math.min(mean, worst + 50));
}

/** One-minute load average per core, from /proc/loadavg (rootable for tests), else os.loadavg(). */
export function readLoadPerCore(env: NodeJS.ProcessEnv = process.env): number {
  const cores = Math.max(1, os.cpus().length);
  try {
    const first = fs.readFileSync(hostPath('/proc/loadavg', env), 'utf8').split(/\s+/)[0];
    const v = Number(first);
    if (Number.isFinite(v)) return v / cores;
  } catch {
    // not Linux, or no such file under the host root: fall back
  }
  return (os.loadavg()[0] ?? 0) / cores;
}

/**
 * Time to write and fdatasync 4 KiB in the data dir, ms; the probe file is reused, not accumulated.
 * Deliberately not core/durable-file.ts: its content means nothing (a torn probe is rewritten by the
 * next probe), and a rename plus a directory fsync would change what is measured.
 */
export async function fsyncProbe(dir: string): Promise<number> {
  await fs.promises.mkdir(dir, { recursive: true });
  const file = path.join(dir, '.fsync-probe');
  const buf = Buffer.alloc(4096, 0x5a);
  const t0 = performance.now();
  const fh = await fs.promises.open(file, 'w');
  try {
    await fh.write(buf, 0, buf.length, 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return performance.now() - t0;
}

/**
 * `count` sequential GETs of `url`: loss, mean RTT and jitter (mean absolute difference of
 * consecutive RTTs, as RTP's interarrival jitter is defined).
 */
export async function networkProbe(
  url: string,
  opts: { count?: number; timeoutMs?: number; gapMs?: number } = {},
): Promise<NetworkSample & { dateHeader?: string }> {
  const count = opts.count ?? 5;
  const rtts: number[] = [];
  let dateHeader: string | undefined;
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 1000) });
      await res.arrayBuffer();
      // any HTTP answer proves the path works; a 503 from a degraded hub is not packet loss
      rtts.push(performance.now() - t0);
      dateHeader = res.headers.get('date') ?? dateHeader;
    } catch {
      // a timeout or refused connection is a lost probe
    }
    if (opts.gapMs && i < count - 1) await new Promise((r) => setTimeout(r, opts.gapMs));
  }
  const sample: NetworkSample & { dateHeader?: string } = {
    sent: count,
    received: rtts.length,
    lossPct: Math.round(((count - rtts.length) / count) * 1000) / 10,
  };
  if (rtts.length > 0) sample.rttMs = round1(rtts.reduce((a, b) => a + b, 0) / rtts.length);
  if (rtts.length > 1) {
    let d = 0;
    for (let i = 1; i < rtts.length; i++) d += Math.abs((rtts[i] ?? 0) - (rtts[i - 1] ?? 0));
    sample.jitterMs = round1(d / (rtts.length - 1));
  } else if (rtts.length === 1) sample.jitterMs = 0;
  if (dateHeader) sample.dateHeader = dateHeader;
  return sample;
}

const round1 = (v: number) => Math.round(v * 10) / 10;
