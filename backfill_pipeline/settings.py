"""Settings: every `BACKFILL_*` variable, parsed and validated in one place, each default once.

The CLI, the REST API and the Dagster code location all call `load_settings()` when they
start (never at import), so they see identical values; a bad value stops them with one message
naming the variable (or the command-line option that gave it).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from .dashboard.budget import dagster_postgres_url
from .dashboard.calendar import EARLIEST_AS_OF, iso_date_text
from .dashboard.client import ClientSettings
from .dataroot import DataRoot

ENV_PREFIX = "BACKFILL_"

# Chosen by measurement (scripts/bench_partitions.py, README "Scale"): from the start of PY
# 2024-2025, 128 districts make ~113k date x district partitions today (+46.7k a year); the asset
# pages answer in 0.05 s and a one-year backfill launches in ~3.5 s. A configured subset of ~10
# districts can start at 2008-07-01 (67k partitions, pages 0.2 s, a year launches in ~1.1 s).
DEFAULT_START_DATE = dt.date(2024, 7, 1)
MIN_TOKEN_LENGTH = 16
# Settings whose value an error message never shows.
SECRET_FIELDS = {"api_token", "budget_store"}  # a postgresql:// URL may carry a password


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable or option that gave it."""


def _positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a finite number greater than 0")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or a fragment")
    return value.strip().rstrip("/")


def _not_before_first_export(value: dt.date) -> dt.date:
    if value < EARLIEST_AS_OF:
        raise ValueError(f"must not be before {EARLIEST_AS_OF}, the first exported date")
    return value


def _token(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    text = value.get_secret_value()
    if (
        len(text) < MIN_TOKEN_LENGTH
        or not text.isascii()
        or not all(c.isprintable() and not c.isspace() for c in text)
    ):
        # The value itself is never echoed: the message shows SecretStr's '**********'.
        raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without spaces")
    return value


def _host_list(value: object) -> tuple[str, ...]:
    """`a.example, b.example` (the variable) or a list (an explicit value) -> lower-case names."""
    if isinstance(value, str) and not value.strip():
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a comma-separated list of host names")
    hosts = []
    for item in items:
        host = str(item).strip().lower()
        if not host or not host.isascii() or any(c.isspace() or c in "/@?#" for c in host):
            raise ValueError(f"{item!r} is not a host name (or an address)")
        hosts.append(host)
    return tuple(hosts)


def _budget_store(value: str | None) -> str | None:
    if value is None:
        return None
    if "://" in value and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a SQLite file path or a postgresql:// URL")
    if not value.isprintable():
        raise ValueError("must be a SQLite file path or a postgresql:// URL")
    return value


def _none_if_blank(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


Positive = Annotated[float, AfterValidator(_positive)]
StartDate = Annotated[dt.date, BeforeValidator(iso_date_text), AfterValidator(_not_before_first_export)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class Settings(BaseSettings):
    """The deployment's settings, from `BACKFILL_<NAME>` variables (or explicit values)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="forbid", frozen=True, validate_default=True
    )

    data_root: Path = Field(
        Path("data"), description="snapshots, raw CSV cache, district configuration, alerts"
    )
    dashboard_url: HttpUrl = Field(
        "https://dashboards.toastmasters.org", description="the dashboard (or the sandbox)"
    )
    rate: Positive = Field(
        2.0,
        description="the deployment's budget at the dashboard: requests per second, every process "
        "together (backfills take a share of it, the refresh goes first)",
    )
    budget_store: Annotated[str | None, BeforeValidator(_none_if_blank), AfterValidator(_budget_store)] = (
        Field(
            None,
            description="where the shared budget and the circuit breaker are kept: a SQLite file path "
            "(default <root>/state/budget.sqlite, the breaker in <root>/state/breaker.json) or a "
            "postgresql:// URL when runs span machines (default: Dagster's database when DAGSTER_PG_HOST "
            "is set)",
        )
    )
    api_token: Annotated[SecretStr | None, BeforeValidator(_none_if_blank), AfterValidator(_token)] = Field(
        None,
        description="the REST API's bearer token (default: generated once into <root>/state/api-token)",
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_host_list)] = Field(
        (),
        description="extra Host names the REST API answers to, comma-separated (the loopback names "
        "and the bound address always)",
    )
    start_date: StartDate = Field(DEFAULT_START_DATE, description="first daily partition, YYYY-MM-DD")
    dagster_url: HttpUrl = Field(
        "http://127.0.0.1:3000", description="where the API and CLI reach Dagster's webserver"
    )
    batch_size: int = Field(
        50, ge=1, le=1000, description="partitions per backfill run (BackfillPolicy.multi_run)"
    )
    cache: bool = Field(True, description="serve already-downloaded CSVs from <root>/raw/")
    connect_timeout: Positive = Field(5.0, description="seconds to connect to the dashboard")
    read_timeout: Positive = Field(60.0, description="seconds to wait for the dashboard's answer")
    max_attempts: int = Field(4, ge=1, le=20, description="HTTP attempts per request for retryable errors")
    breaker_threshold: int = Field(
        5, ge=1, le=1000, description="failures in a row that open the circuit breaker"
    )
    breaker_cooldown: Positive = Field(30.0, description="seconds the circuit stays open before a probe")
    retry_delay: Positive = Field(
        15.0,
        le=3600,
        description="seconds before Dagster retries a step that failed for transient reasons (doubling)",
    )

    @model_validator(mode="after")
    def _dagsters_postgres_is_usable(self) -> Settings:
        # When Dagster's instance is on PostgreSQL and no budget store is given, the budget and
        # the breaker are kept in its database (budget.shared_store, resolved where they are
        # opened, so the password never becomes a setting shown in Dagster's UI): check its
        # DAGSTER_PG_* variables now, not in the middle of a run.
        if self.budget_store is None:
            dagster_postgres_url(os.environ)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit values (command-line options), then the environment; no .env or secret files.
        return init_settings, env_settings

    @property
    def root(self) -> DataRoot:
        """The data root."""
        return DataRoot(self.data_root)

    def client(self, **overrides: Any) -> ClientSettings:
        """The dashboard client's settings (an explicit `rate` or `base_url` may replace ours)."""
        values: dict[str, Any] = {
            "base_url": self.dashboard_url,
            "rate": self.rate,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "max_attempts": self.max_attempts,
            "breaker_threshold": self.breaker_threshold,
            "breaker_cooldown": self.breaker_cooldown,
            "use_cache": self.cache,
            "budget_store": self.budget_store,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return ClientSettings(**values)


def variable(field: str) -> str:
    """The environment variable of a setting: `rate` -> `BACKFILL_RATE`."""
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(options: dict[str, str] | None = None, **explicit: Any) -> Settings:
    """Settings from explicit values (None means "not given") over `BACKFILL_*` variables.

    `options` names the command-line option of each explicit value, for the error message.
    Raises SettingsError naming every bad variable or option.
    """
    given = {k: v for k, v in explicit.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(describe(exc, given, options or {})) from None


def describe(exc: ValidationError, given: dict[str, Any], options: dict[str, str]) -> str:
    """One line naming each bad setting: `BACKFILL_RATE='nan': must be a finite number`."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if not field:  # a check of the whole (its message names the variable)
            problems.append(message)
            continue
        name = options.get(field, variable(field)) if field in given else variable(field)
        shown = "'**********'" if field in SECRET_FIELDS else repr(error.get("input"))
        problems.append(f"{name}={shown}: {message}")
    return "invalid settings: " + "; ".join(problems)
