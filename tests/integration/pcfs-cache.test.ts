// suite-runner: shared process — short, and changes nothing process-wide (tests/support/suite-runner.ts)
// Issue #18: pcfs (tests/support/pcfs.py) must not lose a write from the kernel's page cache when
// another process opens the file while pcfs is still applying it. Without `kernel_cache` the FUSE
// kernel module drops a file's cached pages at every open; a page whose write had been copied into the
// cache but not yet applied to BACKING by pcfs was then read back from BACKING, old, and stayed in the
// cache after the write returned. LMDB reads its pages and meta pages through that cache: the next
// commit, by either process, then started from a stale meta page and silently dropped the last commits
// (an order answered 201 "never in the store"). That is what `popkit sync` opening the store beside a
// busy checkout did once in tests/e2e/power-cut-sync.test.ts. pcfs's hold (BACKING.hold) makes the
// window wide and the order of events fixed, so these tests do not depend on timing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { dataLayout } from '../../core/data-dir.ts';
import { openKitStore } from '../../core/store/index.ts';
import { tempDir } from '../support/checkout.ts';
import { mountPcfs } from '../support/pcfs.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** Another process opens `file` and reads its first pages, as any process opening an LMDB env does. */
function otherProcessOpens(code: string): void {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, `the other process failed: ${r.stderr}`);
}

test('a page written while another process opens and reads the file keeps the written bytes', async () => {
  const root = tempDir('popkit-pcfs-cache-');
  const fsys = await mountPcfs(path.join(root, 'backing'), path.join(root, 'mnt'));
  const file = path.join(fsys.mount, 'f');
  try {
    fs.writeFileSync(file, Buffer.alloc(8192, 'a'));
    const fh = await fsp.open(file, fs.constants.O_RDWR | fs.constants.O_DSYNC);
    try {
      const hold = fsys.holdSyncWrites();
      let writing: Promise<unknown> | undefined;
      try {
        writing = fh.write(Buffer.alloc(4096, 'b'), 0, 4096, 0);
        await hold.held();
        otherProcessOpens(
          `import fs from 'node:fs'; const fd = fs.openSync(${JSON.stringify(file)}, 'r'); fs.readSync(fd, Buffer.alloc(8192), 0, 8192, 0); fs.closeSync(fd);`,
        );
      } finally {
        hold.release();
      }
      await writing;
      // read through the descriptor that wrote: the cached page, no new open to refresh it
      const page = Buffer.alloc(4096);
      await fh.read(page, 0, 4096, 0);
      assert.equal(
        page.toString('latin1', 0, 8),
        'bbbbbbbb',
        'the cached page lost the write pcfs was applying when the other process opened the file',
      );
    } finally {
      await fh.close();
    }
  } finally {
    await fsys.unmount();
  }
});

test('a commit in flight while another process opens the store is kept, and so are the ones before it', async () => {
  const root = tempDir('popkit-pcfs-lmdb-');
  const fsys = await mountPcfs(path.join(root, 'backing'), path.join(root, 'mnt'));
  const dataDir = path.join(fsys.mount, 'data');
  const file = dataLayout(dataDir).store;
  const store = openKitStore(dataDir);
  try {
    await store.meta.put('k1', 1);
    await store.meta.put('k2', 2);
    const hold = fsys.holdSyncWrites();
    let third: Promise<unknown> | undefined;
    try {
      // checkout's commit: its data pages are fdatasynced, its meta page write (O_DSYNC) is held in pcfs
      third = store.meta.put('k3', 3);
      await hold.held();
      // sync (or `popkit status`) starting beside it: opening the env reads the meta pages
      otherProcessOpens(
        `import { open } from 'lmdb'; const root = open({ path: ${JSON.stringify(file)}, readOnly: true }); root.get('x'); await root.close();`,
      );
    } finally {
      hold.release();
    }
    await third;
    // the next commit starts from the meta page as the page cache shows it
    await store.meta.put('k4', 4);
  } finally {
    await store.close();
    await fsys.unmount();
  }
  const after = openKitStore(path.join(root, 'backing', 'data'));
  try {
    const missing = ['k1', 'k2', 'k3', 'k4'].filter((k) => after.meta.get(k) === undefined);
    assert.deepEqual(missing, [], 'committed keys missing from the store');
  } finally {
    await after.close();
  }
});
