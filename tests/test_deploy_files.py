"""The deployment's files (issue 14): the instance file with Dagster's storage in PostgreSQL, chosen
by the environment, and the workspace that names the gRPC code server. Parsed as Dagster parses
them, with the variables they name."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.config_schema import ensure_workspace_config
from dagster_postgres.utils import pg_config, pg_url_from_config

from backfill_pipeline.dashboard.budget import POSTGRES_VARIABLES
from backfill_pipeline.devstack import (
    INSTANCE_YAML,
    LOCATION,
    WORKSPACE_YAML,
    code_server_argv,
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


# -- the deployment files: Dockerfile, docker-compose.yaml, deploy/helm-values.yaml -----------------

REPO = WORKSPACE_YAML.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
HELM = yaml.safe_load((REPO / "deploy" / "helm-values.yaml").read_text())
INSTANCE = yaml.safe_load(INSTANCE_YAML.read_text())
OURS = [name for name in COMPOSE["services"] if name != "postgres"]
# Read by workspace.yaml, not by the settings.
WORKSPACE_VARIABLES = {"BACKFILL_CODE_SERVER_HOST", "BACKFILL_CODE_SERVER_PORT"}


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile line, continuations joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def known_variable(name: str) -> bool:
    from backfill_pipeline.settings import Settings, variable

    return (
        name in WORKSPACE_VARIABLES
        or name in POSTGRES_VARIABLES
        or name in {variable(field) for field in Settings.model_fields}
    )


def test_the_image_builds_from_files_that_exist_and_serves_the_code_location(tmp_path):
    steps = dockerfile()
    for instruction, arguments in steps:
        if instruction == "COPY":
            *sources, _ = arguments.split()
            assert all((REPO / s).exists() for s in sources), arguments
        if instruction == "ENV":
            names = [pair.split("=", 1)[0] for pair in arguments.split()]
            assert all(
                known_variable(n) or n in {"PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "DAGSTER_HOME"}
                for n in names
            )
    (cmd,) = [json.loads(a) for i, a in steps if i == "CMD"]
    assert cmd == COMPOSE["services"]["code-server"]["command"], "the image's default is the code server"
    # The same arguments the production test starts and pings (devstack.code_server_service).
    assert cmd[1:] == code_server_argv(4000, host="0.0.0.0")[1:]
    assert any("deploy/dagster-postgres.yaml" in a for i, a in steps if i == "RUN"), (
        "the image's instance is on PostgreSQL"
    )


def test_compose_runs_every_process_from_that_image_with_commands_that_exist():
    from backfill_pipeline.cli import COMMANDS, main

    for name in OURS:
        service = COMPOSE["services"][name]
        assert service["image"] == "backfill-pipeline:latest" and service["build"] == "."
        argv = service["command"]
        if argv[0] == "backfill-pipeline":
            command = main.get_command(click.Context(main), argv[1])
            assert argv[1] in COMMANDS and command is not None
            options = {opt for p in command.params for opt in p.opts}
            assert {a for a in argv[2:] if a.startswith("-")} <= options, argv
        elif argv[0] == "python":
            assert argv[1] == "-m" and importlib.util.find_spec(argv[2]) is not None
        else:
            assert (Path(sys.executable).parent / argv[0]).exists(), (
                f"{argv[0]} is installed with the project"
            )
        for variable_name in service["environment"]:
            assert known_variable(variable_name), f"{name}: {variable_name} is read by nothing"
    env = COMPOSE["services"]["daemon"]["environment"]
    assert set(POSTGRES_VARIABLES) <= set(env) and WORKSPACE_VARIABLES <= set(env)
    assert COMPOSE["services"]["api"]["environment"]["BACKFILL_API_TOKEN"].startswith("${")


@pytest.mark.parametrize("service", OURS)
def test_each_compose_entry_point_starts(service):
    argv = COMPOSE["services"][service]["command"]
    program = {"python": sys.executable}.get(argv[0], str(Path(sys.executable).parent / argv[0]))
    # --help: the entry point imports and parses; the production test starts each for real.
    help_argv = [program, *argv[1:3], "--help"] if argv[0] == "python" else [program, *argv[1:2], "--help"]
    if argv[0] == "dagster-webserver":
        help_argv = [program, "--help"]
    done = subprocess.run(help_argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_helm_values_carry_the_repos_run_queue_and_the_code_location():
    queue = HELM["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = INSTANCE["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert queue["dequeueIntervalSeconds"] == INSTANCE["run_queue"]["dequeue_interval_seconds"]
    retries = HELM["dagsterDaemon"]["runRetries"]
    assert (retries["maxRetries"], retries["retryOnAssetOrOpFailure"]) == (
        INSTANCE["run_retries"]["max_retries"],
        INSTANCE["run_retries"]["retry_on_asset_or_op_failure"],
    )
    assert HELM["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = HELM["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == LOCATION == args[args.index("--location-name") + 1]
    assert all(known_variable(e["name"]) for e in deployment["env"])
    # Runs see the same snapshot volume as the code server.
    launcher = HELM["runLauncher"]["config"]["k8sRunLauncher"]
    assert launcher["volumeMounts"] == deployment["volumeMounts"]
    assert {e["value"] for e in deployment["env"] if e["name"] == "BACKFILL_DATA_ROOT"} == {
        m["mountPath"] for m in deployment["volumeMounts"]
    }
