"""Fetch one report for one as-of date, faithfully (docs/dashboard.md §4), through the raw cache."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from filelock import FileLock, Timeout

from ..dataroot import DataRoot
from ..district_ids import normalise_district_id
from .breaker import BreakerUnavailable, CircuitBreaker
from .budget import CappedBudget, Lane, Limiter, SharedBudget, SharedShare, open_store
from .cache import CachedAnswer, RawCache
from .calendar import (
    EARLIEST_AS_OF,
    possibly_open_program_years,
    previous_month,
    program_year,
    utc_today,
)
from .csvparse import ParsedCsv, parse_report
from .errors import ServerError
from .http import DashboardHttp, RetrySettings
from .ratelimit import TokenBucket
from .reports import DISTRICT_REPORTS, Report, export_url, report_name


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    """Everything that shapes how politely and how persistently the client talks to the dashboard.

    The deployment's values come from `Settings.client()`; only the backoff curve is fixed here.
    """

    base_url: str
    # The deployment's budget (requests/s, every process together) ...
    rate: float
    # ... this client's share of it (None: the whole budget), its lane, and where it is kept.
    share: float | None = None
    # The name under which the share is kept in the budget's store, so that every run of one
    # backfill draws from one share (None: this client's own share).
    share_name: str | None = None
    lane: Lane = Lane.BACKFILL
    budget_store: str | None = None
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    breaker_threshold: int
    breaker_cooldown: float
    use_cache: bool
    backoff_base: float = 0.5
    backoff_max: float = 30.0


@dataclass
class FetchResult:
    """The outcome of fetching one report for one as-of date."""

    report: Report
    district: str | None
    as_of: dt.date
    available: bool
    data_month: tuple[int, int] | None = None
    url: str | None = None
    rows: list[dict[str, str]] = field(default_factory=list)
    sha256: str | None = None
    bytes: int | None = None
    cache_hit: bool = False
    requests: int = 0
    # For an unavailable answer: final on evidence (seen twice, 24 h apart, after the close),
    # else pending (to be asked again).
    unavailable_final: bool = False

    @property
    def closing_period(self) -> bool | None:
        """True when the data month is the month before the as-of month."""
        if self.data_month is None:
            return None
        return self.data_month != (self.as_of.year, self.as_of.month)

    def summary(self) -> dict:
        """A JSON-ready description without the rows."""
        return {
            "report": self.report.value,
            "district": self.district,
            "url": self.url,
            "available": self.available,
            "asOf": self.as_of.isoformat(),
            "dataMonth": f"{self.data_month[0]:04d}-{self.data_month[1]:02d}" if self.data_month else None,
            "closingPeriod": self.closing_period,
            "rows": len(self.rows),
            "sha256": self.sha256,
            "bytes": self.bytes,
            "cacheHit": self.cache_hit,
            "requests": self.requests,
            "unavailableFinal": self.unavailable_final if not self.available else None,
        }


@dataclass
class DateFetch:
    """The summary of a date and, when asked, one district's three reports."""

    as_of: dt.date
    summary: FetchResult
    district_reports: list[FetchResult] = field(default_factory=list)

    @property
    def results(self) -> list[FetchResult]:
        return [self.summary, *self.district_reports]


