"""Events for a function: an HTTP request as API Gateway sends it (payload 2.0 for HttpApi, 1.0 for Api), or a file."""

import base64
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from sml.errors import UserError
from sml.local.cloudformation import ACCOUNT_ID
from sml.local.template import Route

API_ID = "1234567890"  # the ids `sam local start-api` puts in its events
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
              "application/x-www-form-urlencoded", "+json", "+xml")  # fmt: skip


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: str  # the raw query string, without "?"
    headers: list[tuple[str, str]]  # as received, duplicates kept
    body: bytes
    source_ip: str
    protocol: str  # "HTTP/1.1"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def read_event(source: str) -> Any:
    """The event for `sml invoke -e`: a JSON file, or "-" for stdin."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        return json.loads(text)
    except FileNotFoundError:
        raise UserError(f"event file {source} not found") from None
    except json.JSONDecodeError as error:
        raise UserError(f"event {source} is not valid JSON: {error}") from None


def api_event(request: HttpRequest, route: Route, path_parameters: dict[str, str]) -> dict[str, Any]:
    """The event API Gateway would send the route's function for this request."""
    if route.payload_version == "1.0":
        return _rest_event(request, route, path_parameters)
    return _http_api_event(request, route, path_parameters)


def route_key(route: Route) -> str:
    return "$default" if route.path == "$default" else f"{route.method} {route.path}"


def _http_api_event(request: HttpRequest, route: Route, path_parameters: dict[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    headers = _joined([(name.lower(), value) for name, value in request.headers if name.lower() != "cookie"])
    cookies = [c.strip() for n, v in request.headers if n.lower() == "cookie" for c in v.split(";") if c.strip()]
    query = _joined(parse_qsl(request.query, keep_blank_values=True))
    domain = headers.get("host", "localhost").rsplit(":", 1)[0]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key(route),
        "rawPath": request.path,
        "rawQueryString": request.query,
        **({"cookies": cookies} if cookies else {}),
        "headers": headers,
        **({"queryStringParameters": query} if query else {}),
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key(route),
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        **({"pathParameters": path_parameters} if path_parameters else {}),
        "isBase64Encoded": False,
    }
    return event | _body_fields(request.body, headers.get("content-type", ""))


def _rest_event(request: HttpRequest, route: Route, path_parameters: dict[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC)
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.query, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    event: dict[str, Any] = {
        "resource": route.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {n: v[-1] for n, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "resourcePath": route.path,
            "httpMethod": request.method,
            "path": f"/Prod{request.path}",
            "protocol": request.protocol,
            "stage": "Prod",
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {"sourceIp": request.source_ip, "userAgent": _header(request, "user-agent")},
        },
        "body": None,  # REST events always carry the key
        "isBase64Encoded": False,
    }
    return event | _body_fields(request.body, _header(request, "content-type"))


def _body_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """Text bodies travel as they are; anything else (or text that is not UTF-8) as base64."""
    if not body:
        return {}
    if is_text(content_type):
        try:
            return {"body": body.decode("utf-8"), "isBase64Encoded": False}
        except UnicodeDecodeError:
            pass
    return {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}


def is_text(content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return any(media_type.startswith(t) if t.endswith("/") else t in media_type for t in TEXT_TYPES)


def _header(request: HttpRequest, name: str) -> str:
    return next((value for key, value in request.headers if key.lower() == name), "")


def _joined(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Payload 2.0 folds a repeated header or query key into one comma-joined value."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined
