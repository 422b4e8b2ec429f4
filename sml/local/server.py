"""`sml serve`: the template's API on 127.0.0.1, each request an API Gateway event to a warm local function."""

import json
import logging
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from sml.errors import UserError
from sml.local.events import HttpRequest, HttpResponse, api_event
from sml.local.gateway import compile_routes, gateway_error, match_route, to_http_response
from sml.local.template import Route
from sml.local.worker import MAX_PAYLOAD_BYTES, FunctionWorker

DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # past this we close the connection instead of reading the rest

logger = logging.getLogger("sml.serve")


class LocalApi:
    """The routes of a template, each served by its function's warm worker."""

    def __init__(self, routes: list[Route], workers: dict[str, FunctionWorker]) -> None:
        self.routes = compile_routes(routes)
        self.workers = workers

    def handle(self, request: HttpRequest) -> HttpResponse:
        matched = match_route(self.routes, request.method, request.path)
        if matched is None:
            return gateway_error(404, "Not Found")
        route, path_parameters = matched
        event = api_event(request, route, path_parameters)
        if len(json.dumps(event)) > MAX_PAYLOAD_BYTES:  # base64 grows a body by a third
            return gateway_error(413, "Request Entity Too Large")
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

    def __init__(self, address: tuple[str, int], api: LocalApi) -> None:
        super().__init__(address, RequestHandler)
        self.api = api


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalApiServer

    def dispatch(self) -> None:
        started = time.perf_counter()
        response = self.respond()
        self.write_response(response)
        duration_ms = (time.perf_counter() - started) * 1000
        logger.info("%s %s %d %.1f ms", self.command, urlsplit(self.path).path, response.status, duration_ms)

    def respond(self) -> HttpResponse:
        try:
            body = self.read_body()
        except ValueError:  # a Content-Length or chunk size that is not a number
            self.close_connection = True
            return gateway_error(400, "Bad Request")
        if body is None:
            return gateway_error(413, "Request Entity Too Large")
        url = urlsplit(self.path)
        request = HttpRequest(
            method=self.command,
            path=url.path,
            query=url.query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        return self.server.api.handle(request)

    def handle_expect_100(self) -> bool:
        """Refuse an oversized body before the client sends it (curl and others ask first)."""
        length = self.headers.get("Content-Length") or "0"
        if length.isdigit() and int(length) > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            self.write_response(gateway_error(413, "Request Entity Too Large"))
            logger.info("%s %s 413 (refused before upload)", self.command, urlsplit(self.path).path)
            return False
        return super().handle_expect_100()

    def read_body(self) -> bytes | None:
        """The request body, or None when it is over Lambda's limit (then it is drained, never kept).

        Raises:
            ValueError: the framing (Content-Length, chunk sizes) is not valid HTTP.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError(f"negative Content-Length {length}")
        if length <= MAX_PAYLOAD_BYTES:
            return self.rfile.read(length)
        self.discard(length)
        return None

    def read_chunked(self) -> bytes | None:
        chunks, total = [], 0
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            total += size
            if total > MAX_PAYLOAD_BYTES:
                self.close_connection = True  # the rest of the stream is never read
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def discard(self, length: int) -> None:
        """Read and drop an oversized body, so the client gets our 413 rather than a reset connection."""
        if length > DRAIN_LIMIT_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

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
