"""The prediction API on Lambda: POST /predict, GET /model, GET /health and GET /openapi.json.

Every refusal is `{"error": {"code", "message"}}` with one of these statuses:

    status  code                     when
    400     invalid_json             the body is empty, not UTF-8 JSON, nested too deeply, or flagged
                                     base64 but not valid base64
    404     not_found                no such route
    413     batch_too_large          more than MAX_BATCH instances
    415     unsupported_media_type   a Content-Type other than application/json
    422     invalid_instances        no `instances`, not a non-empty list of rows of the card's shape,
                                     or values that are not numbers
    422     non_finite               NaN, Infinity or a number beyond float32 (1e999)
    503     model_unavailable        the bundle is missing, corrupt or fails its sha256 (GET /health says why)

For a tabular model JSON handling, not the model, dominates a request: the body is parsed once with
orjson and turned into one numpy array, whose dtype, shape and finiteness numpy checks, not through
powertools' pydantic validation (so its RequestValidationError never arises): checking each number
in Python would cost more than the model, and pydantic's import would add to every cold start. The
OpenAPI document still describes the exact body, built from the model card on the first GET
/openapi.json. Environment: MODEL_DIR, MAX_BATCH, ORT_INTRA_OP_THREADS. Costs: benchmarks/serving.py.
"""

import base64
import binascii
import contextlib
import json
import math
import os
import time
import warnings
from functools import cache
from typing import Any

import model
import numpy as np
import numpy.typing as npt
import orjson
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from openapi_doc import error_responses, predict_request_body, predict_response

MAX_BATCH = int(os.environ.get("MAX_BATCH", "256"))


def serialize(document: Any) -> str:
    # orjson writes numpy arrays directly, so probabilities never become Python lists of floats.
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY).decode()


logger = Logger()
tracer = Tracer(auto_patch=False)  # we call no AWS or HTTP API; patching botocore and requests costs cold start
metrics = Metrics()
# GET routes record no metrics on purpose; powertools would warn about it on every flush.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
app = APIGatewayHttpResolver(serializer=serialize)


class ApiError(Exception):
    """A request we refuse: becomes `{"error": {"code", "message"}}` with its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def load_model() -> tuple[model.Model | None, str | None]:
    """Load the bundle during init; a broken bundle is reported by every route, never a crash loop."""
    model_dir = model.resolve_model_dir(os.environ.get("MODEL_DIR", "model"))
    threads = int(os.environ.get("ORT_INTRA_OP_THREADS", "1"))
    try:
        loaded = model.load(model_dir, intra_op_threads=threads)
    except model.BundleError as error:
        logger.error("model unavailable", extra={"model_dir": str(model_dir), "reason": str(error)})
        return None, str(error)
    logger.append_keys(model_name=loaded.name, model_version=loaded.version)
    logger.info("model loaded", extra={"model_dir": str(model_dir), "task": loaded.task})
    return loaded, None


MODEL, LOAD_ERROR = load_model()


def ready_model() -> model.Model:
    if MODEL is None:
        raise ApiError(503, "model_unavailable", f"the model is not loaded: {LOAD_ERROR}")
    return MODEL


def error_response(error: ApiError) -> Response[Any]:
    body = {"error": {"code": error.code, "message": error.message}}
    return Response(error.status, content_types.APPLICATION_JSON, body)


@app.exception_handler(ApiError)  # type: ignore[untyped-decorator]  # powertools leaves it unannotated
def handle_api_error(error: ApiError) -> Response[Any]:
    return error_response(error)


@app.not_found
def handle_not_found(_: Exception) -> Response[Any]:
    event = app.current_event
    return error_response(ApiError(404, "not_found", f"no route {event.http_method} {event.path}"))


def read_body() -> bytes | str:
    event = app.current_event
    content_type = (event.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", f"send Content-Type: application/json, not {content_type}")
    body = event.body or ""
    if not event.is_base64_encoded:
        return body
    try:
        return base64.b64decode(body, validate=True)
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


def parse_instances(body: bytes | str, row_shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """The body's `instances` as a float32 array of shape [n, *row_shape], or an ApiError."""
    document = parse_json(body)
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise ApiError(422, "invalid_instances", 'send {"instances": [[...], ...]}: a non-empty list of rows')
    if not isinstance(instances[0], list):
        raise ApiError(422, "invalid_instances", f"each instance must be a list of shape {list(row_shape)}")
    if len(instances) > MAX_BATCH:
        raise ApiError(413, "batch_too_large", f"at most {MAX_BATCH} instances per request, got {len(instances)}")
    try:
        batch = np.array(instances)
    except ValueError as error:  # ragged rows
        raise ApiError(422, "invalid_instances", f"every instance must have shape {list(row_shape)}") from error
    if batch.dtype.kind not in "iuf":
        raise ApiError(422, "invalid_instances", "instances must contain numbers only")
    if batch.shape[1:] != row_shape:
        raise ApiError(
            422, "invalid_instances", f"every instance must have shape {list(row_shape)}, got {list(batch.shape[1:])}"
        )
    if batch.dtype.kind != "f":
        return batch.astype(np.float32)  # JSON integers (at most 64 bits) are all finite in float32
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused just below
        features = batch.astype(np.float32)
    if not np.isfinite(features).all():
        row = int(np.argmin(np.isfinite(features).reshape(len(features), -1).all(axis=1)))
        raise ApiError(422, "non_finite", f"instance {row} holds a value that is not a finite float32 number")
    return features


