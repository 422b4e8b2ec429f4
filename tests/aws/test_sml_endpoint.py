"""`sml endpoint predict` against `sml serve` (the real function on 127.0.0.1), and SigV4 signing against a recorder."""

import csv
import email.utils
import io
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sml.cli import main
from sml.endpoint import pipeline
from sml.endpoint.client import Api
from sml.endpoint.output import Writer
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


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_endpoint_predict_splits_rows_into_batches_and_writes_one_line_per_row(
    served: tuple[str, Path], digits_bundle: Path, tmp_path: Path
) -> None:
    url, log = served
    rows = digit_rows(20)
    (tmp_path / "rows.json").write_text(json.dumps({"instances": rows.tolist()}))
    since = len(log.read_text())

    result = run_sml("endpoint", "predict", "--file", "rows.json", "--url", url, "--max-batch", "8",
                     "--out", "predictions.jsonl", cwd=tmp_path)  # fmt: skip

    assert result.returncode == 0, result.stderr
    answers = jsonl((tmp_path / "predictions.jsonl").read_text())
    labels, probabilities = expected(digits_bundle, rows)
    assert [answer["prediction"] for answer in answers] == labels
    np.testing.assert_allclose([list(a["probabilities"].values()) for a in answers], probabilities, atol=1e-6)
    assert list(answers[0]["probabilities"]) == json.loads((digits_bundle / "model.json").read_text())["labels"]
    assert predict_lines(log, since, 3) == ["200", "200", "200"]  # 8 + 8 + 4 rows
    assert re.search(r"sml: 20 rows, 3 requests, 0 retries, \d+ rows/s, model ", result.stderr)


