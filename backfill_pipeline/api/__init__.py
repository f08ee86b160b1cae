"""The product's front door over Dagster: a GraphQL client, the backfill service, the REST API."""
