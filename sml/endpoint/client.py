"""The deployed HTTP API as `sml endpoint` calls it: one kept-alive connection per worker thread, SigV4-signed
requests when the API uses IAM, a bearer token when it uses JWT.
"""

import http.client
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from sml.aws import NO_CREDENTIALS
from sml.errors import UserError

AUTH_MODES = ("iam", "jwt", "none")
STACK_AUTH = {"AWS_IAM": "iam", "JWT": "jwt", "NONE": "none"}  # the stack's ApiAuth output -> ours
EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")
TIMEOUT_S = 60
# What a server's closing of an idle kept-alive connection looks like to the next request sent on it.
STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
# Network failures worth another try (a dropped connection, a timeout); a refused connection or an unknown host is not.
TRANSIENT_NETWORK = (*STALE_CONNECTION, TimeoutError, ConnectionAbortedError, http.client.IncompleteRead)


class EndpointError(UserError):
    """The API refused a request or could not be reached; `transient` when trying again may succeed."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # decoded JSON, else the text
    headers: dict[str, str]  # names in lower case


@dataclass
class Api:
    """The deployed HTTP API: where it is and how to authenticate to it."""

    url: str
    auth: str = "none"
    session: boto3.Session | None = None  # signs requests when auth is "iam"
    token: str | None = None  # bearer token when auth is "jwt"
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)

    def call(self, method: str, path: str, body: bytes | None = None) -> Response:
        """One request on this thread's connection; a network failure raises EndpointError."""
        url = self.url.rstrip("/") + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth == "jwt":
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.auth == "iam":
            headers = self.signed_headers(method, url, body, headers)
        target = urllib.parse.urlsplit(url)
        path_and_query = target.path + (f"?{target.query}" if target.query else "")
        try:
            return self.send(method, path_and_query, body, headers)
        except STALE_CONNECTION:
            self.close()  # the server closed the kept-alive connection while idle: send once more on a new one
        try:
            return self.send(method, path_and_query, body, headers)
        except (OSError, http.client.HTTPException) as error:
            self.close()
            reason = str(error) or type(error).__name__
            raise EndpointError(f"cannot reach {url}: {reason}", isinstance(error, TRANSIENT_NETWORK)) from None

    def send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        connection = self.connection()
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return Response(response.status, decode(data), {k.lower(): v for k, v in response.getheaders()})

    def connection(self) -> http.client.HTTPConnection:
        """This thread's connection to the API's host, opened on first use and kept alive between requests."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            target = urllib.parse.urlsplit(self.url)
            if target.scheme not in ("http", "https") or not target.hostname:
                raise UserError(f"--url {self.url!r} is not an http:// or https:// URL")
            kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
            connection = kind(target.hostname, target.port, timeout=TIMEOUT_S)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def signed_headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """SigV4 for execute-api, with the region of the API's hostname (else the session's)."""
        credentials = self.session.get_credentials() if self.session else None
        if credentials is None or self.session is None:
            raise UserError(NO_CREDENTIALS)
        host = urllib.parse.urlsplit(url).hostname or ""
        match = EXECUTE_API_HOST.fullmatch(host)
        region = match.group(1) if match else self.session.region_name
        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
        return dict(request.headers.items())


def decode(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode("utf-8", "replace")


def default_auth(url: str) -> str:
    """With --url and no --auth: sign requests to execute-api hostnames, send others (sml serve) as they are."""
    return "iam" if EXECUTE_API_HOST.fullmatch(urllib.parse.urlsplit(url).hostname or "") else "none"


def model_card(api: Api) -> dict[str, Any]:
    """GET /model: the card of the model the API serves (feature names, input shape, labels)."""
    response = api.call("GET", "/model")
    if response.status != 200 or not isinstance(response.body, dict):
        raise EndpointError(f"GET /model answered {response.status}: {error_message(response.body)}")
    return response.body


def error_message(body: Any) -> str:
    """The API's {"error": {"code", "message"}}, API Gateway's {"message"}, or the raw text."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('code')}: {error.get('message')}"
        if "message" in body:
            return str(body["message"])
    return str(body)[:200]