class DashboardClient:
    """Fetches dashboard exports for as-of dates; every answer goes through the raw cache."""

    def __init__(
        self,
        settings: ClientSettings,
        root: DataRoot | Path | str,
        *,
        today: Callable[[], dt.date] = utc_today,
        http: DashboardHttp | None = None,
        recheck_unavailable: bool = False,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings = settings
        self.now = now
        # Ask again even where "not published" is final on evidence (an operator's recheck).
        self.recheck_unavailable = recheck_unavailable
        self.root = DataRoot.of(root)
        self.today = today
        self.cache = RawCache(self.root) if settings.use_cache else None
        self.breaker = CircuitBreaker(
            self.root,
            failure_threshold=settings.breaker_threshold,
            cooldown=settings.breaker_cooldown,
            shared_store=settings.budget_store,
        )
        self._budget_store = None
        if http is None:
            self._budget_store = open_store(settings.budget_store, self.root, settings.rate)
        self.http = http or DashboardHttp(
            limiter=self._limiter(),
            breaker=self.breaker,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retry=RetrySettings(
                max_attempts=settings.max_attempts,
                backoff_base=settings.backoff_base,
                backoff_max=settings.backoff_max,
            ),
        )
        self.cache_hits = 0
        self._bare_path_years: set[str] = set()
        # "Not published" answers this client already got: one run asks each fetch once.
        self._unavailable_now: dict[tuple[str, str | None, dt.date], FetchResult] = {}

    def _limiter(self) -> Limiter:
        """The deployment's budget in this client's lane, capped at its share when it has one."""
        assert self._budget_store is not None
        budget = SharedBudget(self._budget_store, self.settings.lane)
        share = self.settings.share
        if share is not None and share < self.settings.rate:
            name = self.settings.share_name
            own: Limiter = SharedShare(self._budget_store, name, share) if name else TokenBucket(share)
            return CappedBudget(own, budget)
        return budget

    def close(self) -> None:
        """Release the HTTP session and the budget's store."""
        self.http.close()
        self.breaker.close()
        if self._budget_store is not None:
            self._budget_store.close()

    def __enter__(self) -> DashboardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the run did ------------------------------------------------------------------

    def stats(self, *, breaker: bool = True) -> dict:
        """Requests made, cache hits, retries, seconds waited on the rate limiter, and (unless
        `breaker=False`: a read of the shared store, a database round trip on PostgreSQL) the
        breaker's state."""
        out: dict = {
            "requests": self.http.stats.requests,
            "retries": self.http.stats.retries,
            "cacheHits": self.cache_hits,
            "rateLimitWaitSeconds": round(self.http.limiter.waited_seconds, 3),
            "backoffSeconds": round(self.http.stats.backoff_seconds, 3),
        }
        if breaker:
            out["breakerState"] = self._breaker_state()
        return out

    def _breaker_state(self) -> str:
        try:
            return self.breaker.state().state
        except BreakerUnavailable:
            return "unknown"

    # -- fetching --------------------------------------------------------------------------

    def fetch_date(self, as_of: dt.date, district: str | None = None, *, force: bool = False):
        """The summary for `as_of` and, with `district`, its three reports at the summary's month."""
        summary = self.fetch(Report.SUMMARY, as_of, force=force)
        result = DateFetch(as_of=as_of, summary=summary)
        if district is not None:
            for report in DISTRICT_REPORTS:
                if summary.available:
                    result.district_reports.append(
                        self.fetch(report, as_of, district, data_month=summary.data_month, force=force)
                    )
                else:
                    district_id = normalise_district_id(district)
                    result.district_reports.append(
                        FetchResult(report=report, district=district_id, as_of=as_of, available=False)
                    )
        return result

    def fetch(
        self,
        report: Report,
        as_of: dt.date,
        district: str | None = None,
        *,
        data_month: tuple[int, int] | None = None,
        force: bool = False,
    ) -> FetchResult:
        """Fetch `report` as of `as_of`; only a CSV whose footer says `as_of` is accepted.

        Without `data_month` the own month is asked first, then the previous month (closing
        period). With it (known from that date's summary) one request is enough.
        """
        if as_of < EARLIEST_AS_OF:
            raise ValueError(f"{as_of} is before {EARLIEST_AS_OF}, the first exported date")
        if report.per_district:
            district = normalise_district_id(district or "")
        elif district is not None:
            raise ValueError("the summary report takes no district")

        key = (report.value, district, as_of)
        if not force and key in self._unavailable_now:
            return replace(self._unavailable_now[key], requests=0, cache_hit=True)
        if self.cache and not force:
            hit = self._from_cache(self.cache, report, as_of, district)
            if hit is not None:
                return hit
            if not report.per_district:
                return self._fetch_once(self.cache, report, as_of, data_month)
        return self._fetch(report, as_of, district, data_month)

    def _fetch_once(
        self, cache: RawCache, report: Report, as_of: dt.date, data_month: tuple[int, int] | None
    ) -> FetchResult:
        """A date's summary, asked of the dashboard by one process at a time: the runs of every
        district of that date need it, and those that waited find it in the raw cache."""
        lock_path = self.root.raw_fetch_lock(report.value, as_of)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock, waited_from = FileLock(lock_path), self.now()
        try:
            lock.acquire(timeout=0)
            contended = False
        except Timeout:
            lock.acquire()
            contended = True
        try:
            # "Not published" answered while this process waited is not asked twice.
            fresh_since = waited_from if contended else None
            hit = self._from_cache(cache, report, as_of, None, fresh_since=fresh_since)
            return hit or self._fetch(report, as_of, None, data_month)
        finally:
            lock.release()

    def _fetch(
        self,
        report: Report,
        as_of: dt.date,
        district: str | None,
        data_month: tuple[int, int] | None,
    ) -> FetchResult:
        """Ask the dashboard (own month, then the previous one, unless the month is known)."""
        key = (report.value, district, as_of)
        requests_before = self.http.stats.requests
        months = (
            [data_month]
            if data_month
            else [
                (as_of.year, as_of.month),
                previous_month(as_of.year, as_of.month),
            ]
        )
        for month in months:
            body, url = self._get(report, month, as_of, district)
            parsed = parse_report(body, report)
            sha = self.cache.put(body, url=url, as_of=as_of) if self.cache else _sha(body)
            if parsed.available_for(as_of):
                result = self._accepted(report, district, as_of, url, body, sha, parsed)
                result.requests = self.http.stats.requests - requests_before
                if self.cache:
                    self.cache.remember(
                        CachedAnswer(
                            report=report.value,
                            district=district,
                            as_of=as_of.isoformat(),
                            available=True,
                            url=url,
                            sha256=sha,
                            bytes=len(body),
                            fetched_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        )
                    )
                return result

        final = False
        if self.cache:
            final = self.cache.observe_unavailable(
                report.value, district, as_of, now=self.now()
            ).unavailable_final()
        result = FetchResult(
            report=report,
            district=district,
            as_of=as_of,
            available=False,
            requests=self.http.stats.requests - requests_before,
            unavailable_final=final,
        )
        self._unavailable_now[key] = result
        return result

    def _from_cache(
        self,
        cache: RawCache,
        report: Report,
        as_of: dt.date,
        district: str | None,
        *,
        fresh_since: dt.datetime | None = None,
    ) -> FetchResult | None:
        """The cached answer, or None when the dashboard must be asked; a "not published" answer
        observed at or after `fresh_since` (its times are whole seconds) counts as just asked."""
        answer = cache.lookup(report.value, district, as_of)
        if answer is None:
            return None
        if not answer.available:
            final = answer.unavailable_final()
            seen = answer.seen_times()
            just_asked = (
                fresh_since is not None and bool(seen) and max(seen) >= fresh_since.replace(microsecond=0)
            )
            if not just_asked and (self.recheck_unavailable or not final):
                return None  # pending: the dashboard may have published it since
            self.cache_hits += 1
            return FetchResult(
                report=report,
                district=district,
                as_of=as_of,
                available=False,
                cache_hit=True,
                unavailable_final=final,
            )
        body = cache.read(answer.sha256 or "")
        if body is None:
            return None  # the blob is gone or damaged: fetch again
        parsed = parse_report(body, report)
        if not parsed.available_for(as_of):
            return None
        self.cache_hits += 1
        result = self._accepted(report, district, as_of, answer.url, body, answer.sha256, parsed)
        result.cache_hit = True
        return result

    @staticmethod
    def _accepted(report, district, as_of, url, body, sha, parsed: ParsedCsv) -> FetchResult:
        return FetchResult(
            report=report,
            district=district,
            as_of=as_of,
            available=True,
            data_month=parsed.footer.data_month if parsed.footer else None,
            url=url,
            rows=parsed.rows,
            sha256=sha,
            bytes=len(body),
        )

    def _possibly_open(self, py: str) -> bool:
        return py in possibly_open_program_years(self.today())

    def _get(self, report, month, as_of, district) -> tuple[bytes, str]:
        name = report_name(report, month, as_of, district)
        py = program_year(*month)
        url = export_url(self.settings.base_url, name, py)
        if self._possibly_open(py):
            if py not in self._bare_path_years:
                try:
                    return self.http.get(url, retry_5xx=False), url
                except ServerError:
                    # The open year is known to answer 5xx under /{PY}/; remember it for this client.
                    self._bare_path_years.add(py)
            url = export_url(self.settings.base_url, name, None)
        return self.http.get(url), url


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
