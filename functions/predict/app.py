"""The prediction API on Lambda: POST /predict, GET /model, GET /health and GET /openapi.json.

Every refusal is `{"error": {"code", "message"}}` with one of these statuses:

    status  code                     when
    400     invalid_event            the event is not an API Gateway HTTP API event (a direct invoke can send
                                     anything): not an object, no requestContext.http.method, a body or
                                     headers of the wrong type
    400     invalid_json             the body is empty, not UTF-8 JSON, nested too deeply, or flagged
                                     base64 but not valid base64
    404     not_found                no such route
    413     batch_too_large          more than MAX_BATCH instances, or more than fit in Lambda's 6 MB answer
    415     unsupported_media_type   a Content-Type other than application/json
    422     invalid_instances        no `instances`, not a non-empty list of rows of the card's shape,
                                     or values that are not numbers
    422     non_finite               NaN, Infinity or a number beyond float32 (1e999)
    503     model_unavailable        the bundle is missing or breaks its contract (contract.py; GET /health says why)

The /v2 routes speak the Open Inference Protocol, with its own error form (v2.py). The cold path imports
only what POST /predict needs: POST /predict goes straight to predict.py, /v2 paths to v2.py, and the
other routes to powertools' resolver (api.py), each loaded on its first request. Tracer() imports the
X-Ray SDK even when disabled, so it is built only when it will trace: in Lambda, unless
POWERTOOLS_TRACE_DISABLED (template.yaml's PowertoolsTraceDisabled, true by default). Environment:
MODEL_DIR, MAX_BATCH, ORT_INTRA_OP_THREADS. Costs: benchmarks/serving.py.
"""

import os
import warnings
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import model
import predict
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:  # annotations only: the cold path imports none (the resolver comes with the first GET)
    import v2
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    from aws_lambda_powertools.utilities.typing import LambdaContext

MAX_BATCH = int(os.environ.get("MAX_BATCH", "256"))
PREDICT_ROUTE = "POST /predict"
# powertools' strtobool true values; it raises on any other value, we trace (a typo must not crash-loop init)
TRUTHY = frozenset(("1", "y", "yes", "t", "true", "on"))
Handler = Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]]

logger = Logger()
metrics = Metrics()
# GET routes record no metrics on purpose; powertools would warn about it on every flush.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)


def tracing_enabled() -> bool:
    """Powertools' own rule for Tracer(): in Lambda (not `sam local`), unless POWERTOOLS_TRACE_DISABLED."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in TRUTHY
    return not disabled and "LAMBDA_TASK_ROOT" in os.environ and "AWS_SAM_LOCAL" not in os.environ


def load_model() -> tuple[model.Model | None, str | None, int]:
    """Load the bundle during init, and how many rows' answer fits in Lambda's reply (predict.rows_that_fit).

    A broken bundle is reported by every route, never a crash loop.
    """
    model_dir = model.resolve_model_dir(os.environ.get("MODEL_DIR", "model"))
    threads = int(os.environ.get("ORT_INTRA_OP_THREADS", "1"))
    try:
        loaded = model.load(model_dir, intra_op_threads=threads)
    except model.BundleError as error:
        logger.error("model unavailable", extra={"model_dir": str(model_dir), "reason": str(error)})
        return None, str(error), 0
    rows_fit = predict.rows_that_fit(loaded)
    logger.append_keys(model_name=loaded.name, model_version=loaded.version)
    logger.info("model loaded", extra={"model_dir": str(model_dir), "task": loaded.task, "rows_fit": rows_fit})
    return loaded, None, rows_fit


MODEL, LOAD_ERROR, ROWS_FIT = load_model()


def answer_predict(event: Mapping[str, Any]) -> tuple[int, str]:
    """POST /predict: the status and JSON body; a prediction also records its rows and the model's latency."""
    try:
        if MODEL is None:
            raise predict.model_unavailable(LOAD_ERROR)
        prediction = predict.predict(MODEL, event, MAX_BATCH, ROWS_FIT)
    except predict.ApiError as error:
        return error.status, predict.serialize(error.document())
    record_prediction(prediction.rows, prediction.model_ms)
    return 200, predict.serialize(prediction.answer)


