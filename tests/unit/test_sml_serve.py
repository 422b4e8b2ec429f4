"""`sml serve` answers real HTTP requests as API Gateway + Lambda would, with each function kept warm."""

import base64
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.projects import LocalApi, echo_project, predict_project, serving

ROOT = Path(__file__).resolve().parents[2]
SIX_MB = 6 * 1024 * 1024

ECHO_APP = '''
"""A test function that answers with the event it received (or a binary body, a bare dict, an error)."""
import base64
import json
import os
import time

INVOCATIONS = 0


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    path = event.get("rawPath") or event.get("path")
    if path.endswith("/binary"):
        body = base64.b64encode(bytes(range(256))).decode()
        return {"statusCode": 200, "headers": {"content-type": "image/png"}, "body": body, "isBase64Encoded": True}
    if path.endswith("/bare"):
        return {"hello": "world"}
    if path.endswith("/raise"):
        raise ValueError("asked to fail")
    if path.endswith("/sleep"):
        time.sleep(float(os.environ["AWS_LAMBDA_FUNCTION_TIMEOUT"]) + 2)
    report = {"event": event, "invocations": INVOCATIONS, "pid": os.getpid(), "stage": os.environ["ECHO_STAGE"]}
    cookies = ["a=1", "b=2; Path=/"]
    return {"statusCode": 201, "headers": {"x-echo": "yes"}, "cookies": cookies, "body": json.dumps(report)}
'''

ECHO_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: test}
Globals:
  Function: {Runtime: python3.12, Timeout: 2}
Resources:
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.handler
      Environment: {Variables: {ECHO_STAGE: !Ref Stage}}
      Events:
        Any: {Type: HttpApi, Properties: {Path: "/echo/{proxy+}", Method: ANY}}
        Item: {Type: HttpApi, Properties: {Path: "/items/{id}", Method: get}}
        Rest: {Type: Api, Properties: {Path: "/rest/{id}", Method: post}}
