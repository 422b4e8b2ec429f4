"""The Open Inference Protocol routes, called with API Gateway events: metadata from the card, answers equal
to POST /predict's, the binary tensor extension, and every hostile body a documented 4xx in the v2 form."""

import base64
import json
import struct
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FUNCTION_DIR, read_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

# The words of an inference request, for hypothesis to build near-misses from.
PROTOCOL_KEYS = ["inputs", "name", "shape", "datatype", "data", "outputs", "parameters", "id", "binary_data_size",
                 "binary_data", "binary_data_output", "features", "FP32"]  # fmt: skip
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def event(
    method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The event API Gateway sends for this request; a bytes body arrives base64-encoded, as binary does."""
    base = read_event("predict.json")
    base |= {"routeKey": f"{method} {path}", "rawPath": path, "headers": base["headers"] | (headers or {})}
    base["requestContext"]["http"] |= {"method": method, "path": path}
    if isinstance(body, bytes):
        return base | {"body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    return base | {"body": body, "isBase64Encoded": False}


def call(app: Any, context: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    response = app.lambda_handler(event(*args, **kwargs), context)
    body = response["body"]
    data = base64.b64decode(body) if response["isBase64Encoded"] else body.encode()
    return response["statusCode"], response["headers"], data


def infer_body(rows: list[list[float]], **extra: Any) -> str:
    tensor = {"name": "features", "datatype": "FP32", "shape": [len(rows), len(rows[0])], "data": rows}
    return json.dumps({"inputs": [tensor], **extra})


def binary_body(rows: list[list[float]], outputs: list[dict[str, Any]] | None = None) -> tuple[bytes, str]:
    """A binary tensor extension request: JSON header, then the rows as little-endian float32."""
    blob = np.asarray(rows, dtype="<f4").tobytes()
    tensor = {"name": "features", "datatype": "FP32", "shape": [len(rows), len(rows[0])],
              "parameters": {"binary_data_size": len(blob)}}  # fmt: skip
    header = json.dumps({"inputs": [tensor], **({"outputs": outputs} if outputs else {})}).encode()
    return header + blob, str(len(header))


def split_binary_answer(body: bytes, header_length: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The answer's JSON and its outputs decoded: FP32 as arrays, BYTES as lists of text."""
    header = json.loads(body[:header_length])
    offset, values = header_length, {}
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            values[output["name"]] = output["data"]
            continue
        blob, offset = body[offset : offset + size], offset + size
        if output["datatype"] == "FP32":
            values[output["name"]] = np.frombuffer(blob, "<f4").reshape(output["shape"])
        else:
            items, at = [], 0
            while at < len(blob):
                (length,) = struct.unpack_from("<I", blob, at)
                items.append(blob[at + 4 : at + 4 + length].decode())
                at += 4 + length
            values[output["name"]] = items
    assert offset == len(body)
    return header, values


@pytest.fixture
def app(load_predict_app, tiny_bundle):
    return load_predict_app(tiny_bundle, MAX_BATCH="8")


def test_server_metadata_and_health(app, lambda_context):
    assert call(app, lambda_context, "GET", "/v2")[::2] == (
        200, b'{"name":"serverless-ml","version":"1","extensions":["binary_tensor_data"]}'
    )  # fmt: skip
    assert json.loads(call(app, lambda_context, "GET", "/v2/health/live")[2]) == {"live": True}
    assert json.loads(call(app, lambda_context, "GET", "/v2/health/ready")[2]) == {"ready": True}


def test_model_metadata_comes_from_the_card(app, lambda_context, tiny_bundle):
    card = json.loads((tiny_bundle / "model.json").read_text())
    for path in (f"/v2/models/{card['name']}", f"/v2/models/{card['name']}/versions/{card['version']}"):
        status, _, body = call(app, lambda_context, "GET", path)
        assert status == 200
        assert json.loads(body) == {
            "name": card["name"],
            "versions": [card["version"]],
            "platform": "onnx_onnxv1",
            "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
                {"name": "predictions", "datatype": "BYTES", "shape": [-1]},
            ],
        }
        assert call(app, lambda_context, "GET", f"{path}/ready")[:1] == (200,)


