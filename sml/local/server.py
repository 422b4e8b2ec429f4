"""`sml serve`: the template's API on 127.0.0.1, each request an API Gateway event to a warm local function."""

import json
import logging
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import SplitResult, urlsplit

from sml.errors import UserError
from sml.local.events import HttpRequest, HttpResponse, api_event
from sml.local.framing import HttpError, read_body
from sml.local.gateway import compile_routes, gateway_error, match_route, refusal, to_http_response
from sml.local.template import Route
from sml.local.worker import MAX_PAYLOAD_BYTES, FunctionWorker

MAX_REQUEST_LINE = 65536  # http.server's own limit on the request line
MAX_LOGGED_PATH = 200  # the access log shows no more of a path
IDLE_TIMEOUT_S = 30  # a connection that sends nothing for this long is closed (a request mid-way gets a 408)

logger = logging.getLogger("sml.serve")


class LocalApi:
    """The routes of a template, each served by its function's warm worker."""

    def __init__(self, routes: list[Route], workers: dict[str, FunctionWorker]) -> None:
        self.routes = compile_routes(routes)
        self.workers = workers

    def handle(self, request: HttpRequest) -> HttpResponse:
        matched = match_route(self.routes, request.method, request.path)
        if matched is None:
            return refusal(404, f"no route {request.method} {request.path}")
        route, path_parameters = matched
        event = api_event(request, route, path_parameters)
        if len(json.dumps(event)) > MAX_PAYLOAD_BYTES:  # base64 grows a body by a third
            return refusal(413, f"the event for this request is over Lambda's {MAX_PAYLOAD_BYTES} byte limit")
        invocation = self.workers[route.function_id].invoke(event)
        if invocation.error is not None:
            error = invocation.error
            logger.error("%s %s: %s", route.function_id, error.get("errorType"), error.get("errorMessage"))
        return to_http_response(route, invocation)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()


def serve(api: LocalApi, host: str, port: int) -> None:
    """Serve `api` on host:port until SIGINT or SIGTERM, then stop its workers.

    Raises:
        UserError: the address cannot be listened on (port taken, no such interface).
    """
    try:
        server = LocalApiServer((host, port), api)
    except OSError as error:
        api.close()
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror}") from None

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown).start()  # shutdown() waits for serve_forever: not from here

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for item in api.routes:
        logger.info("route %s %s -> %s", item.route.method, item.route.path, item.route.function_id)
    logger.info("listening on http://%s:%d (Ctrl+C stops)", host, server.server_port)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        api.close()
    logger.info("stopped")


class LocalApiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: socketserver's 5 resets connections from 32 busy clients

    def __init__(self, address: tuple[str, int], api: LocalApi) -> None:
        super().__init__(address, RequestHandler)
        self.api = api

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, not socketserver's traceback: a client that goes away mid-answer is not our failure."""
        error = sys.exc_info()[1]
        logger.warning("connection from %s ended: %s: %s", client_address[0], type(error).__name__, error)


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server: LocalApiServer
    raw_requestline: bytes

    def dispatch(self) -> None:
        started = time.perf_counter()
        try:
            url = urlsplit(self.path)
        except ValueError as error:  # "http://[::1/": an authority urlsplit cannot read
            self.discard_body()
            self.close_connection = True
            url, response = urlsplit(""), refusal(400, f"the request target is not a URL: {error}")
        else:
            response = self.respond(url)
        self.write_response(response)
        duration_ms = (time.perf_counter() - started) * 1000
        logger.info("%s %s %d %.1f ms", self.command, url.path[:MAX_LOGGED_PATH], response.status, duration_ms)

    def respond(self, url: SplitResult) -> HttpResponse:
        try:
            body = read_body(self.rfile, self.headers)
        except HttpError as error:
            self.close_connection = self.close_connection or not error.keep_alive
            return refusal(error.status, error.message)
        except TimeoutError:
            self.close_connection = True
            return refusal(408, f"the body did not arrive within {IDLE_TIMEOUT_S} s")
        request = HttpRequest(
            method=self.command,
            path=url.path,
            query=url.query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        try:
            return self.server.api.handle(request)
        except Exception as error:  # one line in the log and a 502, as API Gateway would answer
            logger.error("%s %s failed: %s: %s", request.method, request.path, type(error).__name__, error)
            return gateway_error(502, "Internal server error")

    def discard_body(self) -> None:
        """Read a refused request's body (its framing permitting), so the answer is not lost to a reset."""
        try:
            read_body(self.rfile, self.headers)
        except (HttpError, TimeoutError):
            self.close_connection = True

    def handle_expect_100(self) -> bool:
        """Refuse an oversized body before the client sends it (curl and others ask first)."""
        length = self.headers.get("Content-Length") or "0"
        if length.isdigit() and int(length) > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            self.write_response(refusal(413, f"the body is over Lambda's {MAX_PAYLOAD_BYTES} byte limit"))
            logger.info("%s %s 413 (refused before upload)", self.command, self.path.split("?")[0])
            return False
        return super().handle_expect_100()

    def parse_request(self) -> bool:
        """http.server's parsing, refusing what it lets through (HTTP/0.9, versions below 1.0) or drops silently."""
        if self.raw_requestline in (b"\r\n", b"\n"):  # RFC 9112 2.2: ignore one empty line before a request
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if not self.raw_requestline:
                self.close_connection = True
                return False
        if len(self.raw_requestline) > MAX_REQUEST_LINE or not self.raw_requestline.strip():
            self.command, self.requestline, self.request_version = "", "", "HTTP/1.1"  # what send_error reads
            too_long = len(self.raw_requestline) > MAX_REQUEST_LINE
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG if too_long else HTTPStatus.BAD_REQUEST)
            return False
        if not super().parse_request():
            return False
        if not self.request_version.startswith("HTTP/1."):
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"{self.request_version} is not supported")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's refusals (bad request line, headers too large, ...) in JSON; its own are HTML."""
        self.close_connection = True  # after a malformed request the stream's framing cannot be trusted
        if not self.request_version.startswith("HTTP/1."):
            self.request_version = "HTTP/1.1"  # else http.server writes no status line and no headers
        response = refusal(code, message or HTTPStatus(code).phrase)
        self.write_response(response)
        logger.info("refused %s: %d %s", ascii(self.requestline[:100]), code, message)

    def write_response(self, response: HttpResponse) -> None:
        self.send_response_only(response.status)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def __getattr__(self, name: str) -> Any:
        """Every method reaches dispatch(), as at API Gateway: one without a route gets its 404, not a 501."""
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's own access log: dispatch() writes one line per request."""
