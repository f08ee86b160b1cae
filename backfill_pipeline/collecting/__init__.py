"""Collecting dates and districts into the store, and the batch loop of a run. No Dagster here."""