def test_regression_metadata_has_one_prediction_per_row(load_predict_app, tiny_regression_bundle, lambda_context):
    app = load_predict_app(tiny_regression_bundle)
    card = json.loads((tiny_regression_bundle / "model.json").read_text())

    status, _, body = call(app, lambda_context, "GET", f"/v2/models/{card['name']}")

    assert status == 200
    assert json.loads(body)["outputs"] == [{"name": "predictions", "datatype": "FP32", "shape": [-1]}]


def test_other_names_and_versions_are_404(app, lambda_context, tiny_bundle):
    card = json.loads((tiny_bundle / "model.json").read_text())
    for method, path in [("GET", "/v2/models/other"), ("GET", f"/v2/models/{card['name']}/versions/0"),
                         ("GET", "/v2/models/other/ready"), ("POST", "/v2/models/other/infer"),
                         ("GET", "/v2/health/dead"), ("GET", "/v2/models/x/infer")]:  # fmt: skip
        status, headers, body = call(app, lambda_context, method, path, infer_body(ROWS))
        assert (status, headers["Content-Type"]) == (404, "application/json"), path
        assert isinstance(json.loads(body)["error"], str)


def test_without_a_model_live_but_not_ready(load_predict_app, tmp_path, lambda_context):
    app = load_predict_app(tmp_path / "no-bundle")

    assert call(app, lambda_context, "GET", "/v2/health/live")[0] == 200
    status, _, body = call(app, lambda_context, "GET", "/v2/health/ready")
    assert (status, json.loads(body)["ready"]) == (503, False)
    for method, path in [("GET", "/v2/models/m"), ("GET", "/v2/models/m/ready"), ("POST", "/v2/models/m/infer")]:
        status, _, body = call(app, lambda_context, method, path, infer_body(ROWS))
        assert status == 503 and "not loaded" in json.loads(body)["error"]


def predict_answer(app: Any, context: Any, rows: list[list[float]]) -> dict[str, Any]:
    response = app.lambda_handler(read_event("predict.json") | {"body": json.dumps({"instances": rows})}, context)
    assert response["statusCode"] == 200
    answer: dict[str, Any] = json.loads(response["body"])
    return answer


def test_json_infer_equals_predict(app, lambda_context, tiny_bundle):
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    want = predict_answer(app, lambda_context, ROWS)

    status, _, body = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", infer_body(ROWS, id="req-7"))

    answer = json.loads(body)
    assert status == 200
    assert (answer["model_name"], answer["id"]) == (name, "req-7")
    probabilities, predictions = answer["outputs"]
    assert probabilities["shape"] == [3, 3] and probabilities["datatype"] == "FP32"
    assert np.array_equal(np.reshape(probabilities["data"], (3, 3)), want["probabilities"])
    assert predictions == {"name": "predictions", "datatype": "BYTES", "shape": [3], "data": want["predictions"]}


def test_flat_data_and_a_chosen_output(app, lambda_context, tiny_bundle):
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    flat = {"name": "features", "datatype": "FP32", "shape": [3, 4], "data": [value for row in ROWS for value in row]}
    body = json.dumps({"inputs": [flat], "outputs": [{"name": "predictions"}]})

    status, _, answer = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", body)

    assert status == 200
    assert [output["data"] for output in json.loads(answer)["outputs"]] == [
        predict_answer(app, lambda_context, ROWS)["predictions"]
    ]


def test_binary_infer_equals_predict(app, lambda_context, tiny_bundle):
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    want = predict_answer(app, lambda_context, ROWS)
    outputs = [{"name": "probabilities", "parameters": {"binary_data": True}},
               {"name": "predictions", "parameters": {"binary_data": True}}]  # fmt: skip
    body, length = binary_body(ROWS, outputs)

    status, headers, answer = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", body,
                                   {"inference-header-content-length": length})  # fmt: skip

    assert (status, headers["Content-Type"]) == (200, "application/octet-stream")
    _, values = split_binary_answer(answer, int(headers["Inference-Header-Content-Length"]))
    assert np.array_equal(values["probabilities"], np.asarray(want["probabilities"], dtype=np.float32))
    assert values["predictions"] == want["predictions"]


