"""Whether a data root can hold the store safely: its filesystem renames atomically and enforces
file locks, which every write of the store relies on (the lock of a date, the atomic replace of a
file). Object-store mounts (s3fs, gcsfuse, ...) do neither, and are refused by type; NFS mounted
with locks kept local (`nolock`, `local_lock=...`) is refused by its options, as its locks would
not hold across machines; any other filesystem is probed. Runs check their root before they write.
An I/O error while probing (a full disk, a lost mount) is left an OSError: transient, not a verdict.

What an operator puts under BACKFILL_DATA_ROOT (README, "Deploying beyond one machine"): a local
filesystem when every run executes on one machine; when runs execute on several, one shared POSIX
filesystem mounted at the same path on each (NFSv4 with locking, CephFS, a ReadWriteMany volume of
such a filesystem), never an object-store mount.
"""

from __future__ import annotations

import fcntl
import os
import re
import uuid
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
NFS = frozenset({"nfs", "nfs4"})
_OCTAL = re.compile(r"\\([0-7]{3})")


class UnsafeDataRoot(RuntimeError):
    """The data root cannot hold the store safely (the message says why and what to do)."""


@dataclass
class Mount:
    """The mount holding a path: its mount point, filesystem type and options."""

    point: str
    filesystem: str
    options: frozenset[str] = frozenset()


@dataclass
class RootCheck:
    """What was found: the root, the mount holding it, and the problems."""

    root: Path
    mount: Mount | None = None
    problems: list[str] = field(default_factory=list)

    def raise_if_unsafe(self) -> None:
        """UnsafeDataRoot naming every problem; nothing when there is none."""
        if self.problems:
            why = "; ".join(self.problems)
            raise UnsafeDataRoot(f"BACKFILL_DATA_ROOT={self.root} cannot hold the store: {why}")


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal bytes (\040 ...); the rest
    # of the path is UTF-8 as it is.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def mount_of(path: Path, mountinfo: str | None = None) -> Mount | None:
    """The mount holding `path` (Linux's mountinfo); None when it cannot be read."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            return None
    target = str(path)
    best: Mount | None = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or not tail:
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.point)):
            options = set(fields[5].split(","))
            if len(tail) > 2:
                options |= set(tail[2].split(","))
            best = Mount(point, tail[0], frozenset(options))
    return best


def check_data_root(root: DataRoot | Path | str, *, mountinfo: str | None = None) -> RootCheck:
    """Check that `root` can hold the store: not an object-store mount, not NFS with local-only
    locks, a filesystem that replaces a file atomically and enforces locks. Creates the root;
    writes and removes only its own probe files (under <root>/state/). OSError when the probe
    itself cannot write (transient: the disk, the mount)."""
    path = DataRoot.of(root).path
    path.mkdir(parents=True, exist_ok=True)
    check = RootCheck(path, mount_of(path.resolve(), mountinfo))
    mount = check.mount
    if mount is not None and mount.filesystem in OBJECT_STORE_MOUNTS:
        check.problems.append(
            f"it is on {mount.filesystem} at {mount.point}, an object-store mount, which neither "
            "replaces files atomically nor locks them; use a local or a shared POSIX filesystem (NFSv4)"
        )
        return check
    if mount is not None and mount.filesystem in NFS:
        local = sorted(
            o
            for o in mount.options
            if o == "nolock" or o.startswith("local_lock=") and o != "local_lock=none"
        )
        if local:
            check.problems.append(
                f"it is on NFS at {mount.point} mounted with {', '.join(local)}: its locks would hold on "
                "one machine only; mount it with locking (no nolock, local_lock=none)"
            )
            return check
    probe_dir = path / "state"
    probe_dir.mkdir(parents=True, exist_ok=True)
    # Names of this check's own: runs that start together each probe their own files.
    probe = probe_dir / f".root-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _probe_rename(probe)
        _probe_locks(probe.with_suffix(".lock"))
    except _ProbeFailed as failed:
        check.problems.append(str(failed))
    finally:
        probe.unlink(missing_ok=True)
        probe.with_suffix(".lock").unlink(missing_ok=True)
    return check


def _local_lock(option: str) -> bool:
    return option.startswith("local_lock=") and option != "local_lock=none"


class _ProbeFailed(Exception):
    pass


def _probe_rename(target: Path) -> None:
    for content in (b"old", b"new"):
        tmp = temp_path(target)
        tmp.write_bytes(content)
        os.replace(tmp, target)
    if target.read_bytes() != b"new":
        raise _ProbeFailed("a file replaced by a rename does not read back as the new one")


def _probe_locks(lock: Path) -> None:
    """Two open files of one lock file must exclude each other (flock locks an open file
    description): on a filesystem that ignores locks both succeed."""
    with open(lock, "a") as first, open(lock, "a") as second:
        try:
            fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise _ProbeFailed(f"file locks do not work there ({exc.strerror or exc})") from None
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
