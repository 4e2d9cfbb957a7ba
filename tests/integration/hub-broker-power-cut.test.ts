// The embedded brokers of `popkit up` (core/embedded-broker.ts: the local bus and the embedded hub's
// broker) after a power cut (issue #18). Mosquitto 2 refuses to start on a persistence file it cannot
// read; a torn mosquitto.db must not keep the kit down at boot: it is kept aside and the broker starts
// without it (nothing acknowledged lives only there). On pcfs (tests/support/pcfs.ts) a cut after
// Mosquitto saved its database and a cut while it runs both leave a broker that starts again.
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import mqtt from 'mqtt';
import { type MosquittoBroker, startEmbeddedBroker } from '../../core/embedded-broker.ts';
import { tempDir } from '../support/checkout.ts';
import { connectOutcome } from '../support/hub-link.ts';
import { mountPcfs } from '../support/pcfs.ts';

const mountPoints: string[] = [];
const brokers: MosquittoBroker[] = [];
after(async () => {
  for (const b of brokers) await b.close();
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  for (const m of mountPoints) if (mounts.includes(` ${m} fuse`)) spawnSync('fusermount', ['-uz', m]);
});

async function broker(dir: string): Promise<MosquittoBroker> {
  const b = await startEmbeddedBroker({ port: 0, dir, name: 'hub broker' });
  brokers.push(b);
  return b;
}

const MAGIC = Buffer.from([0x00, 0xb5, 0x00, ...Buffer.from('mosquitto db')]);
const tears: Array<[string, () => Buffer]> = [
  ['garbage', () => Buffer.from('this is not a mosquitto database at all '.repeat(40))],
  ['only its header', () => MAGIC],
  ['zeros', () => Buffer.alloc(4096)],
];

for (const [name, bytes] of tears) {
  test(`a torn mosquitto.db (${name}) is kept aside and the broker starts`, async () => {
    const dir = tempDir('popkit-mosq-torn-');
    fs.writeFileSync(path.join(dir, 'mosquitto.db'), bytes());
    const b = await broker(dir);
    assert.equal(await connectOutcome(b.url), 'connected');
    const aside = fs.readdirSync(dir).filter((f) => f.startsWith('mosquitto.db.damaged-'));
    // Mosquitto itself may read some tears as an empty database: then nothing needs moving
    if (aside.length) assert.deepEqual(fs.readFileSync(path.join(dir, aside[0]!)), bytes());
    await b.close();
  });
}

test('a broker refused for another reason keeps its database', async () => {
  const dir = tempDir('popkit-mosq-busy-');
  const a = await broker(dir);
  await a.close();
  const db = path.join(dir, 'mosquitto.db');
  const saved = fs.readFileSync(db);
  const other = await broker(tempDir('popkit-mosq-other-'));
  // a second broker on a busy port fails to start: not a database problem, nothing is moved
  const { MosquittoBroker } = await import('../../core/embedded-broker.ts');
  const clash = await MosquittoBroker.create({ port: other.port, dir });
  await assert.rejects(clash.start(), /already in use/);
  assert.deepEqual(fs.readFileSync(db), saved);
  await other.close();
});

/** An offline persistent session with `n` QoS 1 messages queued for it: what mosquitto.db carries. */
async function queueFor(url: string, n: number): Promise<void> {
  const sub = await mqtt.connectAsync(url, { clientId: 'pc-sub', clean: false, protocolVersion: 4 });
  await sub.subscribeAsync('pc/#', { qos: 1 });
  await sub.endAsync();
  const pub = await mqtt.connectAsync(url, { protocolVersion: 4 });
  for (let i = 0; i < n; i++) await pub.publishAsync('pc/x', `m${i}`, { qos: 1 });
  await pub.endAsync();
}

for (const when of ['after it saved', 'while it runs'] as const) {
  test(`power cut ${when}: the broker on pcfs starts again`, async () => {
    const root = tempDir('popkit-mosq-pcfs-');
    const mnt = path.join(root, 'mnt');
    mountPoints.push(mnt);
    let fsys = await mountPcfs(path.join(root, 'backing'), mnt);
    const dir = path.join(mnt, 'hub-broker');
    let b = await broker(dir);
    await queueFor(b.url, 50);
    if (when === 'after it saved')
      await b.close(); // SIGTERM: Mosquitto writes mosquitto.db
    else {
      // SIGKILL at once: a power cut does not let it save
      const child = (b as unknown as { child: ChildProcess }).child;
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      await b.close();
    }
    const cut = await fsys.cut();
    assert.equal(cut.cut, true);
    const dbFile = path.join(root, 'backing', 'hub-broker', 'mosquitto.db');
    const survived = fs.existsSync(dbFile) ? fs.statSync(dbFile).size : -1;
    fsys = await mountPcfs(path.join(root, 'backing'), mnt);
    try {
      b = await broker(dir);
      assert.equal(await connectOutcome(b.url), 'connected');
      // what Mosquitto kept: measured and printed (nothing acknowledged depends on it)
      const sub = await mqtt.connectAsync(b.url, { clientId: 'pc-sub', clean: false, protocolVersion: 4 });
      let got = 0;
      sub.on('message', () => got++);
      await new Promise((r) => setTimeout(r, 500));
      await sub.endAsync();
      console.log(
        `cut ${when}: mosquitto.db ${survived} bytes after the cut (${cut.bytes_rolled_back} bytes rolled back, ${cut.fsyncs} fsyncs); ${got} of 50 queued messages delivered after the restart`,
      );
      await b.close();
    } finally {
      await fsys.unmount();
    }
  });
}