def test_binary_request_as_text_counts_bytes(app, lambda_context, tiny_bundle):
    # A direct invoke may send the binary extension unencoded: lengths still count the body's UTF-8 bytes.
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    rows = [[0.5, 2.0, 8.0, 32.0]] * 3  # float32 bytes 00 00 00 3f..42: ASCII, so the body is valid text
    want = predict_answer(app, lambda_context, rows)
    body, length = binary_body(rows)

    status, _, answer = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", body.decode("ascii"),
                             {"inference-header-content-length": length})  # fmt: skip

    assert status == 200, answer
    probabilities = json.loads(answer)["outputs"][0]
    assert probabilities["shape"] == [3, 3]
    assert probabilities["data"] == [value for row in want["probabilities"] for value in row]


def test_binary_float32_extremes_are_scored(app, lambda_context, tiny_bundle):
    # The finiteness check must pass every finite float32, however large or small, and refuse nothing else.
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    rows = [[float(np.finfo(np.float32).max), -float(np.finfo(np.float32).max), tiny, -0.0]] * 3
    body, length = binary_body(rows)

    status, _, answer = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", body,
                             {"inference-header-content-length": length})  # fmt: skip

    assert status == 200, answer
    assert json.loads(answer)["outputs"][0]["shape"] == [3, 3]


def hostile_cases(rows: list[list[float]], max_batch: int) -> dict[str, tuple[bytes | str, dict[str, str], int, str]]:
    """Body, headers, status and a word of the error for each hostile request to a model of rows' width."""
    good, length = binary_body(rows)
    header = {"inference-header-content-length": length}
    width, n = len(rows[0]), len(rows)
    tensor = {"name": "features", "datatype": "FP32", "shape": [n, width], "data": rows}
    short = json.loads(good[: int(length)])
    short["inputs"][0]["parameters"]["binary_data_size"] -= 4
    short_header = json.dumps(short).encode()

    def with_value(value: Any) -> str:
        return json.dumps({"inputs": [tensor | {"data": [[*row[:-1], value] for row in rows]}]})

    minus_infinity_first = good[: int(length)] + struct.pack("<f", -float("inf")) + good[int(length) + 4 :]
    return {
        "not json": ("{", {}, 400, "JSON"),
        "no inputs": ("{}", {}, 400, "inputs"),
        "wrong datatype": (json.dumps({"inputs": [tensor | {"datatype": "INT64"}]}), {}, 400, "datatype"),
        "unknown input": (json.dumps({"inputs": [tensor | {"name": "x"}]}), {}, 400, "inputs"),
        "input twice": (json.dumps({"inputs": [tensor, tensor]}), {}, 400, "inputs"),
        "shape not the model's": (json.dumps({"inputs": [tensor | {"shape": [n, width + 1]}]}), {}, 400, "shape"),
        "shape disagrees with data": (json.dumps({"inputs": [tensor | {"shape": [n - 1, width]}]}), {}, 400, "values"),
        "strings in data": (json.dumps({"inputs": [tensor | {"data": [["a"] * width] * n}]}), {}, 400, "numbers"),
        "booleans in data": (with_value(True), {}, 400, "numbers"),
        "NaN": (with_value(float("nan")), {}, 400, "finite"),
        "beyond float32": (with_value(1e39), {}, 400, "finite"),
        "too many rows": (
            json.dumps({"inputs": [tensor | {"shape": [max_batch + 1, width], "data": [rows[0]] * (max_batch + 1)}]}),
            {},
            413,
            str(max_batch),
        ),
        "unknown output": (json.dumps({"inputs": [tensor], "outputs": [{"name": "logits"}]}), {}, 400, "logits"),
        "id not a string": (json.dumps({"inputs": [tensor], "id": 7}), {}, 400, "id"),
        "header beyond body": (good, {"inference-header-content-length": str(len(good) + 1)}, 400, "Inference"),
        "header not a number": (good, {"inference-header-content-length": "ten"}, 400, "Inference"),
        "header negative": (good, {"inference-header-content-length": "-5"}, 400, "Inference"),
        "header zero": (good, {"inference-header-content-length": "0"}, 400, "Inference"),
        "header of 5000 digits": (good, {"inference-header-content-length": "9" * 5000}, 400, "Inference"),
        "binary size overruns body": (good[:-4], header, 400, "past"),
        "bytes after binary data": (good + b"\0", header, 400, "beyond"),
        "binary size not the shape's": (
            short_header + good[int(length) : -4],
            {"inference-header-content-length": str(len(short_header))},
            400,
            "binary_data_size",
        ),
        "binary NaN": (good[:-4] + struct.pack("<f", float("nan")), header, 400, "finite"),
        "binary infinity": (good[:-4] + struct.pack("<f", float("inf")), header, 400, "finite"),
        "binary -infinity first": (minus_infinity_first, header, 400, "finite"),
        "parameters not an object": (json.dumps({"inputs": [tensor], "parameters": []}), {}, 400, "parameters"),
        "binary size without header": (good[: int(length)], {}, 400, "Inference-Header-Content-Length"),
    }


