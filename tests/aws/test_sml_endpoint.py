"""`sml endpoint predict` against `sml serve` (the real function on 127.0.0.1), and SigV4 signing against a recorder."""

import csv
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.aws.stack import (
    ROOT,
    FakeStack,
    create_output_stack,
    fixture_aws_stack,  # noqa: F401  (a fixture)
)
from tests.projects import predict_project, run_sml, serving

SERVED_MAX_BATCH = 8  # the served function's MAX_BATCH, far below sml's default of 256


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, digits_bundle: Path) -> Iterator[tuple[str, Path]]:
    """`sml serve` on the real template and function (MAX_BATCH=8) with the digits bundle: (URL, its log)."""
    template = (ROOT / "template.yaml").read_text()
    assert 'MAX_BATCH: "256"' in template
    template = template.replace('MAX_BATCH: "256"', f'MAX_BATCH: "{SERVED_MAX_BATCH}"')
    with serving(predict_project(tmp_path_factory.mktemp("served"), digits_bundle, template)) as server:
        yield server.url, server.log


def predict_lines(log: Path, since: int, count: int) -> list[str]:
    """The statuses of the `POST /predict` lines `sml serve` logged after byte `since`, once `count` are there."""
    deadline = time.monotonic() + 10  # a line is written just after its answer is sent
    while len(lines := re.findall(r"POST /predict (\d+)", log.read_text()[since:])) < count:
        assert time.monotonic() < deadline, lines
        time.sleep(0.02)
    return lines


def expected(bundle: Path, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The bundle's own answer, from onnxruntime: (labels, probabilities)."""
    card = json.loads((bundle / "model.json").read_text())
    session = ort.InferenceSession(bundle / "model.onnx", providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"features": rows.astype(np.float32)})
    return [card["labels"][index] for index in probabilities.argmax(axis=1)], probabilities


def digit_rows(count: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(0.0, 16.0, size=(count, 64)).round(3)


def test_endpoint_predict_splits_rows_into_batches_and_joins_the_answers(
    served: tuple[str, Path], digits_bundle: Path, tmp_path: Path
) -> None:
    url, log = served
    rows = digit_rows(20)
    (tmp_path / "rows.json").write_text(json.dumps({"instances": rows.tolist()}))
    since = len(log.read_text())

    result = run_sml("endpoint", "predict", "--file", "rows.json", "--url", url, "--max-batch", "8",
                     "--out", "predictions.json", cwd=tmp_path)  # fmt: skip

    assert result.returncode == 0, result.stderr
    answer = json.loads((tmp_path / "predictions.json").read_text())
    labels, probabilities = expected(digits_bundle, rows)
    assert answer["predictions"] == labels
    np.testing.assert_allclose(answer["probabilities"], probabilities, atol=1e-6)
    assert predict_lines(log, since, 3) == ["200", "200", "200"]  # 8 + 8 + 4 rows
    assert "20 rows, 3 requests" in result.stderr


def test_endpoint_predict_halves_a_batch_the_function_refuses_as_too_large(
    served: tuple[str, Path], digits_bundle: Path, tmp_path: Path
) -> None:
    url, log = served
    rows = digit_rows(20)
    (tmp_path / "rows.json").write_text(json.dumps(rows.tolist()))
    since = len(log.read_text())

    result = run_sml("endpoint", "predict", "--file", "rows.json", "--url", url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["predictions"] == expected(digits_bundle, rows)[0]
    assert sorted(predict_lines(log, since, 7)) == ["200"] * 4 + ["413"] * 3  # 20 -> 10 + 10 -> 5 + 5 + 5 + 5


def test_endpoint_predict_reads_csv_columns_by_the_model_feature_names(
    served: tuple[str, Path], digits_bundle: Path, tmp_path: Path
) -> None:
    url, _ = served
    rows = digit_rows(5)
    names = json.loads((digits_bundle / "model.json").read_text())["input"]["feature_names"]
    order = list(reversed(range(64)))  # a CSV in another column order, with the target column too
    with (tmp_path / "rows.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["label", *(names[i] for i in order)])
        writer.writerows([["3", *(row[i] for i in order)] for row in rows.tolist()])

    result = run_sml("endpoint", "predict", "--file", "rows.csv", "--url", url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["predictions"] == expected(digits_bundle, rows)[0]


class Recorder(BaseHTTPRequestHandler):
    """An API that records each request's headers and body, and predicts "7" for every row."""

    requests: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.requests.append(("POST", self.path, dict(self.headers.items()), body))
        rows = json.loads(body)["instances"]
        reply = json.dumps({"predictions": ["7"] * len(rows), "model": {"name": "m", "version": "1"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def expected_signature(method: str, url: str, headers: dict[str, str], body: bytes) -> str:
    """The SigV4 signature of the recorded request, recomputed with the fake credentials."""
    found = re.search(r"SignedHeaders=([^,]+)", headers["Authorization"])
    assert found is not None
    signed = found.group(1).split(";")
    request = AWSRequest(
        method=method, url=url, data=body, headers={k: v for k, v in headers.items() if k.lower() in signed}
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials("testing", "testing", "testing"), "execute-api", "us-east-1")
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


def test_endpoint_predict_signs_requests_with_sigv4_when_the_stack_api_uses_iam(
    aws_stack: FakeStack, recorder: str
) -> None:
    stack_name = f"iam-api-{secrets.token_hex(2)}"
    create_output_stack(aws_stack.account, stack_name, {"ApiUrl": recorder, "ApiAuth": "AWS_IAM"})
    (aws_stack.project / "rows.json").write_text(json.dumps([[1.0, 2.0], [3.0, 4.0]]))

    result = aws_stack.sml("endpoint", "predict", "--file", "rows.json", "--stack-name", stack_name)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["predictions"] == ["7", "7"]
    ((method, path, headers, body),) = Recorder.requests
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential=testing/{day}/us-east-1/execute-api/")
    assert headers["X-Amz-Security-Token"] == "testing"
    assert headers["Authorization"].endswith(f"Signature={expected_signature(method, recorder + path, headers, body)}")


def test_endpoint_predict_sends_no_signature_when_the_stack_api_is_open(aws_stack: FakeStack, recorder: str) -> None:
    stack_name = f"open-api-{secrets.token_hex(2)}"
    create_output_stack(aws_stack.account, stack_name, {"ApiUrl": recorder, "ApiAuth": "NONE"})
    (aws_stack.project / "rows.json").write_text(json.dumps([[1.0, 2.0]]))

    result = aws_stack.sml("endpoint", "predict", "--file", "rows.json", "--stack-name", stack_name)

    assert result.returncode == 0, result.stderr
    ((_, _, headers, _),) = Recorder.requests
    assert "Authorization" not in headers and "X-Amz-Date" not in headers
