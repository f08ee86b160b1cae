"""Settings: every BACKFILL_* variable parsed once, each default written once, bad values named."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from backfill_pipeline.dashboard.budget import dagster_postgres_url, shared_store
from backfill_pipeline.settings import DEFAULT_START_DATE, Settings, SettingsError, load_settings, variable

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults():
    s = load_settings()
    assert s.data_root == Path("data") and s.dashboard_url == "https://dashboards.toastmasters.org"
    assert (s.rate, s.batch_size, s.cache, s.start_date) == (2.0, 50, True, DEFAULT_START_DATE)
    client = s.client()
    assert (client.base_url, client.rate, client.connect_timeout, client.read_timeout) == (
        s.dashboard_url,
        2.0,
        5.0,
        60.0,
    )


def test_the_environment_is_read_and_explicit_values_win(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKFILL_RATE", "0.5")
    monkeypatch.setenv("BACKFILL_CONNECT_TIMEOUT", "2.5")
    monkeypatch.setenv("BACKFILL_CACHE", "off")
    monkeypatch.setenv("BACKFILL_DASHBOARD_URL", "http://127.0.0.1:8765/")
    monkeypatch.setenv("BACKFILL_BATCH_SIZE", "")  # empty means unset, as a shell `VAR=` does
    s = load_settings(data_root=tmp_path, rate=None)  # None: the option was not given
    assert (s.rate, s.connect_timeout, s.cache, s.batch_size) == (0.5, 2.5, False, 50)
    assert s.dashboard_url == "http://127.0.0.1:8765" and s.data_root == tmp_path
    assert load_settings(rate=7).rate == 7.0
    assert s.client(rate=9).rate == 9.0 and s.client().use_cache is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BACKFILL_RATE", "0"),
        ("BACKFILL_RATE", "-1"),
        ("BACKFILL_RATE", "nan"),
        ("BACKFILL_RATE", "inf"),
        ("BACKFILL_RATE", "fast"),
        ("BACKFILL_BATCH_SIZE", "0"),
        ("BACKFILL_BATCH_SIZE", "2.5"),
        ("BACKFILL_START_DATE", "2025-1-1"),
        ("BACKFILL_START_DATE", "2025-02-30"),
        ("BACKFILL_START_DATE", "2001-07-01"),
        ("BACKFILL_START_DATE", "2025-07-01T00:00:00"),
        ("BACKFILL_CONNECT_TIMEOUT", "-1"),
        ("BACKFILL_READ_TIMEOUT", "0"),
        ("BACKFILL_BREAKER_COOLDOWN", "inf"),
        ("BACKFILL_MAX_ATTEMPTS", "0"),
        ("BACKFILL_CACHE", "maybe"),
        ("BACKFILL_DASHBOARD_URL", "dashboards.toastmasters.org"),
        ("BACKFILL_DASHBOARD_URL", "file:///etc/passwd"),
        ("BACKFILL_DAGSTER_URL", "http://"),
        ("BACKFILL_RATE", "²"),
        ("BACKFILL_RATE", "1e999"),
        ("BACKFILL_BATCH_SIZE", "٣"),
        ("BACKFILL_ALLOWED_HOSTS", "a host"),
        ("BACKFILL_ALLOWED_HOSTS", "evil.example/path"),
    ],
)
def test_a_bad_variable_is_refused_naming_it_and_its_value(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert f"{name}={value!r}" in str(caught.value)


def test_a_bad_option_is_named_as_the_option_and_every_problem_is_listed(monkeypatch):
    monkeypatch.setenv("BACKFILL_BATCH_SIZE", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings({"rate": "--rate"}, rate=float("nan"))
    message = str(caught.value)
    assert "--rate=nan" in message and "BACKFILL_BATCH_SIZE='0'" in message


def test_unknown_fields_are_refused():
    with pytest.raises(SettingsError):
        load_settings(ratez=3)


def test_the_readme_lists_every_variable_with_its_default():
    rows = re.findall(r"^\| `(BACKFILL_[A-Z_]+)` \| `([^`]*)` \|", README.read_text(), re.MULTILINE)
    listed = dict(rows)
    assert set(listed) == {variable(name) for name in Settings.model_fields}
    defaults = Settings.model_validate({})
    for name in Settings.model_fields:
        written = listed[variable(name)]
        assert getattr(Settings(**{name: written}), name) == getattr(defaults, name), name


def test_the_start_date_is_a_date():
    assert load_settings(start_date="2008-07-01").start_date == dt.date(2008, 7, 1)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BACKFILL_API_TOKEN", "short-secret"),
        ("BACKFILL_API_TOKEN", "sixteen chars with spaces"),
        ("BACKFILL_API_TOKEN", "é" * 20),
        ("BACKFILL_BUDGET_STORE", "redis://user:secret@host/0"),
    ],
)
def test_a_bad_secret_is_refused_naming_the_variable_but_never_echoing_it(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert f"{name}='**********'" in str(caught.value) and value not in str(caught.value)


def test_host_names_and_stores_are_read_as_given(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKFILL_ALLOWED_HOSTS", " Stats.Example.org ,10.0.0.5:8080")
    monkeypatch.setenv("BACKFILL_BUDGET_STORE", str(tmp_path / "budget.sqlite"))
    s = load_settings()
    assert s.allowed_hosts == ("stats.example.org", "10.0.0.5:8080")
    assert s.client().budget_store == str(tmp_path / "budget.sqlite")
    assert load_settings(budget_store="postgresql://u@db/x").budget_store == "postgresql://u@db/x"


PG_ENV = {
    "DAGSTER_PG_HOST": "db.internal",
    "DAGSTER_PG_PORT": "6543",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "p@ss/word",
    "DAGSTER_PG_DB": "dagster",
}


def test_on_dagsters_postgres_the_budget_and_breaker_default_to_its_database(monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    loaded = load_settings()
    # Resolved where the stores open, so the password is never a setting (Dagster's UI shows those).
    assert loaded.budget_store is None
    assert shared_store(loaded.budget_store) == "postgresql://dagster:p%40ss%2Fword@db.internal:6543/dagster"
    # An explicit store still wins.
    monkeypatch.setenv("BACKFILL_BUDGET_STORE", "/var/lib/budget.sqlite")
    assert shared_store(load_settings().budget_store) == "/var/lib/budget.sqlite"


def test_an_ipv6_host_is_bracketed_and_a_missing_password_left_out():
    env = {**PG_ENV, "DAGSTER_PG_HOST": "::1", "DAGSTER_PG_PASSWORD": ""}
    assert dagster_postgres_url(env) == "postgresql://dagster@[::1]:6543/dagster"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DAGSTER_PG_PORT", "54x2", "DAGSTER_PG_PORT='54x2' is not a port number"),
        ("DAGSTER_PG_HOST", "db:5433", "DAGSTER_PG_HOST='db:5433' is not a host name"),
        ("DAGSTER_PG_HOST", "%41", "DAGSTER_PG_HOST='%41' is not a host name"),
        ("DAGSTER_PG_DB", None, "set DAGSTER_PG_DB too"),
    ],
)
def test_a_bad_dagster_postgres_variable_is_named_at_load(monkeypatch, name, value, message):
    for key, given in PG_ENV.items():
        monkeypatch.setenv(key, given)
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings()


def test_without_dagster_postgres_the_budget_stays_under_the_data_root(monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_HOST", raising=False)
    assert load_settings().budget_store is None and shared_store(None) is None
