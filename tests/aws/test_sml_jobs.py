"""The parts of the AWS commands decided before any request: job names, settings, durations, request batches."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sml.cli import main
from sml.endpoint.rows import batches
from sml.errors import UserError
from sml.jobs.job import backend_of
from sml.jobs.names import default_name_prefix, new_job_name
from sml.jobs.settings import read_settings
from sml.jobs.submit import parse_duration

SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # CreateTrainingJob's TrainingJobName pattern
BATCH_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,127}")  # SubmitJob's jobName rule


def test_job_names_are_unique_and_valid_on_both_services() -> None:
    now = datetime(2026, 11, 29, 15, 30, 0, tzinfo=UTC)
    prefix = default_name_prefix("s3://bucket/data/My_Digits.v2.csv")

    names = {new_job_name(prefix, now) for _ in range(50)}

    assert len(names) > 40  # four random hex digits per name: a clash in 50 is rare, 10 clashes impossible
    for name in names:
        assert name.startswith("My-Digits-20261129-153000-")
        assert SAGEMAKER_NAME.fullmatch(name) and BATCH_NAME.fullmatch(name)
    assert SAGEMAKER_NAME.fullmatch(new_job_name("x" * 42, now))


@pytest.mark.parametrize("prefix", ["-digits", "digits_v2", "x" * 43, ""])
def test_job_name_prefix_the_services_refuse_is_a_user_error(prefix: str) -> None:
    with pytest.raises(UserError, match="--name"):
        new_job_name(prefix)


def test_settings_come_from_the_config_file_then_set_flags_as_strings(tmp_path: Path) -> None:
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"epochs": 40, "hidden-size": 64, "nesterov": True, "input_shape": [1, 8, 8]}))

    settings = read_settings(config, ["epochs=5", "lr = 0.001"])

    assert settings == {"epochs": "5", "hidden_size": "64", "nesterov": "true", "input_shape": "1,8,8", "lr": "0.001"}


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        (["epochs"], "write NAME=VALUE"),
        (["out=s3://elsewhere/"], "setting 'out' cannot be set: sml sends the bundle to s3://BUCKET/bundles/"),
        (["checkpoint-dir=/tmp"], "setting 'checkpoint_dir' cannot be set"),
        (["log-format=text"], "setting 'log_format' cannot be set: a job on AWS logs JSON lines"),
        (["Epochs=3"], "'Epochs' is not a setting name"),
    ],
)
def test_settings_sml_owns_or_cannot_read_are_refused(assignments: list[str], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        read_settings(None, assignments)


@pytest.mark.parametrize(("text", "seconds"), [("3600", 3600), ("90m", 5400), ("12h", 43200), ("2d", 172800)])
def test_durations_read_seconds_minutes_hours_and_days(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_backend_is_batch_for_uuids_and_arns_else_sagemaker() -> None:
    assert backend_of("3f1c6a8e-0b7e-4a51-9a4e-8d2b1c0e9f11") == "batch"
    assert backend_of("arn:aws:batch:us-east-1:123456789012:job/3f1c6a8e-0b7e-4a51-9a4e-8d2b1c0e9f11") == "batch"
    assert backend_of("digits-20261129-153000-a1b2") == "sagemaker"


def test_batches_stay_under_the_row_and_byte_limits_in_row_order() -> None:
    rows = [[1000.0 + i] * 10 for i in range(25)]  # every row the same size in JSON
    row_bytes = len(json.dumps(rows[0])) + 2

    by_rows = list(batches(rows, max_rows=10))
    by_bytes = list(batches(rows, max_rows=100, max_bytes=4 * row_bytes))

    assert [len(batch) for batch in by_rows] == [10, 10, 5]
    assert [len(batch) for batch in by_bytes] == [4] * 6 + [1]
    assert [row for batch in by_bytes for row in batch] == rows


def test_submit_flag_of_the_other_backend_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--backend", "batch", "--data", "s3://b/data/x.csv", "--target", "y", "--instance-type", "ml.p5.48xlarge"]

    code = main(["submit", *args])

    assert code == 2
    assert capsys.readouterr().err == "sml: error: --instance-type applies to --backend sagemaker only\n"


def test_endpoint_with_jwt_auth_and_no_token_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SML_API_TOKEN", raising=False)
    (tmp_path / "rows.json").write_text("[[1.0]]")

    code = main(["endpoint", "predict", "--file", str(tmp_path / "rows.json"), "--url", "https://x", "--auth", "jwt"])

    assert code == 2
    assert capsys.readouterr().err == "sml: error: the API takes JWT bearer tokens: pass --token or set SML_API_TOKEN\n"
