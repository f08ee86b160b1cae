"""District configuration and scope resolution (which districts a collection covers). No Dagster."""

from .configuration import DistrictConfig, DistrictConfigError, normalise_ids
from .resolution import OutOfScope, ScopeResolution, district_partitions_change, resolve_scope

__all__ = [
    "DistrictConfig",
    "DistrictConfigError",
    "OutOfScope",
    "ScopeResolution",
    "district_partitions_change",
    "normalise_ids",
    "resolve_scope",
]
