"""The Open Inference Protocol (v2 REST API) for the served model: KServe's and Triton's clients call it unchanged.

    GET  /v2                                             the server: name, version, extensions
    GET  /v2/health/live, /v2/health/ready               {"live": true}; {"ready": true}, or 503 {"ready": false}
    GET  /v2/models/{name}[/versions/{version}]          metadata: platform, versions, inputs and outputs
    GET  /v2/models/{name}[/versions/{version}]/ready    200 {"name", "ready": true}
    POST /v2/models/{name}[/versions/{version}]/infer    JSON tensors, or binary ones (Inference-Header-Content-Length)

A model's inputs are its numeric features as one FP32 tensor `features` [rows, n], and, for a model whose
card lists categorical features, each of those as a BYTES tensor [rows] named as in the card: one tensor
per feature, so a client names the columns it sends. "" is the missing category, as POST /predict's null
(v2_categories.py reads them).

Refusals are the protocol's `{"error": "..."}`:

    400  the body is not JSON, or flagged base64 but is not; the inference header's length or a binary_data_size
         does not fit the body; an input is missing, unknown or repeated, or its datatype, shape or data
         disagree with the model; a value is not a finite float32; a BYTES input holds other than one string
         per row, a category over records.MAX_CATEGORY_CHARS characters, or binary elements whose 4-byte
         lengths do not fit its data exactly, or text that is not UTF-8; an output name is unknown
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
from v2_tensors import TensorSpec, V2Error, chosen_outputs, outputs_of, read_request, write_answer

SERVER = {"name": "serverless-ml", "version": "1", "extensions": ["binary_tensor_data"]}
PLATFORM = "onnx_onnxv1"
HEADER_LENGTH = "inference-header-content-length"  # API Gateway's payload 2.0 lower-cases header names
# POST /v2/models/{name}[/versions/{version}]/infer, the one POST route
INFER = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer")
# GET /v2, /v2/health/{live,ready}, /v2/models/{name}[/versions/{version}][/ready]
READ = re.compile(r"/v2(?:/health/(?P<health>live|ready)|/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
                  r"(?P<ready>/ready)?)?")  # fmt: skip
ROUTES = {"POST": INFER, "GET": READ}
Recorder = Callable[[int, float], None]  # rows scored, model milliseconds -> metrics (app.record_prediction)


def input_specs(model: Model) -> list[TensorSpec]:
    """The numeric features as one FP32 tensor, then each categorical feature as BYTES [-1], named as in the card."""
    numeric = TensorSpec(model.input_name, "FP32", (-1, *model.row_shape))
    if model.schema is None:
        return [numeric]
    from v2_categories import category_specs  # models with categorical inputs only

    return [numeric, *category_specs(model.schema)]


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


def json_response(status: int, document: Any) -> dict[str, Any]:
    """The proxy response with `document` as its JSON body."""
    headers = {"Content-Type": "application/json"}
    return {"statusCode": status, "headers": headers, "body": serialize(document), "isBase64Encoded": False}


class Server:
    """The v2 routes for this container's model (None when it failed to load, with load_error saying why).

    At batch 1 a request's every step shows in its time, next to POST /predict's (benchmarks/warm.py): infer
    is matched by its own regex, reads its body in one pass (read_request) and writes its answer in one loop
    (write_answer), and what depends only on the model is built here once.
    """

    def __init__(self, model: Model | None, load_error: str | None, max_batch: int, record: Recorder) -> None:
        self.model, self.load_error, self.max_batch, self.record = model, load_error, max_batch, record
        self.inputs = input_specs(model) if model else []
        specs = output_specs(model) if model else []
        self.outputs = {binary: outputs_of(specs, binary) for binary in (False, True)}

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The proxy response to an API Gateway event for a /v2 path."""
        try:
            return self.route(event)
        except V2Error as error:
            return json_response(error.status, {"error": error.message})

    def route(self, event: Mapping[str, Any]) -> dict[str, Any]:
        method, path = event["requestContext"]["http"]["method"], event["rawPath"]
        found = ROUTES[method].fullmatch(path) if method in ROUTES else None
        if found is None:
            raise V2Error(404, f"no route {method} {path[:200]}")
        if method == "POST":
            return self.infer(self.served(found, path), event)
        if found["name"] is None:
            return self.health(found["health"] or "server")
        model = self.served(found, path)
        if found["ready"]:
            return json_response(200, {"name": model.name, "ready": True})
        return json_response(200, metadata(model))

    def health(self, action: str) -> dict[str, Any]:
        if action == "server":
            return json_response(200, SERVER)
        if action == "live":
            return json_response(200, {"live": True})
        if self.model is None:
            return json_response(503, {"ready": False, "error": model_unavailable(self.load_error).message})
        return json_response(200, {"ready": True})

    def served(self, found: re.Match[str], path: str) -> Model:
        """The model, when the name and version (if any) that the route `found` in `path` are the served one's."""
        name, version = found["name"], found["version"]
        if "%" in path:  # a client may percent-encode a name's : or +
            name, version = unquote(name), version and unquote(version)
        if self.model is None:
            raise V2Error(503, model_unavailable(self.load_error).message)
        if name != self.model.name:
            raise V2Error(404, f"no model {name[:128]!r}: this function serves {self.model.name!r}")
        if version is not None and version != self.model.version:
            raise V2Error(404, f"no version {version[:128]!r} of {name!r}: this function serves "
                               f"{self.model.version!r}")  # fmt: skip
        return self.model

    def infer(self, model: Model, event: Mapping[str, Any]) -> dict[str, Any]:
        length_header = (event.get("headers") or {}).get(HEADER_LENGTH)
        document, inputs, batch = read_request(read_body(event), length_header, self.inputs, self.max_batch)
        if model.schema is None:
            started = time.perf_counter()
            scores = model.predict(batch)
        else:
            from v2_categories import read_categories

            categories = read_categories(inputs, self.inputs, len(batch))
            started = time.perf_counter()
            scores = model.predict_categories(batch, categories)
        model_ms = (time.perf_counter() - started) * 1000.0
        head = {"model_name": model.name, "model_version": model.version}
        if "id" in document:
            head["id"] = document["id"]
        body, header_length = write_answer(head, chosen_outputs(self.outputs, document), answer(model, scores))
        if response_size(body, header_length is None) > LAMBDA_RESPONSE_BYTES:
            raise V2Error(413, f"the answer to {len(batch)} rows would exceed Lambda's {LAMBDA_RESPONSE_BYTES} "
                               f"byte response limit; send fewer rows or ask for binary outputs")  # fmt: skip
        self.record(len(batch), model_ms)
        if header_length is None:
            return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": body.decode(),
                    "isBase64Encoded": False}  # fmt: skip
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(header_length)}
        encoded = binascii.b2a_base64(body, newline=False).decode()  # a binary answer travels base64-encoded
        return {"statusCode": 200, "headers": headers, "body": encoded, "isBase64Encoded": True}


def response_size(body: bytes, is_json: bool) -> int:
    """The bytes the body takes in the proxy response: base64 when binary; JSON escaped into a JSON string,
    which at most triples it (as contract.check_servable counts), so it is measured only near the limit."""
    size = len(body) if is_json else 4 * ((len(body) + 2) // 3)
    if is_json and 3 * size + ENVELOPE_BYTES > LAMBDA_RESPONSE_BYTES:
        size = len(json.dumps(body.decode()))
    return size + ENVELOPE_BYTES


def read_body(event: Mapping[str, Any]) -> bytes | str:
    """The body: bytes when base64-encoded, else the text as it came, which orjson reads and holds_boolean
    searches without a copy."""
    body: str = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return body
    try:
        return binascii.a2b_base64(body, strict_mode=True)
    except (binascii.Error, ValueError) as error:
        raise V2Error(400, f"the body is flagged base64 but is not valid base64: {error}") from None
