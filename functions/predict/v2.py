"""The Open Inference Protocol (v2 REST API) for the served model: KServe's and Triton's clients call it unchanged.

    GET  /v2                                             the server: name, version, extensions
    GET  /v2/health/live, /v2/health/ready               {"live": true}; {"ready": true}, or 503 {"ready": false}
    GET  /v2/models/{name}[/versions/{version}]          metadata: platform, versions, inputs and outputs
    GET  /v2/models/{name}[/versions/{version}]/ready    200 {"name", "ready": true}
    POST /v2/models/{name}[/versions/{version}]/infer    JSON tensors, or binary ones (Inference-Header-Content-Length)

Refusals are the protocol's `{"error": "..."}`:

    400  the body is not JSON, or flagged base64 but is not; the inference header's length or a binary_data_size
         does not fit the body; an input is missing, unknown or repeated, or its datatype, shape or data
         disagree with the model; a value is not a finite float32; an output name is unknown
    404  no such v2 route, or a model name or version other than the one served
    413  more than MAX_BATCH rows, or an answer beyond Lambda's 6 MB response limit
    503  the model is not loaded (the bundle is missing or breaks its contract; GET /health says why)

app.py loads this module on the first /v2 request, so POST /predict's cold start does not pay for it.
"""

import binascii
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from contract import LAMBDA_RESPONSE_BYTES
from model import Model
from predict import ENVELOPE_BYTES, answer, model_unavailable, serialize
from v2_tensors import Output, TensorSpec, V2Error, read_input, split_body, write_answer

SERVER = {"name": "serverless-ml", "version": "1", "extensions": ["binary_tensor_data"]}
PLATFORM = "onnx_onnxv1"
HEADER_LENGTH = "inference-header-content-length"  # API Gateway's payload 2.0 lower-cases header names
# /v2, /v2/health/{live,ready}, /v2/models/{name}[/versions/{version}][/ready|/infer]
ROUTE = re.compile(r"/v2(?:/health/(?P<health>live|ready)|/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
                   r"(?P<action>/ready|/infer)?)?")  # fmt: skip
# Each route's method and what ROUTE found in its path.
ROUTES = {("GET", "server"), ("GET", "live"), ("GET", "ready"), ("GET", "model"), ("GET", "/ready"),
          ("POST", "/infer")}  # fmt: skip
Reply = tuple[int, dict[str, str], bytes]  # status, headers, body
Recorder = Callable[[int, float], None]  # rows scored, model milliseconds -> metrics (app.record_prediction)


def input_specs(model: Model) -> list[TensorSpec]:
    # A categorical model's string input joins this list as TensorSpec(name, "BYTES", (-1,)).
    return [TensorSpec(model.input_name, "FP32", (-1, *model.row_shape))]


def output_specs(model: Model) -> list[TensorSpec]:
    """The outputs, named as POST /predict's answer: probabilities and predicted labels, or predictions."""
    if model.task == "regression":
        return [TensorSpec("predictions", "FP32", (-1,))]
    return [TensorSpec("probabilities", "FP32", (-1, len(model.labels))), TensorSpec("predictions", "BYTES", (-1,))]


def metadata(model: Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": PLATFORM,
        "inputs": [spec.metadata() for spec in input_specs(model)],
        "outputs": [spec.metadata() for spec in output_specs(model)],
    }


def json_reply(status: int, document: Any) -> Reply:
    return status, {"Content-Type": "application/json"}, serialize(document).encode()


