"""POST /predict's work, from an API Gateway event to the answer's JSON: no routing, no logging, no metrics.

For a tabular model JSON handling, not the model, dominates a request: the body is parsed once with
orjson and turned into one numpy array, whose dtype, shape and finiteness numpy checks. Checking each
number in Python (or with pydantic) would cost more than the model, and pydantic's import would add to
every cold start. openapi_doc.py describes the same body for the OpenAPI document.
"""

import binascii
import contextlib
import json
import math
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import orjson
from contract import LAMBDA_RESPONSE_BYTES
from model import Float32Array, Model


class ApiError(Exception):
    """A request we refuse: becomes `{"error": {"code", "message"}}` with its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def document(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def model_unavailable(load_error: str | None) -> ApiError:
    return ApiError(503, "model_unavailable", f"the model is not loaded: {load_error}")


class Prediction(NamedTuple):  # a NamedTuple, like model.Model: ~1 ms less cold start than a dataclass
    """The answer to one request, and what the function records about it."""

    answer: dict[str, Any]
    rows: int
    model_ms: float


def serialize(document: Any) -> str:
    # orjson writes numpy arrays directly, so probabilities never become Python lists of floats.
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY).decode()


# The longest text orjson writes for a float32 (shortest round-trip form, sign and exponent): "-1.1754944e-38".
FLOAT32_TEXT_BYTES = 14
# What the proxy response adds around the body: statusCode, headers, isBase64Encoded, cookies (app.lambda_handler).
ENVELOPE_BYTES = 256


def embedded_size(document: Any) -> int:
    """The bytes `document` takes as the proxy response's body: JSON text inside a JSON string."""
    return len(orjson.dumps(serialize(document)))


