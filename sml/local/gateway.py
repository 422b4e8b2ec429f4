"""What API Gateway does around a function: pick the request's route, and make an HTTP response of the reply."""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from http import HTTPStatus

from sml.local.events import HttpResponse
from sml.local.template import Route
from sml.local.worker import Invocation


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    pattern: re.Pattern[str] | None  # None: the $default route, which takes any request
    names: tuple[str, ...]


def compile_routes(routes: list[Route]) -> list[CompiledRoute]:
    """Routes in API Gateway's order of preference: exact paths, then {params}, then {greedy+}, then $default."""
    compiled = []
    for route in routes:
        if route.path == "$default":
            compiled.append(CompiledRoute(route, None, ()))
            continue
        names, parts = [], []
        for literal, name, greedy in re.findall(r"([^{]*)(?:\{([^}+]+)(\+?)\})?", route.path):
            parts.append(re.escape(literal))
            if name:
                names.append(name)
                parts.append("(.+)" if greedy else "([^/]+)")
        compiled.append(CompiledRoute(route, re.compile("".join(parts)), tuple(names)))

    def specificity(item: CompiledRoute) -> tuple[bool, bool, int, int, bool]:
        path = item.route.path
        return item.pattern is None, "+}" in path, len(item.names), -len(path), item.route.method == "ANY"

    return sorted(compiled, key=specificity)


ANY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")  # what an ANY route takes


def match_route(routes: list[CompiledRoute], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for item in routes:
        if item.route.method != method and not (item.route.method == "ANY" and method in ANY_METHODS):
            continue
        if item.pattern is None:
            return item.route, {}
        found = item.pattern.fullmatch(path)
        if found:
            return item.route, dict(zip(item.names, found.groups(), strict=True))
    return None


# The error code of each refusal `sml serve` writes itself, in the function's {"error": {"code", "message"}} form.
REFUSAL_CODES = {
    400: "bad_request",
    404: "not_found",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    501: "not_implemented",
    505: "http_version_not_supported",
}


def refusal(status: int, message: str) -> HttpResponse:
    """A request refused before any function sees it, answered in the function's error form."""
    code = REFUSAL_CODES.get(status) or re.sub(r"\W+", "_", HTTPStatus(status).phrase.lower())
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


def gateway_error(status: int, message: str) -> HttpResponse:
    """API Gateway's own answer when the function fails: its body, as the deployed API sends it."""
    body = json.dumps({"message": message}).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


def to_http_response(route: Route, invocation: Invocation) -> HttpResponse:
    """What API Gateway makes of the function's reply; a failed or malformed reply is the gateway's 500/502."""
    failed = (
        gateway_error(502, "Internal server error")
        if route.api == "Api"
        else gateway_error(500, "Internal Server Error")
    )
    result = invocation.result
    if invocation.error is not None:
        return failed
    if route.payload_version == "2.0" and not (isinstance(result, dict) and "statusCode" in result):
        # Payload 2.0 treats a reply without statusCode as a 200 JSON body.
        return HttpResponse(200, [("content-type", "application/json")], json.dumps(result).encode())
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        return failed
    body = result.get("body") or ""
    if not isinstance(body, str):
        return failed
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(str(name), str(value)) for value in values]
    headers += [("set-cookie", str(cookie)) for cookie in result.get("cookies") or []]
    try:
        data = base64.b64decode(body, validate=True) if result.get("isBase64Encoded") else body.encode("utf-8")
    except binascii.Error:
        return failed
    return HttpResponse(result["statusCode"], headers, data)
