"""The child of tests/test_fault_disk_full.py, run under `unshare --user --map-root-user --mount`.

As root of its own user and mount namespaces it mounts a small tmpfs as the data root, collects a
date's summary (and one district in detail), fills the tmpfs with a ballast file leaving a little
space, runs a batch of six districts in detail that runs out of space mid-batch, then frees the
space, repairs what `verify` found and re-runs the failed keys. It prints one JSON document of what
it saw on stdout; the parent test asserts on it.

Where the disk runs out is chosen, not left to chance: the batch is first run on a twin tmpfs
holding a copy of the store, with plenty of space, and the free space is noted as each file is
opened for writing (an audit hook: the code under test is not touched). The ballast then leaves
exactly enough for the first two districts and the third one's detailed file, but not for the
manifest rewrite that follows it: the worst moment, a new file on disk that the date's index does
not describe yet. The districts after it find the disk full.

Usage: disk_full_worker.py '{"url": ..., "as_of": ..., "start": ..., "workdir": ..., "size": ...}'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PAGE = 4096
TARGET = 2  # the batch key (0-based) whose manifest rewrite finds the disk full


def mount_tmpfs(path: Path, size: str) -> dict:
    """Mount a tmpfs of `size` on `path` (we are root in our own user and mount namespaces)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    fstype = next((fields[2] for fields in mounts if fields[1] == str(path)), None)
    if fstype != "tmpfs":
        raise SystemExit(f"{path} is not a tmpfs after mounting it ({fstype})")
    st = os.statvfs(path)
    return {"fstype": fstype, "total": st.f_blocks * st.f_frsize}


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def pages(n_bytes: int) -> int:
    return -(-n_bytes // PAGE)


def hashes(root: Path, skip: Path | None = None) -> dict[str, str]:
    """sha256 of every regular file under `root` (lock files are empty and hold no data)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path != skip and not path.name.endswith(".lock")
    }


class WriteLog:
    """Free space of a data root each time a file under it is opened for writing (audit hook)."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.opened: list[tuple[str, int]] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if event != "open" or self.root is None or not isinstance(args[0], str | Path):
            return
        mode = args[1]
        path = str(args[0])
        if isinstance(mode, str) and any(c in mode for c in "wax") and path.startswith(f"{self.root}/"):
            self.opened.append((Path(path).name, free_bytes(self.root)))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    workdir = Path(cfg["workdir"])
    root, twin = workdir / "root", workdir / "twin"
    mounted = mount_tmpfs(root, cfg["size"])
    log = WriteLog()
    started = time.monotonic()

    # Imported only now: nothing touches the data root before it is mounted.
    import dagster as dg

    from backfill_pipeline.dataroot import COLLECTIONS, MANIFEST
    from backfill_pipeline.defs.assets import build_assets
    from backfill_pipeline.defs.partitions import daily_partitions, date_district_key
    from backfill_pipeline.defs.resources import resources
    from backfill_pipeline.files import is_temp_name
    from backfill_pipeline.names import DISTRICTS_PARTITION
    from backfill_pipeline.settings import Settings
    from backfill_pipeline.snapshots.store import PerDistrictFileSnapshotStore
    from backfill_pipeline.snapshots.verify import verify_store

    as_of = dt.date.fromisoformat(cfg["as_of"])
    summary, district = build_assets(
        daily_partitions(dt.date.fromisoformat(cfg["start"])), batch_size=10, retry_delay=0.1
    )

    def deployment(data_root: Path) -> dict:
        # The budget's file lives outside the small tmpfs: its journal grows by a few pages per
        # grant, which would move the moment the disk fills (measured by the twin run) by chance.
        # A budget store that meets a full disk is tested on its own (BudgetUnavailable).
        budget = workdir / f"budget-{data_root.name}.sqlite"
        return resources(
            Settings(
                dashboard_url=cfg["url"],
                data_root=data_root,
                rate=100,
                breaker_threshold=100,
                max_attempts=1,
                budget_store=str(budget),
            )
        )

    res = deployment(root)
    instance = dg.DagsterInstance.ephemeral()
    store = PerDistrictFileSnapshotStore(root)
    date_dir = root / "snapshots" / as_of.isoformat()

    def run_districts(first: str, last: str, on=None) -> dg.ExecuteInJobResult:
        inst, resources_ = on or (instance, res)
        return dg.materialize(
            [summary, district],
            selection=[district],
            instance=inst,
            resources=resources_,
            raise_on_error=False,
            tags={
                "dagster/asset_partition_range_start": str(date_district_key(as_of, first)),
                "dagster/asset_partition_range_end": str(date_district_key(as_of, last)),
            },
        )

    def describe(result: dg.ExecuteInJobResult) -> dict:
        failures = []
        for event in result.all_events:
            if event.event_type_value == "STEP_FAILURE":
                data = event.step_failure_data
                meta = data.user_failure_data.metadata if data and data.user_failure_data else {}
                failures.append({key: value.value for key, value in meta.items()})
        return {
            "success": result.success,
            "materialized": {
                str(e.partition): e.materialization.metadata["status"].value
                for e in result.get_asset_materialization_events()
            },
            "failures": failures,
            "step_retries": sum(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events),
        }

    def problems(**kw) -> list[dict]:
        return [p.to_dict() for p in verify_store(store, **kw)]

    def temp_files() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if is_temp_name(p.name))

    # 1. Something collected first: the date's summary, and one district in detail.
    first = dg.materialize(
        [summary], partition_key=as_of.isoformat(), instance=instance, resources=res, raise_on_error=False
    )
    districts = list(instance.get_dynamic_partitions(DISTRICTS_PARTITION))
    batch, earlier = districts[:6], districts[6]
    earlier_run = run_districts(earlier, earlier)
    obs: dict = {
        "mount": mounted,
        "setup": {
            "summary_success": first.success,
            "earlier": describe(earlier_run),
            "districts": len(districts),
            "batch": batch,
            "earlier_district": earlier,
            "used": mounted["total"] - free_bytes(root),
            "verify": problems(),
        },
    }
    before = hashes(root)

    # 2. The twin: the same batch on a copy of the store with plenty of space, to learn the free
    #    space at each file opened for writing; then the ballast that makes TARGET's manifest fail.
    mount_tmpfs(twin, cfg["size"])
    subprocess.run(["cp", "-a", f"{root}/.", str(twin)], check=True)
    twin_instance = dg.DagsterInstance.ephemeral()
    twin_instance.add_dynamic_partitions(DISTRICTS_PARTITION, districts)
    log.root, twin_start = twin, free_bytes(twin)
    twin_run = run_districts(batch[0], batch[-1], on=(twin_instance, deployment(twin)))
    log.root = None
    twin_date = twin / "snapshots" / as_of.isoformat()
    target_file = f".district_{batch[TARGET]}.json.tmp-"
    at_target = next(i for i, (name, _) in enumerate(log.opened) if name.startswith(target_file))
    free_at_manifest = next(
        free for name, free in log.opened[at_target:] if name.startswith(f".{MANIFEST}.tmp-")
    )
    manifest_pages = pages((twin_date / MANIFEST).stat().st_size)
    remaining = max(pages((twin_date / COLLECTIONS).stat().st_size) + 1, manifest_pages // 2) * PAGE
    leave = twin_start - free_at_manifest + remaining
    obs["twin"] = {
        "success": twin_run.success,
        "target": batch[TARGET],
        "writes": len(log.opened),
        "manifest_pages": manifest_pages,
        "remaining_at_manifest": remaining,
    }
    subprocess.run(["umount", str(twin)], check=True)

    ballast = root / "ballast.bin"
    with open(ballast, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, free_bytes(root) - leave)
    obs["ballast"] = {"bytes": ballast.stat().st_size, "free": free_bytes(root), "asked": leave}

    # 3. The batch, on a disk that fills up.
    full = run_districts(batch[0], batch[-1])
    after = hashes(root, skip=ballast)
    stored = store.read_manifest(as_of)
    indexed = {e.district_id: e.sha256 for e in stored.districts} if stored else {}
    obs["full"] = {
        **describe(full),
        "free": free_bytes(root),
        "temp_files": temp_files(),
        "missing": sorted(set(before) - set(after)),
        "changed": sorted(k for k in before if k in after and before[k] != after[k]),
        "detailed": [d for d in districts if (s := store.read_district(as_of, d)) and s.detail == "detailed"],
        "not_success": [
            d for d in districts if not ((s := store.read_district(as_of, d)) and s.status == "success")
        ],
        "unindexed": [
            d
            for d in batch
            if hashlib.sha256((date_dir / f"district_{d}.json").read_bytes()).hexdigest() != indexed.get(d)
        ],
        "dagster_status": {
            k: str(v)
            for k, v in (
                instance.get_status_by_partition(
                    district.key, [f"{as_of}|{d}" for d in batch], district.partitions_def
                )
                or {}
            ).items()
        },
        "verify": problems(),
    }

    # 4. Space freed: repair what verify found, then re-run the keys the run said failed.
    ballast.unlink()
    obs["freed"] = {"free": free_bytes(root), "repair": problems(repair=True), "verify": problems()}
    failed = [k for f in obs["full"]["failures"] for k in f.get("failed_partitions", [])]
    if failed:
        order = sorted((k.split("|")[1] for k in failed), key=batch.index)
        obs["heal"] = describe(run_districts(order[0], order[-1]))
    meta = store.read_metadata(as_of)
    final = {d: store.read_district(as_of, d) for d in districts}
    obs["final"] = {
        "materialized": sorted(instance.get_materialized_partitions(district.key)),
        "verify": problems(),
        "temp_files": temp_files(),
        "not_success": sorted(d for d, s in final.items() if s is None or s.status != "success"),
        "detailed": sorted(d for d, s in final.items() if s is not None and s.detail == "detailed"),
        "metadata_status": meta.status if meta else None,
        "metadata_detailed": sorted(meta.detailed_districts) if meta else None,
        "metadata_successful": len(meta.successful_districts) if meta else None,
        "missing": sorted(set(before) - set(hashes(root))),
    }
    obs["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(obs))


if __name__ == "__main__":
    main()
