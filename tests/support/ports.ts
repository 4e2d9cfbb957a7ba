// Ports for servers that tests start on an explicit port (Mosquitto, `popkit checkout` restarted on the
// same port, `popkit up`). A port found by binding port 0 and closing it again (core/embedded-broker.ts
// freePort) is taken from the kernel's ephemeral range, so between the close and the server's own bind
// any other process on the machine may be handed the same port (another test file's port-0 server, an
// outgoing connection). Here the port comes from below the ephemeral range, where the kernel never hands
// out ports, and is claimed across the test processes of this machine with an exclusive claim file
// (removed when the claiming process exits). Callers still
// retry a start that fails to bind (startOnFreePort), for a server outside the suite on the same port.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const CLAIMS = path.join(os.tmpdir(), '.popkit-test-ports');
const LOW = 20_000;
const HIGH = 32_000; // below /proc/sys/net/ipv4/ip_local_port_range (32768 by default)
const mine = new Set<string>();
let exitHook = false;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claim `port` for this process; false when another process holds it. The claim file appears whole
 * (written aside, then hard-linked into place: link fails if the name exists), so nobody reads a
 * half-written one. A claim of a dead process is removed once it is a minute old and the port skipped
 * this time (a takeover race between two processes could hand the port to both).
 */
function claim(port: number): boolean {
  fs.mkdirSync(CLAIMS, { recursive: true });
  const file = path.join(CLAIMS, String(port));
  const aside = path.join(CLAIMS, `.${process.pid}.${port}`);
  fs.writeFileSync(aside, String(process.pid));
  try {
    fs.linkSync(aside, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    try {
      const owner = Number(fs.readFileSync(file, 'utf8').trim());
      if (!alive(owner) && Date.now() - fs.statSync(file).mtimeMs > 60_000) fs.rmSync(file, { force: true });
    } catch {
      // gone meanwhile: another try picks another port
    }
    return false;
  } finally {
    fs.rmSync(aside, { force: true });
  }
  mine.add(file);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const f of mine) fs.rmSync(f, { force: true });
    });
  }
  return true;
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A port no other test process holds and nothing listens on now (see the top of this file). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (!claim(port)) continue;
    if (await bindable(port, host)) return port;
  }
  throw new Error(`no free port in ${LOW}-${HIGH} after 200 tries`);
}

/** What a failed bind looks like from the outside: a listener's EADDRINUSE or a child that said so. */
export function isBindFailure(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    e?.code === 'EADDRINUSE' ||
    e?.code === 'BROKER_UNAVAILABLE' ||
    /address already in use|EADDRINUSE/i.test(String(e?.message ?? err))
  );
}

/**
 * Start a server that needs an explicit port: on a bind failure, try again on another port (a few
 * times), so a port taken between freePort() and the bind costs a retry, not a failed test.
 */
export async function startOnFreePort<T>(
  start: (port: number) => Promise<T>,
  opts: { attempts?: number; host?: string } = {},
): Promise<T> {
  const attempts = opts.attempts ?? 5;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    const port = await freePort(opts.host);
    try {
      return await start(port);
    } catch (err) {
      if (!isBindFailure(err)) throw err;
      last = err;
    }
  }
  throw new Error(`could not bind after ${attempts} ports: ${String(last)}`);
}
