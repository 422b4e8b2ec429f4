"""The prediction API's routes answer the committed API Gateway events as the serving contract says."""

import csv
import json
from pathlib import Path

import jsonschema
import numpy as np
import onnxruntime as ort
import pytest
from openapi_spec_validator import validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(load_predict_app, digits_bundle):
    return load_predict_app(digits_bundle)


def call(app, event, context):
    response = app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def expected_probabilities(bundle: Path, instances: list[list[float]]) -> np.ndarray:
    session = ort.InferenceSession(bundle / "model.onnx", providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"features": np.asarray(instances, dtype=np.float32)})
    return np.asarray(probabilities)


def test_predict_event_returns_onnxruntime_probabilities_and_labels(app, digits_bundle, load_event, lambda_context):
    event = load_event("predict.json")
    instances = json.loads(event["body"])["instances"]

    status, body = call(app, event, lambda_context)

    want = expected_probabilities(digits_bundle, instances)
    labels = json.loads((digits_bundle / "model.json").read_text())["labels"]
    assert status == 200
    np.testing.assert_allclose(body["probabilities"], want, rtol=1e-6)
    assert body["predictions"] == [labels[i] for i in want.argmax(axis=1)]
    assert body["labels"] == labels
    assert body["model"] == {"name": "tiny-classification-64", "version": app.MODEL.version}


def test_predict_batch_event_scores_every_row(app, digits_bundle, load_event, lambda_context):
    event = load_event("predict-batch.json")
    instances = json.loads(event["body"])["instances"]

    status, body = call(app, event, lambda_context)

    assert status == 200
    assert len(body["predictions"]) == len(instances) == 10
    np.testing.assert_allclose(body["probabilities"], expected_probabilities(digits_bundle, instances), rtol=1e-6)


def test_predict_events_hold_real_digits_rows(load_event):
    with (ROOT / "examples" / "data" / "digits.csv").open() as file:
        rows = [[float(value) for value in row[:-1]] for row in list(csv.reader(file))[1:]]
    for name in ("predict.json", "predict-batch.json"):
        for instance in json.loads(load_event(name)["body"])["instances"]:
            assert instance in rows


@pytest.mark.parametrize("name", ["predict.json", "predict-batch.json", "model.json", "health.json"])
def test_predict_events_have_api_gateway_v2_shape(load_event, name):
    event = load_event(name)
    method, path = event["routeKey"].split(" ")

    assert event["version"] == "2.0"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == path
    assert event["requestContext"]["http"]["method"] == method
    assert event["requestContext"]["routeKey"] == event["routeKey"]
    assert set(event["requestContext"]) >= {"accountId", "apiId", "domainName", "requestId", "stage", "timeEpoch"}
    if "body" in event:
        assert event["headers"]["content-length"] == str(len(event["body"].encode()))


def test_predict_regression_bundle_returns_values(load_predict_app, tiny_regression_bundle, load_event, lambda_context):
    app = load_predict_app(tiny_regression_bundle)
    card = json.loads((tiny_regression_bundle / "model.json").read_text())
    event = load_event("predict.json") | {"body": json.dumps({"instances": card["sample"]["instances"]})}

    status, body = call(app, event, lambda_context)

    assert status == 200
    assert set(body) == {"predictions", "model"}
    np.testing.assert_allclose(body["predictions"], card["sample"]["outputs"], rtol=1e-5)


def test_predict_model_route_returns_the_cards_public_view(app, digits_bundle, load_event, lambda_context):
    card = json.loads((digits_bundle / "model.json").read_text())

    status, body = call(app, load_event("model.json"), lambda_context)

    assert status == 200
    # How the model was made (settings with the data's location, the data's sha256) stays in the bundle.
    assert "training" in card
    assert body == {key: value for key, value in card.items() if key != "training"}
    assert card["training"]["data_sha256"] not in json.dumps(body)
    assert set(body) >= {"name", "version", "task", "input", "outputs", "labels", "metrics", "sample", "export"}