@pytest.mark.parametrize("case", list(hostile_cases(ROWS, 8)))
def test_hostile_bodies_are_documented_4xx(app, lambda_context, tiny_bundle, case):
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    body, headers, want_status, word = hostile_cases(ROWS, 8)[case]

    status, response_headers, answer = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", body, headers)

    assert (status, response_headers["Content-Type"]) == (want_status, "application/json")
    error = json.loads(answer)["error"]
    assert isinstance(error, str) and word in error


TENSORS = st.fixed_dictionaries(
    {"name": st.sampled_from(["features", "x"]), "datatype": st.sampled_from(["FP32", "BYTES", "INT64"])},
    optional={
        "shape": st.lists(st.integers(-1, 10), max_size=3),
        "data": st.lists(st.floats() | st.integers() | st.lists(st.floats(width=32), max_size=5), max_size=12),
        "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-1, 64)}),
    },
)
NEAR_MISSES = st.fixed_dictionaries(
    {"inputs": st.lists(TENSORS, min_size=1, max_size=2)},
    optional={
        "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["predictions", "probabilities", "x"])})),
        "id": st.text(max_size=4) | st.integers(),
        "parameters": st.fixed_dictionaries({"binary_data_output": st.booleans() | st.integers()}),
    },
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    document=NEAR_MISSES
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(
                st.sampled_from(PROTOCOL_KEYS),
                children,
                max_size=5,
            )
        ),
        max_leaves=30,
    ),
    header=st.none() | st.integers(-2, 400).map(str),
    tail=st.binary(max_size=64),
)
def test_no_body_gets_a_5xx(app, lambda_context, tiny_bundle, document, header, tail):
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    body = json.dumps(document).encode() + tail
    headers = {} if header is None else {"inference-header-content-length": header}

    status, _, answer = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", body, headers)

    assert status == 200 or (400 <= status < 500 and isinstance(json.loads(answer)["error"], str))


# Numbers float32 holds and 64-bit integers; now and then one cell replaced by what is not a number, or beyond float32.
FINITE = st.floats(-3.4e38, 3.4e38) | st.integers(-(2**63), 2**63 - 1)
SPOILERS = st.none() | st.tuples(
    st.integers(0, 2), st.integers(0, 3), st.sampled_from([True, None, "1.5", 1e39, [1.0]])
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(FINITE, min_size=4, max_size=4), min_size=1, max_size=3), spoil=SPOILERS,
       flat=st.booleans())  # fmt: skip
