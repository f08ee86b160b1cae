"""The sandbox dashboard over HTTP: exports, fault control, stats and request log."""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import socket
import struct
import threading
import time
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from . import data, exports, render
from .arrival import StampedSocketIO, arrival_or_now, stamp_arrivals, stamped_reader
from .faults import FaultPlan, FaultRule, FaultSet
from .publication import (
    DEFAULT_SEED,
    NOTHING_HELD,
    latest_published,
    open_program_year,
    parse_held_back,
)

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Dashboards - Toastmasters International</title></head>"
    "<body><h1>The dashboard is being updated</h1><p>Please try again later.</p></body></html>"
)
# The errors of writing to (or reading from) a client that went away.
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
# How often serve_forever looks for a stop request: short, so stop() and test teardown are quick.
_POLL_SECONDS = 0.05
# The largest control request body read (JSON of fault rules or held-back dates).
_MAX_CONTROL_BODY = 1024 * 1024
# A `drip` answer sends a slice this often; a `huge` answer writes blocks of this size.
_DRIP_INTERVAL = 0.05
_HUGE_BLOCK = 64 * 1024
# The `huge` body: CSV-looking filler, one block built once and written again and again.
_FILLER = b'"0000","filler row of a huge answer"\r\n'
_HUGE_FILLER = (_FILLER * (_HUGE_BLOCK // len(_FILLER) + 1))[:_HUGE_BLOCK]
# The report whose header a `wrong_report` answer carries: one without the asked report's key column.
_WRONG_REPORT = {
    data.SUMMARY: data.CLUB,
    data.CLUB: data.DISTRICT,
    data.DISTRICT: data.SUMMARY,
    data.DIVISION: data.SUMMARY,
}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], sandbox: SandboxServer
    ):
        super().__init__(address, handler)
        self.sandbox = sandbox

    def server_bind(self) -> None:
        super().server_bind()
        stamp_arrivals(self.socket)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "SandboxDashboard/1.0"
    timeout = 60

    raw: StampedSocketIO | None = None

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.raw, self.rfile = stamped_reader(self.connection, io.DEFAULT_BUFFER_SIZE)
        self.server.sandbox._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, False)

    def log_message(self, format: str, *args) -> None:
        pass  # the request log at /_sandbox/requests replaces stderr noise

    def handle(self) -> None:
        try:
            super().handle()
        except _CLIENT_GONE:
            # A client that aborts a download closes its end, often with a reset: not our error.
            self.close_connection = True

    def do_GET(self) -> None:
        self.server.sandbox._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.sandbox._dispatch(self, "POST")

    def do_PUT(self) -> None:
        self.server.sandbox._dispatch(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.sandbox._dispatch(self, "DELETE")


class SandboxServer:
    """A local dashboard that speaks the real export protocol with deterministic data."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = DEFAULT_SEED,
        today: dt.date | None = None,
        faults=None,
        bom: bool = False,
        log_size: int = 1000,
        held_back: Iterable[dt.date | str] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self._today = today
        self.bom = bom
        self._faults = FaultSet(faults or (), seed)
        self._held: frozenset[dt.date] = parse_held_back(held_back)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._log: collections.deque = collections.deque(maxlen=log_size)
        self._reset_counters()

    # ------------------------------------------------------------ lifecycle

    @property
    def today(self) -> dt.date:
        """The server's today: fixed at construction, or the real date."""
        return self._today or dt.date.today()

    @property
    def url(self) -> str:
        """Base URL, like `http://127.0.0.1:8765`."""
        if self._httpd is None:
            raise RuntimeError("the sandbox is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind and serve on a background thread."""
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            args=(_POLL_SECONDS,),
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Bind (if needed) and serve on the calling thread until `stop()`."""
        self._bind().serve_forever(_POLL_SECONDS)

    def _bind(self) -> _HTTPServer:
        if self._httpd is None:
            self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
            self.port = self._httpd.server_address[1]
        return self._httpd

    def stop(self) -> None:
        """Stop serving and drop open connections."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        if self._httpd is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ------------------------------------------------------------ publication

    def hold_back(self, dates: Iterable[dt.date | str]) -> None:
        """Publish these dates later: until released they answer as unpublished dates do."""
        new = parse_held_back(dates)
        with self._lock:
            self._held = parse_held_back(self._held | new)

    def release(self, dates: Iterable[dt.date | str] | None = None) -> None:
        """Publish held-back dates now: these, or every one with None."""
        gone = None if dates is None else parse_held_back(dates)
        with self._lock:
            self._held = NOTHING_HELD if gone is None else self._held - gone

    def set_held_back(self, dates: Iterable[dt.date | str]) -> None:
        """Replace the held-back dates."""
        new = parse_held_back(dates)
        with self._lock:
            self._held = new

    def held_back(self) -> list[dt.date]:
        """The dates held back, oldest first."""
        with self._lock:
            return sorted(self._held)

    def _held_now(self) -> frozenset[dt.date]:
        with self._lock:
            return self._held

    # ------------------------------------------------------------ faults and stats

    def set_faults(self, rules) -> None:
        """Replace the fault rules (FaultRule objects or their JSON dicts)."""
        self._faults.replace(rules)

    def add_fault(self, rule: FaultRule | dict) -> None:
        """Append one fault rule."""
        self._faults.append(rule)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._faults.clear()

    def faults(self) -> list[dict]:
        """The current fault rules in JSON form."""
        return self._faults.to_list()

    def _reset_counters(self) -> None:
        self._total = 0
        self._by_report: collections.Counter = collections.Counter()
        self._by_status: collections.Counter = collections.Counter()
        self._by_outcome: collections.Counter = collections.Counter()
        self._by_key: collections.Counter = collections.Counter()
        self._faults_fired: collections.Counter = collections.Counter()
        self._log.clear()

    def reset_stats(self) -> None:
        """Zero the counters and empty the request log."""
        with self._lock:
            self._reset_counters()

    def stats(self) -> dict:
        """Counters of export requests since start or the last reset."""
        with self._lock:
            return {
                "exportRequests": self._total,
                "byReport": dict(self._by_report),
                "byStatus": dict(self._by_status),
                "byOutcome": dict(self._by_outcome),
                "faultsFired": dict(self._faults_fired),
                "byKey": dict(self._by_key),
            }

    def requests(self, limit: int | None = None) -> list[dict]:
        """The most recent export requests, oldest first."""
        with self._lock:
            entries = list(self._log)
        return entries[-limit:] if limit else entries

    def _record(self, entry: dict, fired: list[str]) -> None:
        key = "|".join(str(entry[k] or "") for k in ("report", "asOf", "district"))
        with self._lock:
            self._total += 1
            self._by_report[entry["report"] or "invalid"] += 1
            self._by_status[str(entry["status"] or "reset")] += 1
            self._by_outcome[entry["outcome"]] += 1
            self._by_key[key] += 1
            for kind in fired:
                self._faults_fired[kind] += 1
            self._log.append(entry)

    # ------------------------------------------------------------ HTTP

    def _dispatch(self, h: _Handler, method: str) -> None:
        try:
            self._route(h, method)
        except _CLIENT_GONE:
            h.close_connection = True  # nobody is left to read an answer
        except Exception as exc:  # a sandbox bug: say so loudly rather than drop the connection
            traceback.print_exc()
            self._send(h, 500, f"sandbox internal error: {exc!r}\n".encode(), exports.TEXT_TYPE)

    def _route(self, h: _Handler, method: str) -> None:
        path, _, query = h.path.partition("?")
        is_export, path_py = exports.export_path_py(path)
        if is_export:
            if method != "GET":
                return self._send(h, 405, b"Method Not Allowed\n", exports.TEXT_TYPE)
            return self._export(h, path, path_py, query)
        if path.startswith("/_sandbox/"):
            return self._control(h, method, path, query)
        if path == "/" and method == "GET":
            return self._send(h, 200, self._index().encode(), exports.TEXT_TYPE)
        return self._send(h, 404, b"Not Found\n", exports.TEXT_TYPE)

    def _export(self, h: _Handler, path: str, path_py: str | None, query: str) -> None:
        entry = {
            "t": arrival_or_now(h.raw),  # when the request reached the machine
            "handled": time.time(),  # when the sandbox got round to it
            "path": h.path,
            "report": None,
            "district": None,
            "asOf": None,
            "status": None,
            "outcome": None,
            "faults": [],
        }
        response: exports.ExportResponse | None
        name = None
        try:
            name = exports.parse_query(query)
            if path_py is not None:
                exports.parse_program_year(path_py)
        except exports.BadRequest as exc:
            response = exports.bad_request(str(exc))
        else:
            response = None
            entry.update(
                report=name.report,
                district=name.district,
                asOf=name.as_of.isoformat() if name.as_of else None,
            )
        plan: FaultPlan = self._faults.draw(
            name.report if name else None,
            name.district if name else None,
            name.as_of if name else None,
        )
        entry["faults"] = plan.fired
        if plan.latency_ms:
            time.sleep(plan.latency_ms / 1000)
        rule = plan.terminal
        held = self._held_now()
        if rule is not None and rule.kind == "reset":
            entry.update(outcome="reset")
            self._record(entry, plan.fired)
            return self._reset(h)
        if rule is not None and rule.kind == "error":
            if rule.retry_after is not None:
                entry.update(status=rule.status, outcome="fault_error")
                self._record(entry, plan.fired)
                return self._send(
                    h,
                    rule.status,
                    exports.SERVER_ERROR_PAGE.encode(),
                    exports.HTML_TYPE,
                    {"Retry-After": str(rule.retry_after)},
                )
            response = exports.ExportResponse(
                rule.status, exports.SERVER_ERROR_PAGE.encode(), exports.HTML_TYPE, "fault_error"
            )
        elif rule is not None and rule.kind == "429":
            entry.update(status=429, outcome="fault_429")
            self._record(entry, plan.fired)
            return self._send(
                h, 429, b"Too Many Requests\n", exports.TEXT_TYPE, {"Retry-After": rule.retry_after_header}
            )
        elif rule is not None and rule.kind == "html":
            content_type = rule.content_type or exports.HTML_TYPE
            response = exports.ExportResponse(200, HTML_PAGE.encode(), content_type, "fault_html")
        elif rule is not None and rule.kind == "redirect":
            entry.update(status=rule.status, outcome="fault_redirect")
            self._record(entry, plan.fired)
            return self._send(
                h, rule.status, b"Object moved\n", exports.TEXT_TYPE, {"Location": rule.location}
            )
        elif rule is not None and rule.kind == "huge":
            entry.update(status=200, outcome="fault_huge")
            self._record(entry, plan.fired)
            return self._send_huge(h, int(rule.size_mb * 1024 * 1024), rule.chunked)
        elif rule is not None and rule.kind == "wrong_report" and name is not None:
            response = self._wrong_report(name)
        elif response is None and name is not None:
            try:
                response = exports.resolve(path_py, name, self.today, self.seed, self.bom, held)
            except exports.BadRequest as exc:
                response = exports.bad_request(str(exc))
        assert response is not None  # a parsed name, or the bad request answered above
        body = response.body
        outcome = response.outcome
        if response.status == 200 and response.content_type == exports.CSV_TYPE:
            footer_date = render.footer_as_of(body) if plan.wrong_as_of else None
            if footer_date is not None:
                body = render.rewrite_footer_date(body, footer_date - dt.timedelta(days=1))
                outcome += "+wrong_as_of"
            if plan.truncate is not None and body:
                full_length = len(body)
                body = render.truncate(body)
                outcome += "+truncate"
                if plan.truncate.incomplete:
                    entry.update(status=200, outcome=outcome)
                    self._record(entry, plan.fired)
                    return self._send(
                        h, 200, body, response.content_type, content_length=full_length, close=True
                    )
        if plan.drip is not None:
            outcome += "+drip"
        entry.update(status=response.status, outcome=outcome)
        self._record(entry, plan.fired)
        headers = {}
        if response.content_type == exports.CSV_TYPE:
            headers["Content-Disposition"] = "attachment; filename=export.csv"
        if plan.drip is not None:
            return self._send_slowly(
                h, response.status, body, response.content_type, headers, plan.drip.bytes_per_second
            )
        self._send(h, response.status, body, response.content_type, headers)

    def _wrong_report(self, name: exports.ReportName) -> exports.ExportResponse:
        """A CSV of another report: a header without the asked report's key column, a footer."""
        as_of = name.as_of or self.today - dt.timedelta(days=1)
        month = (name.month_end or as_of).year, (name.month_end or as_of).month
        py_start = month[0] if month[1] >= 7 else month[0] - 1
        header = data.columns(_WRONG_REPORT[name.report], py_start)
        body = render.csv_bytes(header, (), render.footer(month, as_of, self.seed), self.bom)
        return exports.ExportResponse(200, body, exports.CSV_TYPE, "fault_wrong_report")

    def _control(self, h: _Handler, method: str, path: str, query: str) -> None:
        route = path.rstrip("/")
        if route == "/_sandbox/health" and method == "GET":
            today = self.today
            held = self._held_now()
            latest = latest_published(today, self.seed, held)
            return self._json(
                h,
                200,
                {
                    "status": "ok",
                    "seed": self.seed,
                    "today": today.isoformat(),
                    "latestAsOf": latest.isoformat() if latest else None,
                    "openProgramYear": open_program_year(today, self.seed, held),
                    "heldBack": len(held),
                },
            )
        if route == "/_sandbox/faults":
            try:
                if method == "PUT":
                    payload = self._read_json(h)
                    if isinstance(payload, dict) and "faults" in payload:
                        payload = payload["faults"]
                    if not isinstance(payload, list):
                        raise ValueError("PUT takes a JSON list of fault rules")
                    self.set_faults(payload)
                elif method == "POST":
                    self.add_fault(self._read_json(h))
                elif method == "DELETE":
                    self.clear_faults()
                elif method != "GET":
                    return self._json(h, 405, {"error": "method not allowed"})
            except ValueError as exc:
                return self._json(h, 400, {"error": str(exc)})
            return self._json(h, 200, {"faults": self.faults()})
        if route == "/_sandbox/publication":
            try:
                if method == "PUT":
                    payload = self._read_json(h)
                    if not isinstance(payload, dict) or set(payload) != {"heldBack"}:
                        raise ValueError('PUT takes a JSON object {"heldBack": ["YYYY-MM-DD", ...]}')
                    if not isinstance(payload["heldBack"], list):
                        raise ValueError('"heldBack" must be a JSON list of YYYY-MM-DD strings')
                    self.set_held_back(payload["heldBack"])
                elif method == "DELETE":
                    self.release()
                elif method != "GET":
                    return self._json(h, 405, {"error": f"method not allowed: {method} {route}"})
            except ValueError as exc:
                return self._json(h, 400, {"error": str(exc)})
            return self._json(h, 200, {"heldBack": [d.isoformat() for d in self.held_back()]})
        if route == "/_sandbox/stats" and method == "GET":
            return self._json(h, 200, self.stats())
        if route == "/_sandbox/stats/reset" and method == "POST":
            self.reset_stats()
            return self._json(h, 200, self.stats())
        if route == "/_sandbox/requests" and method == "GET":
            try:
                limit = int(parse_qs(query).get("limit", ["100"])[0])
            except ValueError:
                return self._json(h, 400, {"error": "limit must be an integer"})
            return self._json(h, 200, {"requests": self.requests(max(limit, 0) or None)})
        return self._json(h, 404, {"error": f"no such endpoint: {method} {path}"})

    def _index(self) -> str:
        today = self.today
        held = self._held_now()
        latest = latest_published(today, self.seed, held)
        py = open_program_year(today, self.seed, held)
        example = ""
        if latest is not None:
            example = (
                f"{self.url}/export.aspx?type=CSV&report=districtsummary~"
                f"~{latest.month}/{latest.day}/{latest.year}~{py}\n"
            )
        return (
            "Sandbox Toastmasters dashboard (deterministic data, seed "
            f"{self.seed}, today {today.isoformat()}, open program year {py}).\n"
            "Exports: /{PY}/export.aspx?type=CSV&report=... and /export.aspx?... "
            "(see docs/dashboard.md §2).\n"
            f"Latest published data:\n{example}"
            "Control: /_sandbox/health, /_sandbox/faults, /_sandbox/publication, /_sandbox/stats, "
            "/_sandbox/requests\n"
        )

    @staticmethod
    def _read_json(h: _Handler):
        text = (h.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit()):
            h.close_connection = True  # the body's end is unknown: the connection cannot go on
            raise ValueError(f"Content-Length must be a number of bytes, got {text[:20]!r}")
        length = int(text[:12])
        if length > _MAX_CONTROL_BODY:
            h.close_connection = True
            raise ValueError(
                f"body of {length} bytes is over the {_MAX_CONTROL_BODY} bytes a control request may have"
            )
        raw = h.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError as exc:
            raise ValueError(f"body is not JSON: {exc}") from None

    def _json(self, h: _Handler, status: int, payload) -> None:
        body = (json.dumps(payload, indent=1) + "\n").encode()
        self._send(h, status, body, "application/json")

    @staticmethod
    def _send(
        h: _Handler,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict | None = None,
        content_length: int | None = None,
        close: bool = False,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        if close:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        try:
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    @staticmethod
    def _send_slowly(
        h: _Handler, status: int, body: bytes, content_type: str, headers: dict, bytes_per_second: int
    ) -> None:
        """The whole answer at `bytes_per_second`, a slice every 50 ms: a read timeout never fires."""
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            h.send_header(key, value)
        h.end_headers()
        started = time.monotonic()
        sent = 0
        try:
            h.wfile.flush()
            while sent < len(body):
                due = min(len(body), max(sent + 1, int((time.monotonic() - started) * bytes_per_second)))
                h.wfile.write(body[sent:due])
                h.wfile.flush()
                sent = due
                if sent < len(body):
                    time.sleep(_DRIP_INTERVAL)
        except OSError:  # the client gave up (or the server stops): nothing more to send
            h.close_connection = True

    @staticmethod
    def _send_huge(h: _Handler, size: int, chunked: bool) -> None:
        """A 200 CSV answer of `size` bytes, written block by block: never built in memory."""
        h.send_response(200)
        h.send_header("Content-Type", exports.CSV_TYPE)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(size))
        h.end_headers()
        block = memoryview(_HUGE_FILLER)
        left = size
        try:
            while left > 0:
                piece = block[: min(left, len(block))]
                if chunked:
                    h.wfile.write(f"{len(piece):x}\r\n".encode())
                    h.wfile.write(piece)
                    h.wfile.write(b"\r\n")
                else:
                    h.wfile.write(piece)
                left -= len(piece)
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client aborted the download, as it should
            h.close_connection = True

    @staticmethod
    def _reset(h: _Handler) -> None:
        # SO_LINGER 0 turns close() into a TCP reset: the client sees no answer at all.
        h.close_connection = True
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        except OSError:
            pass
