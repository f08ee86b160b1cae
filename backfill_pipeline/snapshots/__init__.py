"""The snapshot store: per-date directories of per-district JSON files. No Dagster here."""

from .builders import detailed_district, failed_district, summary_district, unavailable_district
from .derived import derive_detailed_figures, derive_summary_figures
from .models import (
    DistrictError,
    DistrictFigures,
    DistrictSnapshot,
    Manifest,
    ManifestEntry,
    Metadata,
    RankingEntry,
    Rankings,
    SourceReport,
    SummaryFigures,
    WriteContext,
)
from .rankings import compute_borda_rankings
from .readers import CoverageMatrix, DateSnapshot
from .store import PerDistrictFileSnapshotStore, WriteResult
from .verify import Problem

__all__ = [
    "CoverageMatrix",
    "DateSnapshot",
    "DistrictError",
    "DistrictFigures",
    "DistrictSnapshot",
    "Manifest",
    "ManifestEntry",
    "Metadata",
    "PerDistrictFileSnapshotStore",
    "Problem",
    "RankingEntry",
    "Rankings",
    "SourceReport",
    "SummaryFigures",
    "WriteContext",
    "WriteResult",
    "compute_borda_rankings",
    "derive_detailed_figures",
    "derive_summary_figures",
    "detailed_district",
    "failed_district",
    "summary_district",
    "unavailable_district",
]
