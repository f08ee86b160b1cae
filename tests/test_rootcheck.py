"""The data root's check (issue 14, point 4): object-store mounts are refused by type, any other
filesystem is probed for atomic renames and enforced locks; runs and `verify` refuse an unsafe
root naming why, before anything is written."""

from __future__ import annotations

import datetime as dt
import fcntl
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from conftest import published_dates, settings

from backfill_pipeline.cli import main
from backfill_pipeline.defs.assets import build_assets
from backfill_pipeline.defs.partitions import daily_partitions
from backfill_pipeline.defs.resources import resources
from backfill_pipeline.snapshots import rootcheck
from backfill_pipeline.snapshots.rootcheck import UnsafeDataRoot, check_data_root, mount_of

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /mnt/bucket rw,nosuid shared:9 - fuse.s3fs s3fs rw,user_id=0
31 22 0:41 / /mnt/nfs rw,relatime shared:10 - nfs4 server:/export rw,vers=4.2,local_lock=none
32 22 0:42 / /mnt/with\\040space rw - tmpfs tmpfs rw
33 22 0:43 / /mnt/donn\xc3\xa9es\\040x rw - fuse.gcsfuse bucket rw
"""


def test_the_mount_holding_a_path_is_the_longest_prefix():
    assert mount_of(Path("/mnt/bucket/data"), MOUNTINFO).filesystem == "fuse.s3fs"
    nfs = mount_of(Path("/mnt/nfs"), MOUNTINFO)
    assert (nfs.point, nfs.filesystem) == ("/mnt/nfs", "nfs4") and "local_lock=none" in nfs.options
    assert mount_of(Path("/mnt/nfsother/x"), MOUNTINFO).point == "/"
    assert mount_of(Path("/mnt/with space/d"), MOUNTINFO).filesystem == "tmpfs"
    assert mount_of(Path("/x"), "garbage\n\n- \n") is None


def test_a_non_ascii_object_store_mount_is_still_recognised():
    text = MOUNTINFO.encode("latin-1").decode("utf-8")  # mountinfo is UTF-8 as it is
    assert mount_of(Path("/mnt/données x/data"), text).filesystem == "fuse.gcsfuse"


def test_a_local_root_passes_and_leaves_nothing_behind(tmp_path):
    check = check_data_root(tmp_path / "data")
    assert check.problems == [] and check.mount is not None
    check.raise_if_unsafe()
    assert list((tmp_path / "data" / "state").iterdir()) == []


def test_an_object_store_mount_is_refused_by_type(tmp_path):
    fake = f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n30 22 0:40 / {tmp_path} rw - fuse.gcsfuse bucket rw\n"
    with pytest.raises(UnsafeDataRoot, match="object-store mount.*NFSv4"):
        check_data_root(tmp_path / "data", mountinfo=fake).raise_if_unsafe()


@pytest.mark.parametrize("options", ["rw,vers=4.2,local_lock=all", "rw,nolock", "rw,local_lock=flock"])
def test_nfs_with_locks_kept_on_one_machine_is_refused(tmp_path, options):
    fake = f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n31 22 0:41 / {tmp_path} rw - nfs4 server:/x {options}\n"
    with pytest.raises(UnsafeDataRoot, match="one machine only"):
        check_data_root(tmp_path / "data", mountinfo=fake).raise_if_unsafe()
    locking = fake.replace(options, "rw,vers=4.2,local_lock=none")
    assert check_data_root(tmp_path / "data", mountinfo=locking).problems == []


def test_runs_starting_together_all_pass_the_check(tmp_path):
    # Each check probes files of its own: four processes at once, many times, no false verdict.
    with ProcessPoolExecutor(4) as pool:
        found = list(pool.map(_problems, [str(tmp_path)] * 200))
    assert all(p == [] for p in found), [p for p in found if p][:3]


def _problems(root: str) -> list[str]:
    return check_data_root(root).problems


def test_a_filesystem_that_ignores_locks_is_refused(tmp_path, monkeypatch):
    real = fcntl.flock

    def ignored(fd, operation):  # what a FUSE mount without lock support does: grant everything
        if operation & fcntl.LOCK_NB:
            return None
        return real(fd, operation)

    monkeypatch.setattr(rootcheck.fcntl, "flock", ignored)
    with pytest.raises(UnsafeDataRoot, match="locks are not enforced"):
        check_data_root(tmp_path).raise_if_unsafe()


def test_an_io_error_while_probing_stays_an_os_error(tmp_path):
    """Not a verdict on the root: a full disk or a lost mount is transient."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        check_data_root(blocker / "data")


def test_a_run_refuses_an_unsafe_root_before_writing_anything(sandbox, tmp_path, monkeypatch):
    fake = f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n30 22 0:40 / {tmp_path} rw - fuse.s3fs bucket rw\n"
    monkeypatch.setattr(rootcheck, "MOUNTINFO", tmp_path.parent / "mountinfo-fake")
    (tmp_path.parent / "mountinfo-fake").write_text(fake)
    (day,) = published_dates(dt.date(2025, 3, 10))
    summary, _ = build_assets(daily_partitions(day), batch_size=5)
    result = dg.materialize(
        [summary],
        partition_key=day.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources(settings(dashboard_url=sandbox.url, data_root=tmp_path / "data")),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    assert "fuse.s3fs" in str(failure.event_specific_data.error)
    assert not (tmp_path / "data" / "snapshots").exists(), "nothing written"


def test_verify_reports_an_unsafe_root(tmp_path, monkeypatch):
    fake = f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n30 22 0:40 / {tmp_path} rw - fuse.s3fs bucket rw\n"
    monkeypatch.setattr(rootcheck, "MOUNTINFO", tmp_path.parent / "mountinfo-fake-verify")
    (tmp_path.parent / "mountinfo-fake-verify").write_text(fake)
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(main, ["verify", "--root", str(tmp_path / "data"), "--json"])
    assert result.exit_code == 1
    assert '"kind": "data-root"' in result.stdout and "fuse.s3fs" in result.stdout
