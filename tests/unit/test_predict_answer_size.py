"""Lambda returns at most 6 MB: a request whose answer would be larger is a 413 that says how many rows fit."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sml.local.worker import MAX_PAYLOAD_BYTES as RESPONSE_LIMIT_BYTES  # Lambda's limit, as `sml invoke` holds to it
from tests.conftest import drop_predict_modules, import_predict_app, read_event

ROW = [1.5, -2.25, 7.0, 0.125]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


@pytest.fixture(scope="module")
def many_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2,000-class model: its probabilities for 256 rows would be ~8 MB of JSON."""
    from tests.fixtures.make_tiny_bundle import make_tiny_bundle

    labels = [f"class-{index:04d}" for index in range(2000)]
    return make_tiny_bundle(tmp_path_factory.mktemp("many-classes"), labels=labels, name="many-classes")


@pytest.fixture(scope="module")
def app(many_classes):
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield import_predict_app(monkeypatch, many_classes, MAX_BATCH="100000")
        drop_predict_modules()


def invoke(app: Any, context: Any, rows: int) -> dict[str, Any]:
    event = read_event("predict.json")
    event["body"] = json.dumps({"instances": [ROW] * rows})
    response: dict[str, Any] = app.lambda_handler(event, context)
    return response


def test_predict_answer_over_lambdas_limit_is_413_naming_the_rows_that_fit(app, lambda_context):
    refused = invoke(app, lambda_context, 1000)

    error = json.loads(refused["body"])["error"]
    assert (refused["statusCode"], error["code"]) == (413, "batch_too_large")
    found = re.search(r"at most (\d+) instances", error["message"])
    assert found is not None, error
    fit = int(found.group(1))
    assert 100 < fit < 1000

    answered = invoke(app, lambda_context, fit)
    size = len(json.dumps(answered).encode())  # what the runtime sends back to Lambda
    assert answered["statusCode"] == 200 and len(json.loads(answered["body"])["predictions"]) == fit
    assert size <= RESPONSE_LIMIT_BYTES
    assert size > 0.6 * RESPONSE_LIMIT_BYTES  # the bound is conservative, not wasteful
    assert invoke(app, lambda_context, fit + 1)["statusCode"] == 413


def test_predict_small_model_keeps_max_batch_as_its_only_limit(digits_bundle, lambda_context):
    with pytest.MonkeyPatch.context() as monkeypatch:
        app = import_predict_app(monkeypatch, digits_bundle, MAX_BATCH="4096")
        try:
            event = read_event("predict.json")
            row = json.loads(event["body"])["instances"][0]
            event["body"] = json.dumps({"instances": [row] * 4096})
            response = app.lambda_handler(event, lambda_context)
        finally:
            drop_predict_modules()

    assert response["statusCode"] == 200  # 4,096 rows of 10 probabilities: ~0.7 MB


def test_predict_response_limit_is_sml_workers_twin(app):
    # functions/ may not import sml: predict.py keeps its own copy of the limit, held equal here.
    assert app.predict.LAMBDA_RESPONSE_BYTES == RESPONSE_LIMIT_BYTES
