#!/usr/bin/python3
"""pcfs (tests/support/pcfs.ts mounts it for the power-cut tests): a passthrough FUSE filesystem that can forget every write that was not made durable,
as a power cut does. Writes go through to BACKING at once (so running programs see them), and each
non-durable write is remembered with the bytes it replaced. fsync/fdatasync of a file makes its
writes durable; so does a write through a descriptor opened O_SYNC/O_DSYNC. Directory changes are
taken as durable.

  pcfs.py BACKING MOUNT      run in the foreground; mounted until `fusermount -u MOUNT`
  touch BACKING.cut          arm the cut: after the unmount, BACKING is rolled back to its durable
                             state (the marker is removed)

  touch BACKING.hold         (tests only) a write through an O_SYNC/O_DSYNC descriptor then waits
                             before it reaches BACKING, as under load, and BACKING.held says one
                             waits; remove BACKING.hold to let it go

On exit it prints one JSON line: {"cut": bool, "files": N, "bytes_rolled_back": N}.
Debian: python3-fusepy (module `fusepy`), fuse3.
"""
import errno, json, os, sys, threading, time
from fusepy import FUSE, FuseOSError, Operations

SYNC_FLAGS = os.O_SYNC | os.O_DSYNC


class PowerCutFS(Operations):
    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.hold = self.root + '.hold'
        self.held = self.root + '.held'
        self._mu = threading.Lock()
        self.undo = {}      # backing path -> [ [offset, old_bytes, old_size], ... ] oldest first
        self.sync_fh = set()
        self.cut = False
        self.stats = {'writes': 0, 'sync_writes': 0, 'fsyncs': 0, 'truncates': 0}

    def _p(self, path):
        return os.path.join(self.root, path.lstrip('/'))

    # --- undo log -------------------------------------------------------------------------
    def _remember(self, real, offset, length):
        fd = os.open(real, os.O_RDONLY)   # the writer's descriptor may be write-only
        try:
            size = os.fstat(fd).st_size
            old = os.pread(fd, length, offset) if offset < size else b''
        finally:
            os.close(fd)
        self.undo.setdefault(real, []).append([offset, old, size])

    def _durable_range(self, real, offset, length):
        """bytes [offset, offset+length) were just written durably: earlier undo entries must not
        restore them (keep only the parts of their old bytes outside the range)."""
        end = offset + length
        kept = []
        for off, old, size in self.undo.get(real, []):
            oend = off + len(old)
            if oend <= offset or off >= end:
                kept.append([off, old, size]); continue
            if off < offset:
                kept.append([off, old[:offset - off], size])
            if oend > end:
                kept.append([end, old[end - off:], size])
        if real in self.undo:
            self.undo[real] = kept

    def rollback(self):
        files = 0; rolled = 0
        for real, entries in self.undo.items():
            if not entries or not os.path.exists(real):
                continue
            files += 1
            fd = os.open(real, os.O_WRONLY)
            try:
                for off, old, size in reversed(entries):
                    if old:
                        os.pwrite(fd, old, off); rolled += len(old)
                    if os.fstat(fd).st_size > size:
                        rolled += os.fstat(fd).st_size - size
                        os.ftruncate(fd, size)
                os.fsync(fd)
            finally:
                os.close(fd)
        return files, rolled

    # --- filesystem -------------------------------------------------------------------------
    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._p(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        return {k: getattr(st, k) for k in ('st_atime', 'st_ctime', 'st_gid', 'st_mode', 'st_mtime',
                                            'st_nlink', 'st_size', 'st_uid')}

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(self._p(path))

    def access(self, path, mode):
        if not os.access(self._p(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        return os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        return os.chown(self._p(path), uid, gid)

    def mkdir(self, path, mode):
        return os.mkdir(self._p(path), mode)

    def rmdir(self, path):
        return os.rmdir(self._p(path))

    def unlink(self, path):
        with self._mu:
            self.undo.pop(self._p(path), None)
        return os.unlink(self._p(path))

    def rename(self, old, new):
        with self._mu:
            if self._p(old) in self.undo:
                self.undo[self._p(new)] = self.undo.pop(self._p(old))
        return os.rename(self._p(old), self._p(new))

    def link(self, target, name):
        return os.link(self._p(name), self._p(target))

    def symlink(self, name, target):
        return os.symlink(target, self._p(name))

    def readlink(self, path):
        return os.readlink(self._p(path))

    def statfs(self, path):
        st = os.statvfs(self._p(path))
        return {k: getattr(st, k) for k in ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail',
                                            'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')}

    def utimens(self, path, times=None):
        return os.utime(self._p(path), times)

    def open(self, path, flags):
        fh = os.open(self._p(path), flags)
        if flags & SYNC_FLAGS:
            self.sync_fh.add(fh)
        return fh

    def create(self, path, mode, fi=None):
        return os.open(self._p(path), os.O_RDWR | os.O_CREAT, mode)

    def read(self, path, length, offset, fh):
        return os.pread(fh, length, offset)

    def _wait_while_held(self):
        if not os.path.exists(self.hold):
            return
        with open(self.held, 'w'):
            pass
        while os.path.exists(self.hold):
            time.sleep(0.005)
        try:
            os.unlink(self.held)
        except FileNotFoundError:
            pass  # another held write removed it

    def write(self, path, data, offset, fh):
        real = self._p(path)
        if fh in self.sync_fh:
            self._wait_while_held()
        with self._mu:
            self.stats['writes'] += 1
            if fh in self.sync_fh:
                self.stats['sync_writes'] += 1
                n = os.pwrite(fh, data, offset)
                self._durable_range(real, offset, n)
                return n
            self._remember(real, offset, len(data))
            return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        real = self._p(path)
        with self._mu:
            self.stats['truncates'] += 1
            fd = os.open(real, os.O_RDWR)
            try:
                size = os.fstat(fd).st_size
                if length < size:
                    self.undo.setdefault(real, []).append([length, os.pread(fd, size - length, length), size])
                else:
                    self.undo.setdefault(real, []).append([size, b'', size])
                os.ftruncate(fd, length)
            finally:
                os.close(fd)

    def fsync(self, path, datasync, fh):
        with self._mu:
            os.fsync(fh)
            self.stats['fsyncs'] += 1
            self.undo[self._p(path)] = []
        return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        self.sync_fh.discard(fh)
        return os.close(fh)


def main():
    backing, mount = sys.argv[1], sys.argv[2]
    fs = PowerCutFS(backing)
    # kernel_cache: keep the kernel's cached pages when a file is opened. Without it every open drops
    # them, and a page whose write the kernel had already copied into its cache but pcfs had not yet
    # applied to BACKING is read back from BACKING, old, and stays cached after the write returns: a
    # process opening the kit's LMDB file beside a writer made the next commit start from a stale meta
    # page and silently drop the commits before it (issue #18, tests/integration/pcfs-cache.test.ts).
    # Every change goes through this mount while it is mounted, so the kept cache is never out of date.
    FUSE(fs, mount, foreground=True, nothreads=False, kernel_cache=True)
    marker = os.path.realpath(backing) + '.cut'
    fs.cut = os.path.exists(marker)
    files, rolled = fs.rollback() if fs.cut else (0, 0)
    if fs.cut:
        os.unlink(marker)
    print(json.dumps({'cut': fs.cut, 'files': files, 'bytes_rolled_back': rolled, **fs.stats}), flush=True)


if __name__ == '__main__':
    main()
