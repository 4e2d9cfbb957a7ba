// A private PKI for TLS tests, made with the openssl CLI in `dir`: a key and a self-signed certificate
// per CA (`<name>.key`, `<name>.crt`), and `server.key`/`server.crt` for the given subjectAltName
// (e.g. `IP:127.0.0.1`), signed by the first CA. Valid for two days.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export function makeTestPki(dir: string, o: { cas: readonly [string, ...string[]]; san: string }): void {
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const days = ['-days', '2'];
  for (const ca of o.cas)
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      ...days,
      '-subj',
      `/CN=${ca}`,
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.crt`,
    );
  const [signer] = o.cas;
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
  );
  fs.writeFileSync(path.join(dir, 'san.cnf'), `subjectAltName=${o.san}\n`);
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    `${signer}.crt`,
    '-CAkey',
    `${signer}.key`,
    '-CAcreateserial',
    ...days,
    '-extfile',
    'san.cnf',
    '-out',
    'server.crt',
  );
}
