// The bodies sync queues on its own lanes: health (the other services' run statuses, read through
// their contracts) and telemetry (sync's counters).
import { readRunStatus } from '../../core/contracts/run-status.ts';

/** A status that grew large is summarized rather than let it eat the health lane's quota. */
const MAX_STATUS_CHARS = 16_384;
const REPORTED = ['kitd', 'checkout', 'media'] as const;

export function healthBody(dataDir: string): { services: Record<string, unknown> } {
  const services: Record<string, unknown> = {};
  for (const name of REPORTED) {
    const s = readRunStatus(dataDir, name);
    if (!s) continue;
    services[name] =
      JSON.stringify(s).length > MAX_STATUS_CHARS ? { updatedAt: s.updatedAt, truncated: true } : s;
  }
  return { services };
}

export interface SyncCounters {
  published: number;
  drained: number;
  resent: number;
  reconnects: number;
}

export function telemetryBody(counters: SyncCounters, dropped: Record<string, number>) {
  const mem = process.memoryUsage();
  return {
    sync: {
      ...counters,
      rssBytes: mem.rss,
      uptimeS: Math.round(process.uptime()),
    },
    dropped: { ...dropped },
  };
}
