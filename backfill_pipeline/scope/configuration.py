"""The configured districts: `config/districts.json` and its append-only change log."""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from filelock import FileLock
from pydantic import Field, ValidationError

from ..dataroot import DataRoot
from ..district_ids import InvalidDistrictId, normalise_district_id, sort_district_ids
from ..files import atomic_write_bytes
from ..snapshots.models import SCHEMA_VERSION, CamelModel, DistrictId, utc_now

log = logging.getLogger(__name__)


class DistrictConfigDocument(CamelModel):
    """`config/districts.json`: the configured districts (empty means every available one)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    districts: list[DistrictId] = Field(default_factory=list)
    updated_at: dt.datetime = Field(default_factory=utc_now)


ChangeAction = Literal["add", "remove", "set"]


class DistrictConfigChange(CamelModel):
    """One line of `config/districts.log.jsonl`."""

    schema_version: Literal[1] = SCHEMA_VERSION
    timestamp: dt.datetime = Field(default_factory=utc_now)
    action: ChangeAction
    ids: list[DistrictId]
    resulting: list[DistrictId]


class DistrictConfigError(RuntimeError):
    """The configuration file exists but cannot be read."""


def normalise_ids(raw_ids: Iterable[str]) -> list[str]:
    """Normalise every id or raise InvalidDistrictId naming all the bad ones (nothing half-done)."""
    good, bad = [], []
    for raw in raw_ids:
        try:
            good.append(normalise_district_id(raw))
        except InvalidDistrictId:
            bad.append(raw)
    if bad:
        listed = ", ".join(repr(b) for b in bad)
        raise InvalidDistrictId(
            f"invalid district id(s) {listed}: expected digits (like 42 or 09) or one letter (F, U)"
        )
    return sort_district_ids(good)


class DistrictConfig:
    """The configured districts under `<root>/config/`; an empty set means every district."""

    def __init__(self, root: DataRoot | Path | str) -> None:
        self.root = DataRoot.of(root)
        self.path = self.root.districts_file
        self.log_path = self.root.districts_log

    def list(self) -> builtins.list[str]:
        """The configured district ids, ordered; [] when none are configured."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            return sort_district_ids(DistrictConfigDocument.model_validate_json(data).districts)
        except (ValidationError, ValueError) as exc:
            raise DistrictConfigError(f"{self.path} is not a valid district configuration") from exc

    def add(self, ids: Iterable[str]) -> builtins.list[str]:
        """Add districts; returns the resulting configuration."""
        wanted = normalise_ids(ids)
        return self._change("add", wanted, lambda current: set(current) | set(wanted))

    def remove(self, ids: Iterable[str]) -> builtins.list[str]:
        """Remove districts (unconfigured ids are ignored); returns the resulting configuration."""
        wanted = normalise_ids(ids)
        return self._change("remove", wanted, lambda current: set(current) - set(wanted))

    def set(self, ids: Iterable[str]) -> builtins.list[str]:
        """Replace the configuration; an empty list means every available district."""
        wanted = normalise_ids(ids)
        return self._change("set", wanted, lambda current: set(wanted))

    def changes(self) -> builtins.list[DistrictConfigChange]:
        """The change log, oldest first (a torn last line from a crash is skipped)."""
        try:
            lines = self.log_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            try:
                found.append(DistrictConfigChange.model_validate_json(line))
            except (ValidationError, ValueError):
                continue
        return found

    def _change(
        self,
        action: ChangeAction,
        ids: builtins.list[str],
        apply: Callable[[builtins.list[str]], builtins.set[str]],
    ) -> builtins.list[str]:
        self.root.config_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.root.districts_lock):
            resulting = sort_district_ids(apply(self.list()))
            config = DistrictConfigDocument(districts=resulting)
            atomic_write_bytes(self.path, config.model_dump_json(indent=2).encode())
            change = DistrictConfigChange(action=action, ids=ids, resulting=resulting)
            # Appended after the file is replaced: the log never claims a change not made.
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(change.model_dump_json() + "\n")
                f.flush()
                os.fsync(f.fileno())
        log.info("districts %s %s -> %s", action, ids, resulting or "(all available)")
        return resulting