def test_endpoint_predict_halves_a_batch_the_function_refuses_as_too_large(
    served: tuple[str, Path], digits_bundle: Path, tmp_path: Path
) -> None:
    url, log = served
    rows = digit_rows(20)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows.tolist()))
    since = len(log.read_text())

    result = run_sml("endpoint", "predict", "--file", "rows.jsonl", "--url", url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert [answer["prediction"] for answer in jsonl(result.stdout)] == expected(digits_bundle, rows)[0]
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
    assert [answer["prediction"] for answer in jsonl(result.stdout)] == expected(digits_bundle, rows)[0]


def send_json(
    handler: BaseHTTPRequestHandler, status: int, reply: bytes, headers: dict[str, str] | None = None
) -> None:
    """Answer a test server's request with a JSON body (and any extra headers)."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(reply)))
    handler.end_headers()
    handler.wfile.write(reply)


class Flaky(BaseHTTPRequestHandler):
    """A proxy in front of `sml serve` that answers the first POST /predict requests with `script`'s statuses."""

    protocol_version = "HTTP/1.1"
    upstream: ClassVar[str] = ""
    script: ClassVar[list[int]] = []
    connections: ClassVar[int] = 0
    retry_after: ClassVar[str] = "0"  # seconds, sent with each 429
    lock = threading.Lock()

    def setup(self) -> None:
        with Flaky.lock:
            Flaky.connections += 1
        super().setup()

    def do_GET(self) -> None:
        self.forward(b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with Flaky.lock:
            status = Flaky.script.pop(0) if Flaky.script else None
        if status is None:
            self.forward(body)
            return
        reply = json.dumps({"message": HTTPStatus(status).phrase}).encode()
        send_json(self, status, reply, {"Retry-After": Flaky.retry_after} if status == 429 else {})

    def forward(self, body: bytes) -> None:
        request = urllib.request.Request(
            Flaky.upstream + self.path, data=body or None, method=self.command, headers=dict(self.headers.items())
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, reply = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, reply = error.code, error.read()
        send_json(self, status, reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky(served: tuple[str, Path]) -> Iterator[str]:
    """The proxy's URL; set Flaky.script to the statuses its next POST /predict requests answer."""
    Flaky.upstream, Flaky.script, Flaky.connections, Flaky.retry_after = served[0], [], 0, "0"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_endpoint_predict_retries_429_and_a_503_burst_and_keeps_rows_in_order(
    flaky: str, digits_bundle: Path, tmp_path: Path
) -> None:
    rows = digit_rows(40)
    names = json.loads((digits_bundle / "model.json").read_text())["input"]["feature_names"]
    with (tmp_path / "rows.csv").open("w", newline="") as file:
        csv.writer(file).writerows([names, *rows.tolist()])
    Flaky.script = [429, 503, 503, 503]

    result = run_sml("endpoint", "predict", "--file", "rows.csv", "--url", flaky, "--max-batch", "8",
                     "--concurrency", "3", "--out", "predictions.csv", cwd=tmp_path)  # fmt: skip

    assert result.returncode == 0, result.stderr
    with (tmp_path / "predictions.csv").open(newline="") as file:
        header, *lines = list(csv.reader(file))
    labels, probabilities = expected(digits_bundle, rows)
    card_labels = json.loads((digits_bundle / "model.json").read_text())["labels"]
    assert header == ["prediction", *(f"probability_{label}" for label in card_labels)]
    assert [line[0] for line in lines] == labels
    np.testing.assert_allclose([[float(v) for v in line[1:]] for line in lines], probabilities, atol=1e-6)
    assert re.search(r"sml: 40 rows, 9 requests, 4 retries, \d+ rows/s, model ", result.stderr)  # 5 batches + 4
    assert Flaky.connections <= 4  # kept alive: one per worker, and one for GET /model


def test_endpoint_predict_gives_up_after_max_retries_naming_the_rows(flaky: str, tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in digit_rows(3).tolist()))
    Flaky.script = [503] * 3

    result = run_sml("endpoint", "predict", "--file", "rows.jsonl", "--url", flaky, "--max-retries", "2", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == "sml: error: POST /predict answered 503 for rows 0-2: Service Unavailable\n"


def test_endpoint_predict_stops_every_worker_at_the_first_failure_and_names_it(flaky: str, tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in digit_rows(6).tolist()))
    Flaky.script, Flaky.retry_after = [400, 429, 429], "30"  # one batch refused, the other told to wait 30 s
    started = time.monotonic()

    result = run_sml("endpoint", "predict", "--file", "rows.jsonl", "--url", flaky, "--max-batch", "3",
                     "--concurrency", "2", cwd=tmp_path)  # fmt: skip

    assert result.returncode == 2
    assert re.fullmatch(r"sml: error: POST /predict answered 400 for rows (0-2|3-5): Bad Request\n", result.stderr)
    assert time.monotonic() - started < 20  # the waiting worker gave up rather than sleeping out its Retry-After


def test_endpoint_predict_reads_parquet_in_batches(
    served: tuple[str, Path], digits_bundle: Path, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = digit_rows(30)
    names = json.loads((digits_bundle / "model.json").read_text())["input"]["feature_names"]
    table = pa.table({"id": list(range(30)), **{name: rows[:, i] for i, name in enumerate(names)}})
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=7)

    result = run_sml("endpoint", "predict", "--file", "rows.parquet", "--url", served[0], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert [answer["prediction"] for answer in jsonl(result.stdout)] == expected(digits_bundle, rows)[0]


def test_endpoint_predict_holds_a_bounded_number_of_rows_in_memory(recorder: str) -> None:
    concurrency, max_rows = 2, 10
    consumed = 0

    class Lines(io.StringIO):
        written = 0

        def write(self, text: str) -> int:
            Lines.written += text.count("\n")
            return super().write(text)

    def rows() -> Iterator[list[float]]:
        nonlocal consumed
        for number in range(1000):
            # what was read but not yet written: batches in flight or waiting, and the batch being filled
            assert consumed - Lines.written <= (2 * concurrency + 1) * max_rows
            consumed += 1
            yield [float(number), 1.0]

    tally = pipeline.Tally()
    out = Lines()
    pipeline.run(pipeline.Sender(Api(recorder), 0, tally), rows(), Writer(out, "jsonl"), concurrency, max_rows,
                 pipeline.Progress(tally, io.StringIO()))  # fmt: skip

    assert (tally.rows, tally.requests, Lines.written) == (1000, 100, 1000)
    sent = [row for *_, body in Recorder.requests for row in json.loads(body)["instances"]]
    assert sorted(sent) == [[float(n), 1.0] for n in range(1000)]


class Recorder(BaseHTTPRequestHandler):
    """An API that records each request's headers and body, and predicts "7" for every row."""

    requests: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.requests.append(("POST", self.path, dict(self.headers.items()), body))
        rows = json.loads(body)["instances"]
        reply = json.dumps({"predictions": ["7"] * len(rows), "model": {"name": "m", "version": "1"}}).encode()
        send_json(self, 200, reply)

    def do_GET(self) -> None:
        reply = json.dumps({"input": {"feature_names": ["size", "color"], "shape": [None, 2]}}).encode()
        send_json(self, 200, reply)

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
    assert jsonl(result.stdout) == [{"prediction": "7"}, {"prediction": "7"}]
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


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_endpoint_predict_shows_progress_on_a_terminal_only(recorder: str) -> None:
    def send(stream: io.StringIO) -> str:
        tally = pipeline.Tally()
        rows = ([float(n), 1.0] for n in range(30))
        pipeline.run(pipeline.Sender(Api(recorder), 0, tally), rows, Writer(io.StringIO(), "jsonl"), 2, 10,
                     pipeline.Progress(tally, stream))  # fmt: skip
        return stream.getvalue()

    shown = send(Terminal())

    assert re.search(r"\r30 rows  3 requests  0 retries  [\d,]+ rows/s\x1b\[K\n$", shown)
    assert send(io.StringIO()) == ""


def test_retry_delay_honours_retry_after_else_backs_off_with_jitter() -> None:
    in_a_minute = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    assert pipeline.retry_delay(0, "3") == 3.0
    assert 50 < pipeline.retry_delay(0, in_a_minute) <= 60
    delays = [pipeline.retry_delay(attempt, None) for attempt in range(12) for _ in range(20)]
    assert all(0 <= delay <= pipeline.BACKOFF_CAP_S for delay in delays)
    assert len(set(delays)) == len(delays)  # jittered: no two clients retry in step
    assert max(pipeline.retry_delay(1, None) for _ in range(50)) <= 2 * pipeline.BACKOFF_BASE_S


def test_endpoint_predict_sends_csv_text_cells_as_strings_in_the_model_column_order(
    recorder: str, tmp_path: Path
) -> None:
    (tmp_path / "rows.csv").write_text("id,color,size\n1,red,1.5\n2,blue,2\n")

    result = run_sml("endpoint", "predict", "--file", "rows.csv", "--url", recorder, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    ((_, _, _, body),) = Recorder.requests
    assert json.loads(body) == {"instances": [[1.5, "red"], [2.0, "blue"]]}


@pytest.mark.parametrize(
    ("file", "out", "message"),
    [
        ("rows.csv", "predictions.json", "--out predictions.json: name a .jsonl or .csv file (one line per row, "
         "written as answers arrive), or pass --output-format jsonl|csv"),
        ("rows.xlsx", "predictions.csv", "--file rows.xlsx: name a .csv, .tsv, .jsonl, .parquet or .json file"),
        ("absent.csv", "predictions.csv", "--file absent.csv not found"),
    ],
)  # fmt: skip
def test_endpoint_predict_refuses_files_it_cannot_stream_before_any_request(
    file: str,
    out: str,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("rows.csv", "rows.xlsx"):
        (tmp_path / name).write_text("1,2\n")

    code = main(["endpoint", "predict", "--file", file, "--out", out, "--url", "http://127.0.0.1:9"])

    assert (code, capsys.readouterr().err) == (2, f"sml: error: {message}\n")
    assert not (tmp_path / out).exists()


def test_csv_missing_cells_are_the_ones_pandas_reads_as_missing() -> None:
    from pandas._libs.parsers import STR_NA_VALUES  # the training job reads CSV with pandas' defaults

    from sml.endpoint.rows import CSV_MISSING

    assert set(STR_NA_VALUES) == CSV_MISSING


@pytest.mark.parametrize(("flag", "value"), [("--concurrency", "0"), ("--max-batch", "ten")])
def test_endpoint_predict_refuses_counts_that_are_not_whole_numbers_naming_the_flag(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["endpoint", "predict", "--file", "rows.csv", flag, value, "--url", "http://127.0.0.1:9"])

    assert exited.value.code == 2
    assert f"sml: error: argument {flag}: expected a whole number of at least " in capsys.readouterr().err
