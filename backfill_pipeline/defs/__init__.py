"""The Dagster layer: partitions, resources, assets, jobs, schedules and sensors over the core.

Thin on purpose: every rule lives in the core packages; these modules turn them into Dagster
definitions. `backfill_pipeline.definitions` assembles them into the one code location.
"""