def run_model(ready: model.Model, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    started = time.perf_counter()
    scores = ready.predict(batch)
    latency_ms = (time.perf_counter() - started) * 1000.0
    # Two metrics, flushed once per invocation: Predictions' SampleCount is the request count and its
    # Average the batch size, so a separate BatchSize metric would only add EMF work to every request.
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(batch))
    metrics.add_metric(name="ModelLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    return scores


@app.post(
    "/predict",
    summary="Score a batch of instances",
    responses={200: predict_response(MODEL), **error_responses(413, 415, 422, 503)},
    # Powertools documents a request body only for pydantic-validated parameters; ours is checked with numpy.
    openapi_extensions={"requestBody": predict_request_body(MODEL, MAX_BATCH)},
)
def predict() -> dict[str, Any]:
    ready = ready_model()
    batch = parse_instances(read_body(), ready.row_shape)
    scores = run_model(ready, batch)
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


@app.get("/model", summary="The model card", responses=error_responses(503))
def model_card() -> dict[str, Any]:
    return ready_model().card


@app.get("/health", summary="Whether the model is loaded, and its version", responses=error_responses(503))
def health() -> Response[Any]:
    if MODEL is None:
        error = {"code": "model_unavailable", "message": f"the model is not loaded: {LOAD_ERROR}"}
        return Response(503, content_types.APPLICATION_JSON, {"status": "unavailable", "error": error})
    body = {"status": "ready", "model": {"name": MODEL.name, "version": MODEL.version, "task": MODEL.task}}
    return Response(200, content_types.APPLICATION_JSON, body)


@app.get("/openapi.json", summary="This API's OpenAPI document", responses=error_responses(503))
def openapi_document() -> Response[str]:
    return Response(200, content_types.APPLICATION_JSON, openapi_json(ready_model().version))


@cache
def openapi_json(version: str) -> str:
    # Generated on first request: it imports pydantic, which the cold start of /predict does not need.
    return app.get_openapi_json_schema(
        title="serverless-ml prediction API", version=version, description=__doc__.split("\n\n")[0]
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)  # predictions stay out of traces, and serialising them is slow
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # API Gateway's request id, read directly: correlation_id_path would run a JMESPath query per request.
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    return app.resolve(event, context)
