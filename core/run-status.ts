// A tiny status board: each process writes its own status JSON into <dataDir>/run/<service>.json
// (atomically, write then rename) and checkout's /v1/status merges them. It needs no broker, so the
// status page still works when the local bus is down.
import fs from 'node:fs';
import path from 'node:path';

export function runDir(dataDir: string): string {
  return path.join(dataDir, 'run');
}

export function writeServiceStatus(dataDir: string, service: string, status: Record<string, unknown>): void {
  const dir = runDir(dataDir);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${service}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ ...status, updatedAt: new Date().toISOString(), pid: process.pid }));
  fs.renameSync(tmp, file);
}

export interface ServiceStatus {
  updatedAt?: string;
  pid?: number;
  [key: string]: unknown;
}

/** The service's last status, or undefined when it never wrote one (or the file is unreadable). */
export function readServiceStatus(dataDir: string, service: string): ServiceStatus | undefined {
  try {
    return JSON.parse(
      fs.readFileSync(path.join(runDir(dataDir), `${service}.json`), 'utf8'),
    ) as ServiceStatus;
  } catch {
    return undefined;
  }
}

/** Age in ms of a status, for staleness checks (Infinity when unknown). */
export function statusAgeMs(status: ServiceStatus | undefined, now = Date.now()): number {
  const t = status?.updatedAt ? Date.parse(status.updatedAt) : Number.NaN;
  return Number.isFinite(t) ? now - t : Number.POSITIVE_INFINITY;
}
