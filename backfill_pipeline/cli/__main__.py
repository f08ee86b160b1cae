"""`python -m backfill_pipeline.cli ...`, the same as the `backfill-pipeline` console script."""

from . import main

main(prog_name="backfill-pipeline")
