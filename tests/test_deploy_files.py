"""The deployment's files (issue 14): the instance file with Dagster's storage in PostgreSQL, chosen
by the environment, and the workspace that names the gRPC code server. Parsed as Dagster parses
them, with the variables they name."""

from __future__ import annotations

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.config_schema import ensure_workspace_config
from dagster_postgres.utils import pg_config, pg_url_from_config

from backfill_pipeline.devstack import (
    INSTANCE_YAML,
    LOCATION,
    POSTGRES_VARIABLES,
    WORKSPACE_YAML,
    instance_yaml,
    prepare_dagster_home,
)

PG = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "6543",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "s3cret",
    "DAGSTER_PG_DB": "dagster",
}


def test_without_postgres_variables_the_instance_is_the_repos_sqlite_one(tmp_path):
    assert instance_yaml({}) == INSTANCE_YAML.read_text()
    home = prepare_dagster_home(tmp_path / "home", {})
    config, _ = dagster_instance_config(str(home))
    assert "storage" not in config


def test_with_them_dagster_reads_postgres_storage_from_the_environment(tmp_path, monkeypatch):
    for name, value in PG.items():
        monkeypatch.setenv(name, value)
    home = prepare_dagster_home(tmp_path / "home", PG)
    text = (home / "dagster.yaml").read_text()
    assert "s3cret" not in text and "db.internal" not in text, "credentials stay in the environment"
    config, _ = dagster_instance_config(str(home))
    # As dagster-postgres reads it: its schema resolves the variables, then the URL it connects to.
    storage = process_config(pg_config(), config["storage"]["postgres"])
    assert storage.success, storage.errors
    assert (
        pg_url_from_config(storage.value) == "postgresql+psycopg2://dagster:s3cret@db.internal:6543/dagster"
    )
    # The rest of the repo's instance file is kept: the run queue, its limits, monitoring.
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert config["run_queue"]["max_user_code_failure_retries"] > 0


@pytest.mark.parametrize("missing", POSTGRES_VARIABLES[1:])
def test_a_half_configured_postgres_is_refused_naming_what_is_missing(tmp_path, missing):
    env = {k: v for k, v in PG.items() if k != missing}
    with pytest.raises(ValueError, match=missing):
        prepare_dagster_home(tmp_path / "home", env)
    assert not (tmp_path / "home").exists(), "nothing written"


def test_the_workspace_names_the_code_server_from_the_environment(monkeypatch):
    monkeypatch.setenv("BACKFILL_CODE_SERVER_HOST", "code.internal")
    monkeypatch.setenv("BACKFILL_CODE_SERVER_PORT", "4266")
    config = ensure_workspace_config(yaml.safe_load(WORKSPACE_YAML.read_text()), str(WORKSPACE_YAML))
    (entry,) = config["load_from"]
    server = entry["grpc_server"]
    assert (server["host"], server["port"]) == ("code.internal", 4266)
    assert server["location_name"] == LOCATION
