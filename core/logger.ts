// pino JSON to stdout (balena collects stdout); one root, a child per module; secrets redacted.
import { type Logger, pino } from 'pino';

export type { Logger };

const REDACT = [
  'token',
  'payment.token',
  '*.token',
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'password',
  '*.password',
  'adminToken',
  'tokenKey',
];

let root: Logger | undefined;

export function rootLogger(): Logger {
  if (!root) {
    root = pino({
      level: process.env['POPKIT_LOG_LEVEL'] ?? (process.env['NODE_ENV'] === 'test' ? 'silent' : 'info'),
      base: { pid: process.pid },
      redact: { paths: REDACT, censor: '[redacted]' },
    });
  }
  return root;
}

export function moduleLogger(module: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ module, ...bindings });
}

/** A broker or service URL fit for logs and status files: credentials removed. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return 'invalid-url';
  }
}