def test_predict_model_route_serves_only_the_public_keys(load_predict_app, digits_bundle, tmp_path, load_event,
                                                         lambda_context):  # fmt: skip
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for file in digits_bundle.iterdir():
        (bundle / file.name).write_bytes(file.read_bytes())
    card = json.loads((bundle / "model.json").read_text())
    card["future_key"] = {"secret": "s3://bucket/customers.csv"}  # a key no one listed as public
    (bundle / "model.json").write_text(json.dumps(card))

    status, body = call(load_predict_app(bundle), load_event("model.json"), lambda_context)

    assert status == 200
    assert "future_key" not in body and "training" not in body
    assert body["sample"] == card["sample"]


def test_predict_health_reports_ready_with_version(app, load_event, lambda_context):
    status, body = call(app, load_event("health.json"), lambda_context)

    assert status == 200
    assert body == {
        "status": "ready",
        "model": {"name": app.MODEL.name, "version": app.MODEL.version, "task": "classification"},
    }


def test_predict_unknown_route_is_404_in_error_shape(app, load_event, lambda_context):
    event = load_event("health.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/predictions"

    status, body = call(app, event, lambda_context)

    assert status == 404
    assert body["error"]["code"] == "not_found"


def test_predict_openapi_is_valid_and_describes_the_card(app, load_event, lambda_context):
    event = load_event("health.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"

    status, document = call(app, event, lambda_context)

    validate(document)
    v2_models = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")
    assert set(document["paths"]) == {"/predict", "/model", "/health", "/openapi.json", "/v2", "/v2/health/live",
                                      "/v2/health/ready", *v2_models, *(f"{path}/ready" for path in v2_models),
                                      *(f"{path}/infer" for path in v2_models)}  # fmt: skip
    operation = document["paths"]["/predict"]["post"]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    instance, by_name = body_schema["properties"]["instances"]["items"]["oneOf"]  # a list, or an object by name
    assert status == 200
    assert (instance["minItems"], instance["maxItems"]) == (64, 64)
    assert "pixel_7_7" in instance["description"] and by_name["required"][-1] == "pixel_7_7"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["predictions"]["items"][
        "enum"
    ] == [str(digit) for digit in range(10)]
    assert set(operation["responses"]) >= {"200", "400", "413", "415", "422", "503"}
    jsonschema.validate(json.loads(load_event("predict-batch.json")["body"]), body_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(load_event("predict-bad-shape.json")["body"]), body_schema)


def test_predict_session_uses_the_configured_threads(load_predict_app, digits_bundle):
    app = load_predict_app(digits_bundle, ORT_INTRA_OP_THREADS="2")

    options = app.MODEL.session.get_session_options()

    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert app.MODEL.session.get_providers() == ["CPUExecutionProvider"]


def test_predict_openapi_describes_the_v2_routes_with_the_cards_shapes(app, digits_bundle, load_event, lambda_context):
    card = json.loads((digits_bundle / "model.json").read_text())
    event = load_event("health.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"

    _, document = call(app, event, lambda_context)

    metadata = document["paths"]["/v2/models/{name}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert metadata["schema"]["example"]["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 64]}]
    assert document["paths"]["/v2/models/{name}"]["parameters"][0]["schema"]["enum"] == [card["name"]]
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    request = infer["requestBody"]["content"]["application/json"]
    jsonschema.validate(request["example"], request["schema"])
    tensor = request["schema"]["properties"]["inputs"]["items"]["anyOf"][0]
    assert (tensor["properties"]["shape"]["minItems"], tensor["properties"]["datatype"]["enum"]) == (2, ["FP32"])
    assert set(infer["responses"]) == {"200", "400", "404", "413", "503"}
    assert set(infer["responses"]["200"]["content"]) == {"application/json", "application/octet-stream"}