def record_prediction(rows: int, model_ms: float) -> None:
    """The metrics of one scored batch, from POST /predict or v2 infer."""
    # Two metrics, flushed once per invocation: Predictions' SampleCount is the request count and its
    # Average the batch size, so a separate BatchSize metric would only add EMF work to every request.
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=rows)
    metrics.add_metric(name="ModelLatency", unit=MetricUnit.Milliseconds, value=model_ms)


@cache
def v2_server() -> "v2.Server":
    import v2  # the Open Inference Protocol's routes load on their first request, off POST /predict's cold start

    return v2.Server(MODEL, LOAD_ERROR, MAX_BATCH, record_prediction)


@cache
def resolver() -> "APIGatewayHttpResolver":
    import api  # the event handler's import is kept off POST /predict's cold start

    return api.build(MODEL, LOAD_ERROR, MAX_BATCH, answer_predict)


JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
              float: "a number", type(None): "null"}  # fmt: skip
# The event's optional fields that the routes read, with the type API Gateway gives each (payload 2.0).
OPTIONAL_FIELDS = (("rawQueryString", str), ("body", str), ("isBase64Encoded", bool), ("headers", dict),
                   ("queryStringParameters", dict), ("pathParameters", dict), ("cookies", list))  # fmt: skip


def json_type(value: object) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)


def event_problem(event: object) -> str | None:
    """Why `event` is not an HTTP API event the routes can read, or None: a direct invoke can send anything.

    One check where the event is first read, so that no route meets a field of the wrong type.
    """
    if not isinstance(event, dict):
        return f"the event must be an object, got {json_type(event)}"
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    if not isinstance(http, dict) or not isinstance(http.get("method"), str):
        return "the event has no requestContext.http.method: send an API Gateway HTTP API (payload 2.0) event"
    for key in ("routeKey", "rawPath"):
        if not isinstance(event.get(key), str):
            return f"the event's {key} must be a string, got {json_type(event.get(key))}"
    for key, kind in OPTIONAL_FIELDS:
        value = event.get(key)
        if value is not None and not isinstance(value, kind):
            return f"the event's {key} must be {JSON_TYPES[kind]} or absent, got {json_type(value)}"
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        if not all(isinstance(item, str) for item in items):
            return f"the event's {key} must hold strings only"
    return None


def proxy_response(status: int, body: str) -> dict[str, Any]:
    # The proxy response powertools' resolver writes for a Response(status, "application/json", body).
    headers = {"Content-Type": "application/json"}
    return {"statusCode": status, "body": body, "isBase64Encoded": False, "headers": headers, "cookies": []}


def with_observability(handler: Handler) -> Handler:
    """The handler with its structured logs, EMF metrics and, where tracing is on, X-Ray subsegment."""
    handler = metrics.log_metrics(handler, capture_cold_start_metric=True)
    if tracing_enabled():
        tracer = Tracer(auto_patch=False)  # we call no AWS or HTTP API; patching botocore and requests costs cold start
        # capture_response=False: predictions stay out of traces, and serialising them is slow.
        handler = tracer.capture_lambda_handler(handler, capture_response=False)
    wrapped: Handler = logger.inject_lambda_context(handler)
    return wrapped


# X-Ray names the traced subsegment after this function: `## lambda_handler`, as the README says.
@with_observability
def lambda_handler(event: dict[str, Any], context: "LambdaContext") -> dict[str, Any]:
    problem = event_problem(event)
    if problem is not None:
        logger.warning("refused an event that is not API Gateway's", extra={"reason": problem})
        return proxy_response(400, predict.serialize(predict.ApiError(400, "invalid_event", problem).document()))
    # API Gateway's request id, read directly: correlation_id_path would run a JMESPath query per request.
    logger.set_correlation_id(event["requestContext"].get("requestId"))
    if event["routeKey"] == PREDICT_ROUTE:
        return proxy_response(*answer_predict(event))
    if event["rawPath"] == "/v2" or event["rawPath"].startswith("/v2/"):
        return v2_server().handle(event)
    return resolver().resolve(event, context)
