"""The pre-traffic check against a stand-in for AWS on 127.0.0.1: Lambda's Invoke and CodeDeploy's report.

The stand-in speaks the APIs' wire formats (boto3 reaches it through AWS_ENDPOINT_URL_LAMBDA and
AWS_ENDPOINT_URL_CODEDEPLOY) and answers invokes with the real predict function, loaded with a bundle.
"""

import contextlib
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import EVENTS_DIR, FakeLambdaContext, import_pretraffic_hook

VERSION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:serverless-ml-PredictFunction-AbC:7"
EVENT = {"DeploymentId": "d-EXAMPLE11", "LifecycleEventHookExecutionId": "eyJlbmNyeXB0ZWREYXRhIjoi"}
hook = import_pretraffic_hook()

# An invoke's outcome: the payload Lambda returns and its X-Amz-Function-Error header (None for none).
Invoke = Callable[[dict[str, Any]], tuple[Any, str | None]]


class FakeAws(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeAwsHandler)
        self.invoke: Invoke = lambda event: ({"statusCode": 500}, None)
        self.delay_s = 0.0
        self.invocations: list[tuple[str, str]] = []  # (FunctionName, routeKey)
        self.reports: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeAwsHandler(BaseHTTPRequestHandler):
    server: FakeAws

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.startswith("/2015-03-31/functions/"):  # Lambda Invoke
            name = urllib.parse.unquote(self.path.split("/")[3])
            self.server.invocations.append((name, request["routeKey"]))
            time.sleep(self.server.delay_s)
            payload, function_error = self.server.invoke(request)
            headers = {"X-Amz-Executed-Version": "7"} | (
                {"X-Amz-Function-Error": function_error} if function_error else {}
            )
            self.answer(payload, "application/json", headers)
        elif self.headers["X-Amz-Target"] == "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus":
            self.server.reports.append(request)
            answer = {"lifecycleEventHookExecutionId": request["lifecycleEventHookExecutionId"]}
            self.answer(answer, "application/x-amz-json-1.1", {})
        else:
            self.answer({"message": f"unexpected request {self.path}"}, "application/json", {}, status=400)

    def answer(self, document: Any, content_type: str, headers: dict[str, str], status: int = 200) -> None:
        body = json.dumps(document).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that gave up waiting
            self.send_response(status)
            for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    server = FakeAws()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CODEDEPLOY", server.url)
    monkeypatch.setenv("PREDICT_VERSION_ARN", VERSION_ARN)
    yield server
    server.shutdown()
    server.server_close()


def predict_function(load_predict_app: Callable[..., Any], model_dir: Path) -> Invoke:
    """Invokes of the real predict function, loaded with the bundle in `model_dir`."""
    app = load_predict_app(model_dir)
    return lambda event: (app.lambda_handler(event, FakeLambdaContext()), None)


def run_hook(aws: FakeAws) -> tuple[dict[str, str], str]:
    """The hook's return value and the one status it reported to CodeDeploy for EVENT."""
    result = hook.lambda_handler(dict(EVENT), None)
    (report,) = aws.reports
    assert report == {
        "deploymentId": EVENT["DeploymentId"],
        "lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"],
        "status": result["status"],
    }
    return result, report["status"]


@pytest.mark.parametrize("bundle", ["tiny_bundle", "tiny_regression_bundle"])
def test_a_version_that_answers_its_card_succeeds(
    aws: FakeAws, load_predict_app: Callable[..., Any], request: pytest.FixtureRequest, bundle: str
) -> None:
    aws.invoke = predict_function(load_predict_app, request.getfixturevalue(bundle))

    result, status = run_hook(aws)

    assert status == "Succeeded", result["reason"]
    assert aws.invocations == [(VERSION_ARN, "GET /model"), (VERSION_ARN, "POST /predict")]


