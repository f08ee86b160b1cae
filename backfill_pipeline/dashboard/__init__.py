"""The dashboard client: URLs, program years, CSV parsing and polite HTTP. No Dagster here."""
