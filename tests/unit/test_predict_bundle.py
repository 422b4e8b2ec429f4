"""The function verifies its bundle at init: a broken one makes every route a 503, never a crash loop.

The corpus of broken bundles, each card field and model file wrong in turn, is tests/unit/test_bundle_corpus.py."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

ROUTES = ["predict.json", "model.json", "health.json", "openapi.json"]


@pytest.fixture
def bundle_copy(tmp_path, digits_bundle):
    return shutil.copytree(digits_bundle, tmp_path / "bundle")


def get(app, load_event, context, name):
    if name == "openapi.json":
        event = load_event("health.json")
        event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    else:
        event = load_event(name)
    response = app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def change_one_weight(onnx_path):
    """Overwrite one float of the weight matrix in place: same size, still a valid model."""
    raw = numpy_helper.to_array(next(i for i in onnx.load(onnx_path).graph.initializer if i.name == "weight"))
    data = onnx_path.read_bytes()
    start = data.index(raw.tobytes())
    changed = np.float32(raw.flat[0] + 0.5).tobytes()
    onnx_path.write_bytes(data[:start] + changed + data[start + 4 :])
    return len(data)


def test_predict_tampered_model_is_refused_on_every_route(load_predict_app, bundle_copy, load_event, lambda_context):
    size = change_one_weight(bundle_copy / "model.onnx")
    ort.InferenceSession(bundle_copy / "model.onnx", providers=["CPUExecutionProvider"])  # loads fine without the check

    app = load_predict_app(bundle_copy)

    assert (bundle_copy / "model.onnx").stat().st_size == size
    for route in ROUTES:
        status, body = get(app, load_event, lambda_context, route)
        assert status == 503, route
        assert body["error"]["code"] == "model_unavailable"
        assert "sha256" in body["error"]["message"]
    assert get(app, load_event, lambda_context, "health.json")[1]["status"] == "unavailable"


def test_predict_missing_model_is_503_with_reason(load_predict_app, tmp_path, load_event, lambda_context):
    app = load_predict_app(tmp_path / "nowhere")

    status, body = get(app, load_event, lambda_context, "health.json")

    assert status == 503
    assert "model.json not found" in body["error"]["message"]
    assert get(app, load_event, lambda_context, "predict.json")[0] == 503


def test_predict_relative_model_dir_is_under_the_function(load_predict_app, load_event, lambda_context):
    app = load_predict_app("no-such-bundle")

    message = get(app, load_event, lambda_context, "health.json")[1]["error"]["message"]

    assert "functions/predict/no-such-bundle/model.json not found" in message


def test_predict_threads_sharing_the_session_match_serial(load_predict_app, digits_bundle):
    app = load_predict_app(digits_bundle)
    rng = np.random.default_rng(0)
    bodies = [
        json.dumps({"instances": rng.integers(0, 17, size=(int(rng.integers(1, 65)), 64)).tolist()}) for _ in range(128)
    ]

    def score(body):
        return app.MODEL.predict(app.predict.parse_instances(body, app.MODEL.row_shape, app.MAX_BATCH))

    serial = [score(body) for body in bodies]
    with ThreadPoolExecutor(max_workers=32) as pool:
        threaded = list(pool.map(score, bodies))

    for one, other in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(one, other)
