"""`python -m backfill_pipeline.sandbox [--port N ...]`: serve the sandbox dashboard."""

from .command import main

main()
