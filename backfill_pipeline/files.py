"""Atomic file writes: temporary name in the same directory, flush, fsync, `os.replace`."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_TEMP_MARK = ".tmp-"


def temp_path(target: Path) -> Path:
    """A hidden, unique temporary name next to `target` (same directory, so rename is atomic)."""
    return target.with_name(f".{target.name}{_TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_name(name: str) -> bool:
    """True for names made by `temp_path`: readers and the manifest must skip them."""
    return name.startswith(".") and _TEMP_MARK in name


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def fingerprint(path: Path) -> str:
    """Inode, size and change times: differs whenever `os.replace` puts a new file at `path`."""
    st = os.stat(path)
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path, *, durable: bool = True) -> None:
    """`mkdir -p`, and each directory it creates is fsync'd into its parent (a crash after a write
    must not lose the directory the write went into)."""
    missing = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            continue
        if durable:
            fsync_dir(new.parent)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temps(target: Path) -> None:
    """Remove the temporary files a writer of `target` left when it died (killed mid-write): the
    pid in their name is no longer running. A live writer's temporary file is left alone."""
    for temp in target.parent.glob(f".{target.name}{_TEMP_MARK}*"):
        pid_text = temp.name.rsplit(_TEMP_MARK, 1)[-1].split("-", 1)[0]
        if pid_text.isascii() and pid_text.isdigit() and not _alive(int(pid_text)):
            temp.unlink(missing_ok=True)


@contextmanager
def atomic_writer(path: Path, *, durable: bool = True, sync_dir: bool = True) -> Iterator[Path]:
    """A temporary path beside `path` to write; on a clean exit it replaces `path` (readers see
    the old or the new file, never a torn one), on an error it is removed. Sweeps the temporary
    files a killed writer of `path` left behind. `sync_dir=False` leaves the rename's durability
    to the caller's one `fsync_dir` after several writes."""
    make_dirs(path.parent, durable=durable)
    remove_dead_temps(path)
    tmp = temp_path(path)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as written:
                os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable and sync_dir:
        fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True, sync_dir: bool = True) -> None:
    """Write `data` to `path` through `atomic_writer`."""
    with atomic_writer(path, durable=durable, sync_dir=sync_dir) as tmp:
        tmp.write_bytes(data)