def test_json_data_read_straight_equals_the_checked_reading(app, lambda_context, tiny_bundle, rows, spoil, flat):
    # Data that is the request's last key and holds only numbers is read straight into float32
    # (predict.only_numbers); a key after it sends the same data through the reading that checks each value.
    if spoil is not None and spoil[0] < len(rows):
        rows[spoil[0]][spoil[1]] = spoil[2]
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    tensor = {"name": "features", "datatype": "FP32", "shape": [len(rows), 4],
              "data": [value for row in rows for value in row] if flat else rows}  # fmt: skip
    straight, checked = json.dumps({"inputs": [tensor]}), json.dumps({"inputs": [tensor], "id": "checked"})

    got = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", straight)
    want = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", checked)

    assert got[0] == want[0]
    if want[0] == 200:
        assert json.loads(got[2])["outputs"] == json.loads(want[2])["outputs"]
    else:
        assert got[2] == want[2]


def test_infer_records_the_same_metrics_as_predict(app, lambda_context, tiny_bundle, capsys):
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    capsys.readouterr()

    call(app, lambda_context, "POST", f"/v2/models/{name}/infer", infer_body(ROWS))
    call(app, lambda_context, "POST", f"/v2/models/{name}/infer", "{")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    documents = [line for line in lines if "_aws" in line and "Predictions" in line]
    assert [document["Predictions"] for document in documents] == [[3]]
    assert 0 < documents[0]["ModelLatency"][0] < 10_000


def test_an_answer_beyond_lambdas_limit_is_413(app, lambda_context, tiny_bundle):
    name = json.loads((tiny_bundle / "model.json").read_text())["name"]
    echoed_id = '"' * (3 * 1024 * 1024)  # 3 MB of quotes, 6 MB once escaped into the proxy response

    status, _, answer = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", infer_body(ROWS, id=echoed_id))

    assert status == 413 and "6291456" in json.loads(answer)["error"]


def test_regression_infer_equals_predict(load_predict_app, tiny_regression_bundle, lambda_context):
    app = load_predict_app(tiny_regression_bundle)
    name = json.loads((tiny_regression_bundle / "model.json").read_text())["name"]
    body, length = binary_body(ROWS, [{"name": "predictions", "parameters": {"binary_data": True}}])

    status, headers, answer = call(app, lambda_context, "POST", f"/v2/models/{name}/infer", body,
                                   {"inference-header-content-length": length})  # fmt: skip

    assert status == 200
    header, values = split_binary_answer(answer, int(headers["Inference-Header-Content-Length"]))
    assert header["outputs"][0]["shape"] == [3]
    want = predict_answer(app, lambda_context, ROWS)["predictions"]
    assert np.array_equal(values["predictions"], np.float32(want))


V2_COLD_START = """
import json, sys
sys.path.insert(0, {function_dir!r})
import app
from tests.unit.test_v2_protocol import event, infer_body, ROWS

class Context:
    function_name, function_version, memory_limit_in_mb, aws_request_id = "PredictFunction", "$LATEST", 1024, "id"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PredictFunction"

before = "v2" in sys.modules
response = app.lambda_handler(event("POST", f"/v2/models/{{app.MODEL.name}}/infer", infer_body(ROWS)), Context())
print(json.dumps([before, response["statusCode"], "v2" in sys.modules,
                  "aws_lambda_powertools.event_handler" in sys.modules]))
"""


def test_v2_loads_on_its_first_request_without_the_resolver(tiny_bundle):
    script = V2_COLD_START.format(function_dir=str(FUNCTION_DIR))
    environment = {"MODEL_DIR": str(tiny_bundle), "POWERTOOLS_TRACE_DISABLED": "true", "PATH": "/usr/bin:/bin",
                   "POWERTOOLS_METRICS_NAMESPACE": "Test", "PYTHONPATH": str(FUNCTION_DIR.parents[1])}  # fmt: skip

    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                            check=False, timeout=120)  # fmt: skip

    assert result.returncode == 0, result.stderr
    # Not loaded at init; loaded and answered by the first v2 request, without powertools' event handler.
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [False, 200, True, False]