def rows_that_fit(ready: Model) -> int:
    """How many rows' answer stays within Lambda's response limit, counting each number at its longest."""
    identity = {"name": ready.name, "version": ready.version}
    # model.load's self-test holds the graph to answering one number per label (one per row for regression).
    width = len(ready.labels) or 1
    if ready.task == "regression":
        fixed = embedded_size({"predictions": [], "model": identity})
        label = 0
    else:
        fixed = embedded_size({"predictions": [], "probabilities": [], "labels": ready.labels, "model": identity})
        label = max((embedded_size(name) for name in ready.labels), default=2) + 1  # quotes escaped, a comma
    # Each row: its numbers and their commas, "[]" and a comma; a row of a multi-output model is one more [].
    row = label + width * (FLOAT32_TEXT_BYTES + 1) + 4
    return max(0, (LAMBDA_RESPONSE_BYTES - ENVELOPE_BYTES - fixed) // row)


def predict(ready: Model, event: Mapping[str, Any], max_batch: int, rows_fit: int) -> Prediction:
    """Score the event's `instances` with the model, or raise ApiError.

    `rows_fit` (rows_that_fit, computed once per model) refuses a batch whose answer Lambda could not return.
    """
    body = read_body(event)
    if ready.schema is None:  # numeric features only: one float array, the fast path
        batch = parse_instances(body, ready.row_shape, max_batch, ready.card)
        categories = None
    else:
        from records import parse_rows  # models with categorical inputs only

        batch, categories = parse_rows(body, read_instances(parse_json(body)), ready.schema, max_batch)
    if len(batch) > rows_fit:
        raise ApiError(
            413,
            "batch_too_large",
            f"at most {rows_fit} instances per request for this model, got {len(batch)}: "
            f"the answer to more would exceed Lambda's {LAMBDA_RESPONSE_BYTES} byte response limit",
        )
    started = time.perf_counter()
    scores = ready.predict(batch) if categories is None else ready.predict_categories(batch, categories)
    model_ms = (time.perf_counter() - started) * 1000.0
    return Prediction(answer(ready, scores), len(batch), model_ms)


def answer(ready: Model, scores: Float32Array) -> dict[str, Any]:
    identity = {"name": ready.name, "version": ready.version}
    if ready.task == "regression":
        return {"predictions": scores, "model": identity}
    labels = ready.labels
    return {
        "predictions": [labels[index] for index in scores.argmax(axis=1).tolist()],
        "probabilities": scores,
        "labels": labels,
        "model": identity,
    }


def read_body(event: Mapping[str, Any]) -> bytes | str:
    # API Gateway's HTTP API (payload 2.0) sends header names in lower case.
    content_type = ((event.get("headers") or {}).get("content-type") or "application/json").split(";")[0]
    content_type = content_type.strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", f"send Content-Type: application/json, not {content_type}")
    body: str = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body
    try:
        return binascii.a2b_base64(body, strict_mode=True)  # what base64.b64decode does, without its import
    except (binascii.Error, ValueError) as error:
        raise ApiError(400, "invalid_json", f"the body is flagged base64 but is not valid base64: {error}") from error


def reject_non_finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ApiError(422, "non_finite", f"instances must be finite numbers, got {text}")
    return value


def parse_json(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        # orjson refuses NaN, Infinity and 1e999 as syntax errors; name them instead: they are a data mistake.
        with contextlib.suppress(ValueError, RecursionError):  # too deep or not JSON at all: the 400 below
            json.loads(
                body, parse_constant=reject_non_finite, parse_float=reject_non_finite, parse_int=reject_non_finite
            )
        raise ApiError(400, "invalid_json", f"the body is not valid UTF-8 JSON: {error}") from error


def holds_boolean(body: bytes | str, instances: list[Any]) -> bool:
    """Whether a row holds true or false, which numpy would read as 1 and 0 in a row with numbers."""
    # A text search keeps the walk off every request that holds neither word.
    found = ("true" in body or "false" in body) if isinstance(body, str) else (b"true" in body or b"false" in body)
    if not found:
        return False
    return any(type(value) is bool for value in np.array(instances, dtype=object).flat)


def only_numbers(body: bytes | str, key: str = "") -> bool:
    """Whether the JSON `body` holds only numbers and arrays from its first [ on, as {"instances": [[...]]} does,
    or after `key` (quoted, as '"data"') where that is its one such key: no string or key ("), object ({), true
    or null (u) or false (a).

    Then numpy reads the rows straight into float32, without telling numbers from text, true or null value by
    value: a third less time at 64 rows of 64. Each search for one character takes a microsecond or two.
    """
    text = body if isinstance(body, str) else body.decode("latin-1")  # a base64 body: each byte one character
    found = text.find(key or "[")
    if found < 0 or (key and text.rfind(key) != found):
        return False
    start = found + len(key)
    return (
        text.find('"', start) < 0
        and text.find("{", start) < 0
        and text.find("u", start) < 0
        and text.find("a", start) < 0
    )


def straight_float32(data: list[Any]) -> Float32Array | None:
    """`data`, which only_numbers found to hold numbers and arrays only, read straight into float32; None when
    its rows are ragged or a value is beyond float32, which the reading that checks each value then names."""
    try:
        with np.errstate(over="raise"):
            return np.array(data, dtype=np.float32)
    except (ValueError, FloatingPointError):
        return None


def read_instances(document: Any) -> list[Any]:
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise ApiError(422, "invalid_instances", 'send {"instances": [[...], ...]}: a non-empty list of rows')
    return instances


def parse_instances(
    body: bytes | str, row_shape: tuple[int, ...], max_batch: int, card: Mapping[str, Any] | None = None
) -> Float32Array:
    """The body's `instances` as a float32 array of shape [n, *row_shape], or an ApiError.

    Rows sent as objects keyed by feature name (records.py) need the `card`'s input.feature_names.
    """
    instances = read_instances(parse_json(body))
    if not isinstance(instances[0], list):
        if isinstance(instances[0], dict) and card is not None:
            from records import named_numbers  # rows by feature name: not on the positional rows' path

            names = card["input"].get("feature_names") or []
            return named_numbers(body, instances, names, max_batch).reshape(-1, *row_shape)
        raise ApiError(422, "invalid_instances", f"each instance must be a list of shape {list(row_shape)}")
    if len(instances) > max_batch:
        raise ApiError(413, "batch_too_large", f"at most {max_batch} instances per request, got {len(instances)}")
    if only_numbers(body) and (batch := straight_float32(instances)) is not None and batch.shape[1:] == row_shape:
        return batch
    try:
        batch = np.array(instances)
    except ValueError as error:  # ragged rows
        raise ApiError(422, "invalid_instances", f"every instance must have shape {list(row_shape)}") from error
    if batch.dtype.kind not in "iuf" or holds_boolean(body, instances):
        raise ApiError(422, "invalid_instances", "instances must contain numbers only (true and false are not)")
    if batch.shape[1:] != row_shape:
        raise ApiError(
            422, "invalid_instances", f"every instance must have shape {list(row_shape)}, got {list(batch.shape[1:])}"
        )
    if batch.dtype.kind != "f":
        return batch.astype(np.float32)  # JSON integers (at most 64 bits) are all finite in float32
    try:
        # orjson refused NaN, Infinity and 1e999, so only the cast can yield a non-finite value (a float64
        # beyond float32's range), and numpy's overflow flag says so: no isfinite pass on every request.
        with np.errstate(over="raise"):
            return batch.astype(np.float32)
    except FloatingPointError:
        with np.errstate(over="ignore"):
            finite_rows = np.isfinite(batch.astype(np.float32)).reshape(len(batch), -1).all(axis=1)
        row = int(np.argmin(finite_rows))
        raise ApiError(422, "non_finite", f"instance {row} holds a value that is not a finite float32 number") from None
