"""Imported once by the code server's forkserver (backfill_pipeline.codeserver): the modules every
run imports before its first step, measured: Dagster's SQLite storages and the alembic checks run
when a run opens the instance (1.5 s in a new interpreter), the run executor and our assets."""

import alembic.command
import alembic.config
import alembic.runtime.migration
import alembic.script  # noqa: F401
import sqlalchemy  # noqa: F401
from dagster._core.execution.api import execute_run_iterator  # noqa: F401
from dagster._core.storage.event_log import SqliteEventLogStorage  # noqa: F401
from dagster._core.storage.runs import SqliteRunStorage  # noqa: F401
from dagster._core.storage.schedules import SqliteScheduleStorage  # noqa: F401

import backfill_pipeline.definitions  # noqa: F401