class Server:
    """The v2 routes for this container's model (None when it failed to load, with load_error saying why)."""

    def __init__(self, model: Model | None, load_error: str | None, max_batch: int, record: Recorder) -> None:
        self.model, self.load_error, self.max_batch, self.record = model, load_error, max_batch, record
        # Built once: a request at batch 1 takes ~60 us, so a few microseconds per request count.
        self.inputs = input_specs(model) if model else []
        self.input_names = [spec.name for spec in self.inputs]
        self.outputs = {spec.name: spec for spec in output_specs(model)} if model else {}

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The proxy response to an API Gateway event for a /v2 path."""
        try:
            status, headers, body = self.route(event)
        except V2Error as error:
            status, headers, body = json_reply(error.status, {"error": error.message})
        if headers.get("Content-Type") == "application/json":
            return {"statusCode": status, "headers": headers, "body": body.decode(), "isBase64Encoded": False}
        encoded = binascii.b2a_base64(body, newline=False).decode()  # a binary answer travels base64-encoded
        return {"statusCode": status, "headers": headers, "body": encoded, "isBase64Encoded": True}

    def route(self, event: Mapping[str, Any]) -> Reply:
        method, path = event["requestContext"]["http"]["method"], event["rawPath"]
        found = ROUTE.fullmatch(path)
        action = found and (found["health"] or found["action"] or ("model" if found["name"] else "server"))
        if found is None or (method, action) not in ROUTES:
            raise V2Error(404, f"no route {method} {path[:200]}")
        if action in ("live", "ready", "server"):
            return self.health(action)
        name, version = found["name"], found["version"]
        if "%" in path:  # a client may percent-encode a name's : or +
            name, version = unquote(name), version and unquote(version)
        model = self.served(name, version)
        if action == "/infer":
            return self.infer(model, event)
        if action == "/ready":
            return json_reply(200, {"name": model.name, "ready": True})
        return json_reply(200, metadata(model))

    def health(self, action: str) -> Reply:
        if action == "server":
            return json_reply(200, SERVER)
        if action == "live":
            return json_reply(200, {"live": True})
        if self.model is None:
            return json_reply(503, {"ready": False, "error": model_unavailable(self.load_error).message})
        return json_reply(200, {"ready": True})

    def served(self, name: str, version: str | None) -> Model:
        """The model, when `name` and `version` (if given) are the served one's."""
        if self.model is None:
            raise V2Error(503, model_unavailable(self.load_error).message)
        if name != self.model.name:
            raise V2Error(404, f"no model {name[:128]!r}: this function serves {self.model.name!r}")
        if version is not None and version != self.model.version:
            raise V2Error(404, f"no version {version[:128]!r} of {name!r}: this function serves "
                               f"{self.model.version!r}")  # fmt: skip
        return self.model

    def infer(self, model: Model, event: Mapping[str, Any]) -> Reply:
        request = split_body(read_body(event), (event.get("headers") or {}).get(HEADER_LENGTH))
        document = request.document
        if "id" in document and not isinstance(document["id"], str):
            raise V2Error(400, "id must be a string")
        names = [tensor.get("name") for tensor in document["inputs"]]
        if names != self.input_names and sorted(map(str, names)) != sorted(self.input_names):
            raise V2Error(400, f"send the inputs {', '.join(self.input_names)} once each, "
                               f"got {', '.join(map(str, names))[:200]}")  # fmt: skip
        batch = read_input(request, names.index(self.inputs[0].name), self.inputs[0], self.max_batch)
        started = time.perf_counter()
        scores = model.predict(batch)
        model_ms = (time.perf_counter() - started) * 1000.0
        head: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
        if "id" in document:
            head["id"] = document["id"]
        body, header_length = write_answer(head, chosen_outputs(self.outputs, document, answer(model, scores)))
        if response_size(body, header_length is None) > LAMBDA_RESPONSE_BYTES:
            raise V2Error(413, f"the answer to {len(batch)} rows would exceed Lambda's {LAMBDA_RESPONSE_BYTES} "
                               f"byte response limit; send fewer rows or ask for binary outputs")  # fmt: skip
        self.record(len(batch), model_ms)
        headers = {"Content-Type": "application/json"}
        if header_length is not None:
            headers = {
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(header_length),
            }
        return 200, headers, body


def chosen_outputs(specs: dict[str, TensorSpec], document: dict[str, Any], answered: dict[str, Any]) -> list[Output]:
    """The outputs the request asks for (all when it names none), each with whether it is sent binary."""
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise V2Error(400, "parameters must be an object")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise V2Error(400, "binary_data_output must be true or false")
    requested = document.get("outputs")
    if requested is None:  # the usual request: every output
        return [Output(spec, answered[name], binary_default) for name, spec in specs.items()]
    if not isinstance(requested, list) or not all(isinstance(item, dict) for item in requested):
        raise V2Error(400, 'outputs must be a list of {"name": ...} objects')
    chosen = []
    for item in requested:
        name = item.get("name")
        if name not in specs:
            raise V2Error(400, f"no output {str(name)[:60]!r}: the model's outputs are {', '.join(specs)}")
        options = item.get("parameters") or {}
        binary = options.get("binary_data", binary_default) if isinstance(options, dict) else None
        if not isinstance(binary, bool):
            raise V2Error(400, f"output {name!r}: binary_data must be true or false")
        chosen.append(Output(specs[name], answered[name], binary))
    return chosen


def response_size(body: bytes, is_json: bool) -> int:
    """The bytes the body takes in the proxy response: base64 when binary; JSON escaped into a JSON string,
    which at most triples it (as contract.check_servable counts), so it is measured only near the limit."""
    size = len(body) if is_json else 4 * ((len(body) + 2) // 3)
    if is_json and 3 * size + ENVELOPE_BYTES > LAMBDA_RESPONSE_BYTES:
        size = len(json.dumps(body.decode()))
    return size + ENVELOPE_BYTES


def read_body(event: Mapping[str, Any]) -> bytes:
    body: str = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body.encode()
    try:
        return binascii.a2b_base64(body, strict_mode=True)
    except (binascii.Error, ValueError) as error:
        raise V2Error(400, f"the body is flagged base64 but is not valid base64: {error}") from None
