"""What the function tells CloudWatch about each request: EMF metrics and the keys on every log line."""

import json
from typing import Any

import pytest

# Refused requests record no metrics; app.py silences that warning, but pytest resets filters per test.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


@pytest.fixture
def app(load_predict_app, digits_bundle):
    return load_predict_app(digits_bundle)


def emf_documents(output: str) -> list[dict[str, Any]]:
    """The Embedded Metric Format documents powertools printed: JSON lines with an `_aws` key."""
    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [document for document in documents if "_aws" in document]


def test_predict_records_rows_and_model_latency_in_one_emf_document(app, load_event, lambda_context, capsys):
    event = load_event("predict-batch.json")
    capsys.readouterr()

    app.lambda_handler(event, lambda_context)

    documents = [doc for doc in emf_documents(capsys.readouterr().out) if "Predictions" in doc]
    assert len(documents) == 1
    (document,) = documents
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "ServerlessMLTest"
    assert {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]} == {
        "Predictions": "Count",
        "ModelLatency": "Milliseconds",
    }
    assert document["Predictions"] == [len(json.loads(event["body"])["instances"])] == [10]
    (latency_ms,) = document["ModelLatency"]
    assert 0 < latency_ms < 10_000
    assert document["service"] == "predict"


@pytest.mark.parametrize("body", ['{"instances": []}', "not json"])
def test_predict_refused_request_records_no_prediction_metrics(app, load_event, lambda_context, capsys, body):
    capsys.readouterr()

    response = app.lambda_handler(load_event("predict.json") | {"body": body}, lambda_context)

    assert response["statusCode"] in (400, 422)
    assert [doc for doc in emf_documents(capsys.readouterr().out) if "Predictions" in doc] == []


def test_predict_log_keys_name_the_model_and_the_request(app, load_event, lambda_context):
    event = load_event("predict.json")

    app.lambda_handler(event, lambda_context)

    keys = app.logger.get_current_keys()
    assert (keys["model_name"], keys["model_version"]) == (app.MODEL.name, app.MODEL.version)
    assert keys["function_request_id"] == lambda_context.aws_request_id
    assert isinstance(keys["cold_start"], bool)
    assert app.logger.get_correlation_id() == event["requestContext"]["requestId"]


def test_predict_correlation_id_follows_each_request(app, load_event, lambda_context):
    first, second = load_event("health.json"), load_event("predict.json")
    second["requestContext"]["requestId"] = "another-request"

    app.lambda_handler(first, lambda_context)
    app.lambda_handler(second, lambda_context)

    assert app.logger.get_correlation_id() == "another-request"
