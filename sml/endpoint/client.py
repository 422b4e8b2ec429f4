"""`sml endpoint predict`: send rows to the deployed API in requests it accepts, SigV4-signed when it uses IAM.

Requests stay under both limits of the function: MAX_BATCH rows, and Lambda's 6 MB event. A request the API
still refuses as too large (a function deployed with a smaller MAX_BATCH) is split in half and sent again.
"""

import csv
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from sml.aws import NO_CREDENTIALS
from sml.errors import UserError

AUTH_MODES = ("iam", "jwt", "none")
STACK_AUTH = {"AWS_IAM": "iam", "JWT": "jwt", "NONE": "none"}  # the stack's ApiAuth output -> ours
DEFAULT_MAX_BATCH = 256  # MAX_BATCH in template.yaml
MAX_REQUEST_BYTES = 5 * 1024 * 1024  # Lambda takes 6 MB per event; the event wraps the body with headers and context
EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")
TIMEOUT_S = 60


class EndpointError(UserError):
    """The API refused a request or could not be reached."""


@dataclass
class Api:
    """The deployed HTTP API: where it is and how to authenticate to it."""

    url: str
    auth: str = "none"
    session: boto3.Session | None = None  # signs requests when auth is "iam"
    token: str | None = None  # bearer token when auth is "jwt"
    requests_sent: int = field(default=0, init=False)

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """(status, decoded JSON body) of one request; network failures raise EndpointError."""
        url = self.url.rstrip("/") + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth == "jwt":
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.auth == "iam":
            headers = self.signed_headers(method, url, body, headers)
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        self.requests_sent += 1
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.status, decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, decode(error.read())
        except (urllib.error.URLError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise EndpointError(f"cannot reach {url}: {reason}") from None

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


def read_rows(path: Path, api: Api) -> list[Any]:
    """Rows from JSON (a list of rows, or {"instances": [...]}) or CSV (columns picked by the model's feature names)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--file {path} not found") from None
    if path.suffix.lower() == ".json":
        return json_rows(path, text)
    return csv_rows(path, text, model_card(api))


def json_rows(path: Path, text: str) -> list[Any]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise UserError(f"--file {path} is not valid JSON: {error}") from None
    rows = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(rows, list) or not rows:
        raise UserError(f'--file {path}: expected a non-empty list of rows, or {{"instances": [...]}}')
    return rows


def csv_rows(path: Path, text: str, card: dict[str, Any]) -> list[Any]:
    """Numbers by row; a header row selects and orders the columns by the card's feature names (dropping others)."""
    table = [row for row in csv.reader(text.splitlines()) if row]
    if not table:
        raise UserError(f"--file {path} holds no rows")
    header = table[0] if not all(is_number(cell) for cell in table[0]) else None
    body = table[1:] if header else table
    feature_names = card.get("input", {}).get("feature_names") or []
    columns = list(range(len(table[0])))
    if header and feature_names:
        missing = [name for name in feature_names if name not in header]
        if missing:
            raise UserError(f"--file {path} lacks columns the model needs: {', '.join(missing[:5])}")
        columns = [header.index(name) for name in feature_names]
    try:
        rows = [[float(row[index]) for index in columns] for row in body]
    except (ValueError, IndexError):
        raise UserError(f"--file {path}: every row must hold {len(columns)} numbers") from None
    shape = card.get("input", {}).get("shape") or []
    row_shape = [size for size in shape[1:] if isinstance(size, int)]
    if len(shape) > 2 and len(row_shape) == len(shape) - 1 and math.prod(row_shape) == len(columns):
        return [nest(row, row_shape) for row in rows]  # image-shaped models take [rows, C, H, W]; CSV holds them flat
    return rows


def nest(values: list[float], shape: list[int]) -> list[Any]:
    """A flat row as nested lists of `shape` (row-major, like numpy's reshape)."""
    if len(shape) == 1:
        return values
    step = math.prod(shape[1:])
    return [nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def model_card(api: Api) -> dict[str, Any]:
    status, body = api.call("GET", "/model")
    if status != 200 or not isinstance(body, dict):
        raise EndpointError(f"GET /model answered {status}: {error_message(body)}")
    return body


def batches(rows: list[Any], max_rows: int, max_bytes: int = MAX_REQUEST_BYTES) -> Iterator[list[Any]]:
    """Consecutive slices of `rows` with at most `max_rows` rows and `max_bytes` of JSON each."""
    batch: list[Any] = []
    size = 0
    for number, row in enumerate(rows):
        row_bytes = len(json.dumps(row)) + 2
        if row_bytes > max_bytes:
            raise UserError(f"row {number} alone is {row_bytes} bytes of JSON, over the {max_bytes}-byte request limit")
        if batch and (len(batch) == max_rows or size + row_bytes > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_bytes
    if batch:
        yield batch


def predict(api: Api, rows: list[Any], max_rows: int = DEFAULT_MAX_BATCH) -> dict[str, Any]:
    """POST /predict batch by batch; the answers joined in row order."""
    answers = [answer for batch in batches(rows, max_rows) for answer in predict_batch(api, batch)]
    joined: dict[str, Any] = {"predictions": [p for answer in answers for p in answer["predictions"]]}
    if all("probabilities" in answer for answer in answers):
        joined["probabilities"] = [p for answer in answers for p in answer["probabilities"]]
        joined["labels"] = answers[0].get("labels")
    models = [answer.get("model") for answer in answers]
    joined["model"] = models[0]
    if any(model != models[0] for model in models):  # a canary deployment answers from two versions at once
        joined["models"] = unique(models)
    return joined


def predict_batch(api: Api, batch: list[Any]) -> list[dict[str, Any]]:
    status, body = api.call("POST", "/predict", json.dumps({"instances": batch}).encode())
    if status == 413 and len(batch) > 1:  # the function's MAX_BATCH is below ours, or the event is too large
        half = len(batch) // 2
        return predict_batch(api, batch[:half]) + predict_batch(api, batch[half:])
    if status == 403 and api.auth == "iam":
        raise EndpointError(
            f"POST /predict answered 403: {error_message(body)} (your principal needs execute-api:Invoke on the API)"
        )
    if status != 200 or not isinstance(body, dict) or len(body.get("predictions", [])) != len(batch):
        raise EndpointError(f"POST /predict answered {status}: {error_message(body)}")
    return [body]


def error_message(body: Any) -> str:
    """The API's {"error": {"code", "message"}}, API Gateway's {"message"}, or the raw text."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('code')}: {error.get('message')}"
        if "message" in body:
            return str(body["message"])
    return str(body)[:200]


def unique(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
