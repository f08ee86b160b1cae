"""Planning a backfill: the request, scope, strategy, partitions and exact cost. No Dagster."""
