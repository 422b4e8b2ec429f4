"""POST /predict skips powertools' resolver and answers exactly as the resolver would; its cold path
imports neither the event handler nor, unless tracing is on, the X-Ray SDK."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FUNCTION_DIR, read_event

# Refused requests record no metrics; app.py silences that warning, but pytest resets filters per test.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")

ROW = list(range(64))
PREDICT_REQUESTS = {
    "one row": {},
    "batch": {"body": read_event("predict-batch.json")["body"]},
    "bad shape": {"body": read_event("predict-bad-shape.json")["body"]},
    "nan": {"body": read_event("predict-nan.json")["body"]},
    "not json": {"body": read_event("predict-not-json.json")["body"]},
    "too many rows": {"body": json.dumps({"instances": [ROW] * 9})},
    "base64": {"body": "eyJpbnN0YW5jZXMiOiBbWzEsIDJdXX0=", "isBase64Encoded": True},
    "not base64": {"body": "{not base64!}", "isBase64Encoded": True},
    "no body": {"body": None},
    "text/csv": {"headers": {"content-type": "text/csv"}},
}


@pytest.mark.parametrize("case", PREDICT_REQUESTS)
def test_predict_straight_through_answers_as_the_resolver(load_predict_app, digits_bundle, lambda_context, case):
    app = load_predict_app(digits_bundle, MAX_BATCH="8")
    event = read_event("predict.json") | PREDICT_REQUESTS[case]

    straight = app.lambda_handler(event, lambda_context)
    through_resolver = app.resolver().resolve(event, lambda_context)

    assert straight == through_resolver
    assert straight["headers"] == {"Content-Type": "application/json"}


def test_predict_without_a_model_is_503_on_both_paths(load_predict_app, tmp_path, lambda_context):
    app = load_predict_app(tmp_path / "no-bundle")
    event = read_event("predict.json")

    straight = app.lambda_handler(event, lambda_context)

    assert straight == app.resolver().resolve(event, lambda_context)
    assert straight["statusCode"] == 503
    assert json.loads(straight["body"])["error"]["code"] == "model_unavailable"


def test_predict_route_key_other_than_post_predict_goes_through_the_resolver(
    load_predict_app, digits_bundle, lambda_context
):
    app = load_predict_app(digits_bundle)
    event = read_event("predict.json")
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"  # a catch-all route sends every path

    response = app.lambda_handler(event, lambda_context)

    assert response["statusCode"] == 200
    assert len(json.loads(response["body"])["predictions"]) == 1


COLD_START = """
import json, sys
sys.path.insert(0, {function_dir!r})
import app

class Context:
    function_name, function_version, memory_limit_in_mb, aws_request_id = "PredictFunction", "$LATEST", 1024, "id"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PredictFunction"

def imported():
    names = ("aws_lambda_powertools.event_handler", "aws_xray_sdk", "pydantic", "numpy.typing",
             "aws_lambda_powertools.utilities.typing", "envelope", "boto3", "cryptography", "v2", "v2_tensors")
    return [name for name in names if name in sys.modules]

report = {{"init": imported()}}
for name in ("predict.json", "health.json"):
    response = app.lambda_handler(json.load(open({events!r} + "/" + name)), Context())
    assert response["statusCode"] == 200, response
    report[name] = imported()
print(json.dumps(report))
"""


def cold_start_imports(bundle: Path, **env: str) -> dict[str, list[str]]:
    """The heavy packages a fresh process has imported after init, POST /predict and GET /health."""
    events = str(FUNCTION_DIR.parents[1] / "events")
    script = COLD_START.format(function_dir=str(FUNCTION_DIR), events=events)
    environment = {
        "MODEL_DIR": str(bundle),
        "LAMBDA_TASK_ROOT": str(FUNCTION_DIR),
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
        "PATH": "/usr/bin:/bin",
    } | env
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_predict_cold_path_imports_only_what_predict_needs(digits_bundle):
    report = cold_start_imports(digits_bundle, POWERTOOLS_TRACE_DISABLED="true")

    assert report == {
        "init": [],
        "predict.json": [],  # neither the resolver nor tracing nor pydantic nor the v2 protocol
        "health.json": ["aws_lambda_powertools.event_handler"],  # pydantic waits for GET /openapi.json
    }


@pytest.mark.parametrize(
    ("env", "traced"),
    [
        ({"POWERTOOLS_TRACE_DISABLED": "false"}, True),
        ({}, True),  # powertools' default in Lambda
        ({"POWERTOOLS_TRACE_DISABLED": "false", "AWS_SAM_LOCAL": "true"}, False),
        ({"POWERTOOLS_TRACE_DISABLED": "1"}, False),
        ({"POWERTOOLS_TRACE_DISABLED": "T"}, False),
    ],
)
def test_predict_imports_the_xray_sdk_only_when_tracing(digits_bundle, env, traced):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:  # where the SDK sends subsegments
        daemon.bind(("127.0.0.1", 0))
        env |= {
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "_X_AMZN_TRACE_ID": "Root=1-6745d2de-0a1b2c3d4e5f60718293a4b5;Parent=53995c3f42cd8ad8;Sampled=1",
        }

        report = cold_start_imports(digits_bundle, **env)

    assert ("aws_xray_sdk" in report["init"]) is traced
