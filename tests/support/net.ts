import { waitFor } from './hub-link.ts';

export { freePort, startOnFreePort } from './ports.ts';

/** Poll until `check` holds; fails (never hangs) after `timeoutMs`. */
export async function waitUntil(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  await waitFor(check, timeoutMs, what);
}
