"""Whether a data root can hold the store safely: its filesystem renames atomically and enforces
file locks, which every write of the store relies on (the lock of a date, the atomic replace of a
file). Object-store mounts (s3fs, gcsfuse, ...) do neither, and are refused by type; any other
filesystem is probed. Runs check their root before they write.

What an operator puts under BACKFILL_DATA_ROOT (README, "Deploying beyond one machine"): a local
filesystem when every run executes on one machine; when runs execute on several, one shared POSIX
filesystem mounted at the same path on each (NFSv4 with locking, CephFS, a ReadWriteMany volume of
such a filesystem), never an object-store mount.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..dataroot import DataRoot
from ..files import temp_path

MOUNTINFO = Path("/proc/self/mountinfo")
# FUSE filesystems over object stores: no atomic rename over an existing file, no locks.
OBJECT_STORE_MOUNTS = frozenset(
    {
        "fuse.s3fs",
        "fuse.goofys",
        "fuse.gcsfuse",
        "fuse.mountpoint-s3",
        "fuse.rclone",
        "fuse.blobfuse",
        "fuse.blobfuse2",
        "fuse.s3ql",
    }
)
# Filesystems several machines mount at once: fine for runs on several machines when they lock.
SHARED_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "ceph", "fuse.ceph", "fuse.cephfs", "glusterfs", "fuse.glusterfs",
     "lustre", "gpfs", "beegfs", "fuse.juicefs", "9p"}
)  # fmt: skip


class UnsafeDataRoot(RuntimeError):
    """The data root cannot hold the store safely (the message says why and what to do)."""


@dataclass
class RootCheck:
    """What was found: the root, its mount point and filesystem type, and the problems."""

    root: Path
    mount_point: str | None = None
    filesystem: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def shared(self) -> bool:
        """Whether the filesystem is one several machines mount (NFS, CephFS, ...)."""
        return self.filesystem in SHARED_FILESYSTEMS

    def raise_if_unsafe(self) -> None:
        """UnsafeDataRoot naming every problem; nothing when there is none."""
        if self.problems:
            raise UnsafeDataRoot(
                f"BACKFILL_DATA_ROOT={self.root} cannot hold the store: " + "; ".join(self.problems)
            )


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    return text.encode().decode("unicode_escape") if "\\" in text else text


def mount_of(path: Path, mountinfo: str | None = None) -> tuple[str, str] | None:
    """(mount point, filesystem type) of the mount holding `path` (Linux's mountinfo); None when
    it cannot be read."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            return None
    target = str(path)
    best: tuple[str, str] | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or not tail:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, tail[0])
    return best


def check_data_root(root: DataRoot | Path | str, *, mountinfo: str | None = None) -> RootCheck:
    """Check that `root` can hold the store: a writable directory on a filesystem that is not an
    object-store mount, that replaces a file atomically and enforces locks. Writes and removes
    only its own probe files (under <root>/state/)."""
    path = DataRoot.of(root).path
    check = RootCheck(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        check.problems.append(f"cannot create the directory ({exc.strerror or exc})")
        return check
    found = mount_of(path.resolve(), mountinfo)
    if found is not None:
        check.mount_point, check.filesystem = found
    if check.filesystem in OBJECT_STORE_MOUNTS:
        check.problems.append(
            f"it is on {check.filesystem} at {check.mount_point}, an object-store mount, which neither "
            "replaces files atomically nor locks them; use a local or a shared POSIX filesystem (NFSv4)"
        )
        return check
    probe_dir = path / "state"
    try:
        probe_dir.mkdir(parents=True, exist_ok=True)
        _probe_rename(probe_dir)
        _probe_locks(probe_dir)
    except _ProbeFailed as failed:
        check.problems.append(str(failed))
    except OSError as exc:
        check.problems.append(f"cannot write there ({exc.strerror or exc})")
    return check


class _ProbeFailed(Exception):
    pass


def _probe_rename(directory: Path) -> None:
    target = directory / ".root-check"
    for content in (b"old", b"new"):
        tmp = temp_path(target)
        tmp.write_bytes(content)
        os.replace(tmp, target)
    try:
        if target.read_bytes() != b"new":
            raise _ProbeFailed("a file replaced by a rename does not read back as the new one")
    finally:
        target.unlink(missing_ok=True)


def _probe_locks(directory: Path) -> None:
    """Two open files of one lock file must exclude each other (flock locks an open file
    description): on a filesystem that ignores locks both succeed."""
    lock = directory / ".root-check.lock"
    with open(lock, "a") as first, open(lock, "a") as second:
        fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            try:
                fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # excluded, as it must be
            except OSError as exc:
                raise _ProbeFailed(f"file locks do not work there ({exc.strerror or exc})") from None
            fcntl.flock(second, fcntl.LOCK_UN)
            raise _ProbeFailed(
                "file locks are not enforced there (two holders of one lock): concurrent runs would "
                "corrupt the store; on NFS mount with locking (no `nolock`, `local_lock=none`)"
            )
        finally:
            fcntl.flock(first, fcntl.LOCK_UN)