"""


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    with serving(echo_project(tmp_path_factory.mktemp("echo-serve"), ECHO_APP, ECHO_TEMPLATE)) as server:
        yield server


@pytest.fixture(scope="module")
def predict_server(tmp_path_factory: pytest.TempPathFactory, digits_bundle: Path) -> Iterator[LocalApi]:
    """The real template and function, a copy with the digits bundle promoted into it."""
    with serving(predict_project(tmp_path_factory.mktemp("predict-serve"), digits_bundle)) as server:
        yield server


def echoed(server: LocalApi, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    status, _, body = server.request(method, path, **kwargs)
    assert status == 201, body
    report: dict[str, Any] = json.loads(body)
    return report


def test_sml_serve_builds_an_http_api_v2_event(echo_server):
    started_ms = time.time() * 1000
    headers = {"Content-Type": "application/json", "X-Custom": "A", "Cookie": "c1=1; c2=2", "User-Agent": "test/1"}

    event = echoed(echo_server, "POST", "/echo/a/b?x=1&x=2&y=z%20z", body=b'{"k": 1}', headers=headers)["event"]

    assert (event["version"], event["routeKey"]) == ("2.0", "ANY /echo/{proxy+}")
    assert (event["rawPath"], event["rawQueryString"]) == ("/echo/a/b", "x=1&x=2&y=z%20z")
    assert event["queryStringParameters"] == {"x": "1,2", "y": "z z"}
    assert event["cookies"] == ["c1=1", "c2=2"]
    assert event["headers"]["x-custom"] == "A" and "cookie" not in event["headers"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["pathParameters"] == {"proxy": "a/b"}
    assert (event["body"], event["isBase64Encoded"]) == ('{"k": 1}', False)
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/echo/a/b",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "test/1",
    }
    assert (context["stage"], context["routeKey"], context["accountId"]) == (
        "$default",
        "ANY /echo/{proxy+}",
        "123456789012",
    )
    assert started_ms - 1000 <= context["timeEpoch"] <= time.time() * 1000
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["time"])
    assert {"apiId", "domainName", "domainPrefix", "requestId"} <= set(context)


def test_sml_serve_sends_binary_bodies_base64_encoded(echo_server):
    payload = bytes(range(256))

    event = echoed(echo_server, "PUT", "/echo/upload", body=payload, headers={"Content-Type": "image/png"})["event"]

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_sml_serve_decodes_base64_replies(echo_server):
    status, headers, body = echo_server.request("GET", "/echo/binary")

    assert (status, headers["content-type"]) == (200, "image/png")
    assert body == bytes(range(256))


def test_sml_serve_writes_status_headers_and_cookies_back(echo_server):
    status, headers, _ = echo_server.request("GET", "/echo/x")

    assert (status, headers["x-echo"]) == (201, "yes")
    assert headers.get_all("set-cookie") == ["a=1", "b=2; Path=/"]


def test_sml_serve_reply_without_status_code_is_200_json(echo_server):
    status, headers, body = echo_server.request("GET", "/echo/bare")

    assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {"hello": "world"})


def test_sml_serve_matches_path_parameters_and_methods(echo_server):
    event = echoed(echo_server, "GET", "/items/42")["event"]
    status, _, body = echo_server.request("DELETE", "/items/42")

    assert (event["routeKey"], event["pathParameters"]) == ("GET /items/{id}", {"id": "42"})
    assert (status, json.loads(body)) == (404, {"error": {"code": "not_found", "message": "no route DELETE /items/42"}})


def test_sml_serve_unknown_route_is_404_in_the_functions_error_form(echo_server):
    status, headers, body = echo_server.request("GET", "/nowhere")

    assert (status, headers["content-type"]) == (404, "application/json")
    assert json.loads(body) == {"error": {"code": "not_found", "message": "no route GET /nowhere"}}


def test_sml_serve_api_events_get_the_rest_v1_payload(echo_server):
    event = echoed(echo_server, "POST", "/rest/7?q=1&q=2", body=b"hi", headers={"Content-Type": "text/plain"})["event"]

    assert (event["resource"], event["path"], event["httpMethod"]) == ("/rest/{id}", "/rest/7", "POST")
    assert event["pathParameters"] == {"id": "7"}
    assert event["multiValueQueryStringParameters"] == {"q": ["1", "2"]}
    assert (event["body"], event["isBase64Encoded"], event["requestContext"]["stage"]) == ("hi", False, "Prod")


def test_sml_serve_keeps_the_function_warm(echo_server):
    first = echoed(echo_server, "GET", "/echo/warm")
    second = echoed(echo_server, "GET", "/echo/warm")

    assert second["pid"] == first["pid"]
    assert second["invocations"] == first["invocations"] + 1
    assert first["stage"] == "test"  # !Ref Stage resolved to the parameter's default


def test_sml_serve_function_error_is_500_and_serving_continues(echo_server):
    status, _, body = echo_server.request("GET", "/echo/raise")

    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    assert echo_server.request("GET", "/echo/after")[0] == 201


def test_sml_serve_timeout_is_500_and_next_request_gets_a_fresh_container(echo_server):
    before = echoed(echo_server, "GET", "/echo/before")

    status, _, _ = echo_server.request("GET", "/echo/sleep")
    after = echoed(echo_server, "GET", "/echo/after")

    assert status == 500
    assert after["pid"] != before["pid"] and after["invocations"] == 1


def test_sml_serve_refuses_bodies_over_6_mb_with_413(echo_server):
    status, _, body = echo_server.request("POST", "/echo/big", body=b"x" * (SIX_MB + 1))

    assert (status, json.loads(body)["error"]["code"]) == (413, "payload_too_large")
    assert echoed(echo_server, "POST", "/echo/small", body=b"x" * 1_000_000)["event"]["body"] == "x" * 1_000_000


def test_sml_serve_logs_one_line_per_request(echo_server):
    echo_server.request("GET", "/echo/logged?secret=1")

    deadline = time.monotonic() + 10  # the line is written once the response is sent
    while not (lines := [line for line in echo_server.log.read_text().splitlines() if "/echo/logged" in line]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(lines) == 1
    assert re.fullmatch(
        r"sml\.serve: GET /echo/logged 201 \d+\.\d ms", lines[0]
    )  # no query string: it may hold secrets


def test_sml_serve_stops_cleanly_on_sigint(tmp_path):
    server = LocalApi(echo_project(tmp_path, ECHO_APP, ECHO_TEMPLATE), tmp_path / "serve.log")
    assert server.request("GET", "/echo/x")[0] == 201

    assert server.stop(signal.SIGINT) == 0
    assert "Traceback" not in server.log.read_text()


def test_sml_serve_predicts_with_the_promoted_model(predict_server, digits_bundle, load_event):
    instances = json.loads(load_event("predict-batch.json")["body"])["instances"]
    card = json.loads((digits_bundle / "model.json").read_text())

    status, _, body = predict_server.request(
        "POST", "/predict", json.dumps({"instances": instances}).encode(), {"Content-Type": "application/json"}
    )

    answer = json.loads(body)
    assert status == 200
    assert len(answer["predictions"]) == len(instances) and set(answer["predictions"]) <= set(card["labels"])
    assert answer["model"] == {"name": card["name"], "version": card["version"]}


@pytest.mark.parametrize(("path", "status"), [("/health", 200), ("/model", 200), ("/openapi.json", 200), ("/x", 404)])
def test_sml_serve_answers_each_route_of_the_template(predict_server, path, status):
    assert predict_server.request("GET", path)[0] == status


def test_sml_serve_passes_schemathesis(predict_server, tmp_path):
    """Generated requests from the served OpenAPI document: no 5xx, and documented answers match their schema."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{predict_server.url}/openapi.json",
            "--checks",
            "not_a_server_error,content_type_conformance,response_schema_conformance",
            "--seed",
            "20261129",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-6000:]
