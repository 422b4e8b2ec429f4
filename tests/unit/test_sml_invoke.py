"""`sml invoke` runs a template's function on an event the way `sam local invoke` does, without docker."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from tests import projects

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = ROOT / "events"

ECHO_APP = '''
"""A test function that answers with what it received, and fails or hangs on request."""
import json
import os
import time

INVOCATIONS = 0


def handler(event, context):
    global INVOCATIONS
    INVOCATIONS += 1
    print("echo: handler called")  # stdout inside Lambda: the invoke's JSON must not contain it
    if event.get("action") == "raise":
        raise ValueError("asked to fail")
    if event.get("action") == "sleep":
        time.sleep(float(os.environ["AWS_LAMBDA_FUNCTION_TIMEOUT"]) + 2)
    return {
        "event": event,
        "env": {k: v for k, v in os.environ.items() if k.startswith(("ECHO_", "AWS_", "POWERTOOLS_", "LAMBDA_"))},
        "cwd": os.getcwd(),
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "aws_request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }
'''

ECHO_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: test}
Globals:
  Function:
    Runtime: python3.12
    MemorySize: 256
    Timeout: 2
    Environment:
      Variables: {ECHO_GLOBAL: from-globals, ECHO_SHARED: globals-lose}
Resources:
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.handler
      Environment:
        Variables:
          ECHO_SHARED: function-wins
          ECHO_STAGE: !Ref Stage
          ECHO_URL: !Sub "https://${AWS::Region}.example.com/${Stage}"
          ECHO_TABLE: !GetAtt Table.Arn
  Table:
    Type: AWS::DynamoDB::Table
"""


def run_sml(*args: str | Path, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return projects.run_sml(*args, cwd=cwd, stdin=stdin, timeout=120)


@pytest.fixture(scope="module")
def predict_project(tmp_path_factory: pytest.TempPathFactory, digits_bundle: Path) -> Path:
    """A copy of template.yaml and functions/predict with the digits bundle promoted into it."""
    return projects.predict_project(tmp_path_factory.mktemp("predict-project"), digits_bundle)


@pytest.fixture(scope="module")
def echo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return projects.echo_project(tmp_path_factory.mktemp("echo-project"), ECHO_APP, ECHO_TEMPLATE)


def reply(result: subprocess.CompletedProcess[str]) -> tuple[int, Any]:
    """The function's HTTP status and decoded body from `sml invoke`'s stdout."""
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    return response["statusCode"], json.loads(response["body"])


def onnxruntime_probabilities(bundle: Path, instances: list[list[float]]) -> np.ndarray:
    session = ort.InferenceSession(bundle / "model.onnx", providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"features": np.asarray(instances, dtype=np.float32)})
    return np.asarray(probabilities)


def expect_probabilities_of(event: dict[str, Any], body: Any, bundle: Path) -> None:
    instances = json.loads(event["body"])["instances"]
    card = json.loads((bundle / "model.json").read_text())
    np.testing.assert_allclose(body["probabilities"], onnxruntime_probabilities(bundle, instances), rtol=1e-6)
    assert body["labels"] == card["labels"]
    assert len(body["predictions"]) == len(instances)
    assert body["model"] == {"name": card["name"], "version": card["version"]}


def expect_error(code: str) -> Any:
    def check(event: dict[str, Any], body: Any, bundle: Path) -> None:
        assert body["error"]["code"] == code and body["error"]["message"]

    return check


def expect_card(event: dict[str, Any], body: Any, bundle: Path) -> None:
    card = json.loads((bundle / "model.json").read_text())
    assert body == {key: value for key, value in card.items() if key != "training"}  # the public view


def expect_ready(event: dict[str, Any], body: Any, bundle: Path) -> None:
    card = json.loads((bundle / "model.json").read_text())
    assert body["status"] == "ready" and body["model"]["version"] == card["version"]


# Every file in events/ must be listed here: a new event gets its expected answer with it.
EXPECTED = {
    "predict.json": (200, expect_probabilities_of),
    "predict-batch.json": (200, expect_probabilities_of),
    "predict-bad-shape.json": (422, expect_error("invalid_instances")),
    "predict-nan.json": (422, expect_error("non_finite")),
    "predict-not-json.json": (400, expect_error("invalid_json")),
    "model.json": (200, expect_card),
    "health.json": (200, expect_ready),
}


