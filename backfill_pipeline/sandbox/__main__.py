"""`python -m backfill_pipeline.sandbox [--port N ...]`: serve the sandbox dashboard."""

import sys

from .command import main

sys.exit(main())