def test_a_version_without_its_model_fails_on_the_503(
    aws: FakeAws, load_predict_app: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    aws.invoke = predict_function(load_predict_app, tmp_path / "no-bundle-here")

    result, status = run_hook(aws)

    assert status == "Failed"
    assert result["reason"].startswith("GET /model answered 503: the model is not loaded")
    assert result["reason"] in caplog.text  # the reason is in the hook's log, where the README sends users


def test_a_version_that_answers_wrongly_fails(
    aws: FakeAws, load_predict_app: Callable[..., Any], tiny_bundle: Path
) -> None:
    real = predict_function(load_predict_app, tiny_bundle)

    def off_by_a_hundredth(event: dict[str, Any]) -> tuple[Any, str | None]:
        reply, error = real(event)
        if event["routeKey"] == "POST /predict":
            body = json.loads(reply["body"])
            body["probabilities"][0][0] += 0.01
            reply["body"] = json.dumps(body)
        return reply, error

    aws.invoke = off_by_a_hundredth

    result, status = run_hook(aws)

    assert status == "Failed"
    assert result["reason"].startswith("POST /predict differs from the card's sample outputs by 0.01")


def test_a_version_that_raises_fails(aws: FakeAws) -> None:
    aws.invoke = lambda event: ({"errorMessage": "boom", "errorType": "RuntimeError", "stackTrace": []}, "Unhandled")

    result, status = run_hook(aws)

    assert status == "Failed"
    assert result["reason"] == "GET /model raised RuntimeError: boom"


def test_a_version_that_times_out_fails(aws: FakeAws) -> None:
    message = "RequestId: 3f1e Error: Task timed out after 10.00 seconds"
    aws.invoke = lambda event: ({"errorType": "Sandbox.Timedout", "errorMessage": message}, "Unhandled")

    result, status = run_hook(aws)

    assert status == "Failed"
    assert result["reason"] == f"GET /model raised Sandbox.Timedout: {message}"


def test_an_invoke_that_never_answers_fails_when_the_client_gives_up(aws: FakeAws) -> None:
    aws.invoke, aws.delay_s = (lambda event: ({"statusCode": 200, "body": "{}"}, None)), 2.0
    config = Config(connect_timeout=1, read_timeout=0.5, retries={"total_max_attempts": 1})

    reason = hook.check_version(boto3.client("lambda", config=config), VERSION_ARN, "d-EXAMPLE11")

    assert reason is not None
    assert reason.startswith(f"invoking {VERSION_ARN} failed: Read timeout")


def test_a_card_without_a_sample_fails(aws: FakeAws) -> None:
    card = {"task": "classification", "version": "v1", "labels": ["a", "b"]}
    aws.invoke = lambda event: ({"statusCode": 200, "body": json.dumps(card)}, None)

    result, status = run_hook(aws)

    assert status == "Failed"
    assert "no sample" in result["reason"]


def test_events_have_the_shape_api_gateway_sends() -> None:
    model, predict = hook.api_event("GET", "/model", "d-1"), hook.api_event("POST", "/predict", "d-1", "{}")
    committed = {name: json.loads((EVENTS_DIR / name).read_text()) for name in ("model.json", "predict.json")}

    for ours, theirs in ((model, committed["model.json"]), (predict, committed["predict.json"])):
        assert set(ours) == set(theirs)
        assert set(ours["requestContext"]) <= set(theirs["requestContext"])
        assert (ours["routeKey"], ours["requestContext"]["http"]["method"]) == (
            theirs["routeKey"],
            theirs["requestContext"]["http"]["method"],
        )
    assert predict["headers"]["content-type"] == "application/json"


def test_tolerance_and_outputs_are_the_loaders(load_predict_app: Callable[..., Any], tiny_bundle: Path) -> None:
    model = load_predict_app(tiny_bundle).model  # functions/predict/model.py, the twin's owner

    assert hook.SAMPLE_TOLERANCE == model.SAMPLE_TOLERANCE
    assert hook.OUTPUT_BY_TASK == model.OUTPUT_BY_TASK