# Events for the penguins example's bundle, answered in tests/unit/test_sml_categorical.py.
PENGUIN_EVENTS = ("predict-penguins.json",)


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS_DIR.glob("*.json") if p.name not in PENGUIN_EVENTS))
def test_sml_invoke_answers_each_committed_event(predict_project, digits_bundle, name):
    assert name in EXPECTED, f"events/{name} has no expected answer in EXPECTED"
    expected_status, check = EXPECTED[name]

    result = run_sml("invoke", "PredictFunction", "-e", EVENTS_DIR / name, cwd=predict_project)

    status, body = reply(result)
    assert status == expected_status, body
    check(json.loads((EVENTS_DIR / name).read_text()), body, digits_bundle)


def test_sml_invoke_prints_only_the_reply_on_stdout(echo_project):
    result = run_sml("invoke", "EchoFunction", "-e", "-", cwd=echo_project, stdin='{"n": 1}')

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["event"] == {"n": 1}  # one JSON document, nothing else
    assert "echo: handler called" in result.stderr


def test_sml_invoke_sets_environment_like_sam_local(echo_project):
    result = run_sml("invoke", "-e", "-", "--region", "eu-west-1", cwd=echo_project, stdin="{}")

    env = json.loads(result.stdout)["env"]
    assert env["ECHO_GLOBAL"] == "from-globals"
    assert env["ECHO_SHARED"] == "function-wins"
    assert env["ECHO_STAGE"] == "test"
    assert env["ECHO_URL"] == "https://eu-west-1.example.com/test"
    assert "ECHO_TABLE" not in env  # !GetAtt has no local value
    assert "ECHO_TABLE" in result.stderr
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert Path(env["LAMBDA_TASK_ROOT"]) == Path(json.loads(result.stdout)["cwd"]) == (echo_project / "echo").resolve()


def test_sml_invoke_passes_a_lambda_context(echo_project):
    result = run_sml("invoke", "EchoFunction", "-e", "-", cwd=echo_project, stdin="{}")

    context = json.loads(result.stdout)["context"]
    assert context["function_name"] == "EchoFunction"
    assert context["memory_limit_in_mb"] == "256"  # a string, as Lambda's runtime passes it
    assert context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:EchoFunction"
    assert len(context["aws_request_id"]) == 36
    assert 0 < context["remaining_ms"] <= 2000


def test_sml_invoke_env_vars_file_overrides_declared_variables_only(echo_project, tmp_path):
    env_vars = tmp_path / "env.json"
    env_vars.write_text(
        json.dumps({"Parameters": {"ECHO_GLOBAL": "p"}, "EchoFunction": {"ECHO_STAGE": "prod", "NEW": "x"}})
    )

    result = run_sml("invoke", "EchoFunction", "-e", "-", "--env-vars", env_vars, cwd=echo_project, stdin="{}")

    env = json.loads(result.stdout)["env"]
    assert (env["ECHO_GLOBAL"], env["ECHO_STAGE"]) == ("p", "prod")
    assert "NEW" not in env
    assert "NEW is not declared" in result.stderr


def test_sml_invoke_function_error_prints_lambda_error_and_exits_1(echo_project):
    result = run_sml("invoke", "EchoFunction", "-e", "-", cwd=echo_project, stdin='{"action": "raise"}')

    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "asked to fail")
    assert "Traceback" not in result.stdout and "[ERROR] ValueError: asked to fail" in result.stderr


def test_sml_invoke_kills_a_handler_past_its_timeout(echo_project):
    result = run_sml("invoke", "EchoFunction", "-e", "-", cwd=echo_project, stdin='{"action": "sleep"}')

    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in error["errorMessage"]


def test_sml_invoke_reports_a_broken_handler_as_import_error(echo_project, tmp_path):
    shutil.copytree(echo_project, tmp_path / "project")
    (tmp_path / "project" / "echo" / "app.py").write_text("import no_such_module\n")

    result = run_sml("invoke", "EchoFunction", cwd=tmp_path / "project")

    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'no_such_module'" in error["errorMessage"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invoke", "NoSuchFunction"], "has no function 'NoSuchFunction' (functions: EchoFunction)"),
        (["invoke", "EchoFunction", "-e", "missing.json"], "event file missing.json not found"),
        (["invoke", "--template", "nope.yaml"], "template nope.yaml not found"),
        (["invoke", "EchoFunction", "--env-vars", "missing.json"], "--env-vars file missing.json not found"),
    ],
)
def test_sml_invoke_user_mistake_is_one_line_and_exit_2(echo_project, args, message):
    result = run_sml(*args, cwd=echo_project)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("sml: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
