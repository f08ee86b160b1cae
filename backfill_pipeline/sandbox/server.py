"""The sandbox dashboard over HTTP: exports, fault control, stats and request log."""

from __future__ import annotations

import collections
import datetime as dt
import json
import socket
import struct
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from . import exports, render
from .faults import FaultPlan, FaultRule, FaultSet
from .publication import DEFAULT_SEED, latest_published, open_program_year

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Dashboards - Toastmasters International</title></head>"
    "<body><h1>The dashboard is being updated</h1><p>Please try again later.</p></body></html>"
)
# How often serve_forever looks for a stop request: short, so stop() and test teardown are quick.
_POLL_SECONDS = 0.05


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], sandbox: SandboxServer
    ):
        super().__init__(address, handler)
        self.sandbox = sandbox


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "SandboxDashboard/1.0"
    timeout = 60

    def setup(self) -> None:
        super().setup()
        self.server.sandbox._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, False)

    def log_message(self, format: str, *args) -> None:
        pass  # the request log at /_sandbox/requests replaces stderr noise

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
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self._today = today
        self.bom = bom
        self._faults = FaultSet(faults or (), seed)
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
            "t": time.time(),
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
        if rule is not None and rule.kind == "reset":
            entry.update(outcome="reset")
            self._record(entry, plan.fired)
            return self._reset(h)
        if rule is not None and rule.kind == "error":
            response = exports.ExportResponse(
                rule.status, exports.SERVER_ERROR_PAGE.encode(), exports.HTML_TYPE, "fault_error"
            )
        elif rule is not None and rule.kind == "429":
            entry.update(status=429, outcome="fault_429")
            self._record(entry, plan.fired)
            return self._send(
                h, 429, b"Too Many Requests\n", exports.TEXT_TYPE, {"Retry-After": str(rule.retry_after)}
            )
        elif rule is not None and rule.kind == "html":
            response = exports.ExportResponse(200, HTML_PAGE.encode(), exports.HTML_TYPE, "fault_html")
        elif response is None and name is not None:
            try:
                response = exports.resolve(path_py, name, self.today, self.seed, self.bom)
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
        entry.update(status=response.status, outcome=outcome)
        self._record(entry, plan.fired)
        headers = {}
        if response.content_type == exports.CSV_TYPE:
            headers["Content-Disposition"] = "attachment; filename=export.csv"
        self._send(h, response.status, body, response.content_type, headers)

    def _control(self, h: _Handler, method: str, path: str, query: str) -> None:
        route = path.rstrip("/")
        if route == "/_sandbox/health" and method == "GET":
            today = self.today
            latest = latest_published(today, self.seed)
            return self._json(
                h,
                200,
                {
                    "status": "ok",
                    "seed": self.seed,
                    "today": today.isoformat(),
                    "latestAsOf": latest.isoformat() if latest else None,
                    "openProgramYear": open_program_year(today, self.seed),
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
        latest = latest_published(today, self.seed)
        py = open_program_year(today, self.seed)
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
            "Control: /_sandbox/health, /_sandbox/faults, /_sandbox/stats, /_sandbox/requests\n"
        )

    @staticmethod
    def _read_json(h: _Handler):
        length = int(h.headers.get("Content-Length") or 0)
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
    def _reset(h: _Handler) -> None:
        # SO_LINGER 0 turns close() into a TCP reset: the client sees no answer at all.
        h.close_connection = True
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        except OSError:
            pass
