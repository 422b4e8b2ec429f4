"""The AWS tools' habits in `sml`: --config-env/--config-file, --output json, local data uploaded by `sml submit`,
log streams past the first page, and S3 URI errors that name the wrong part."""

import base64
import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from tests.aws.stack import (
    BUCKET,
    STACK_NAME,
    TRAINING_LOG_GROUP,
    FakeStack,
    fixture_aws_stack,  # noqa: F401  (a fixture)
    put_log_lines,
)
from tests.aws.test_sml_status import EPOCH_LINES, create_sagemaker_job, log_stream_of, submit_batch_job

SAMCONFIG_ENVIRONMENTS = f"""version = 0.1
[default.global.parameters]
stack_name = "not-deployed"
region = "us-east-1"

[prod.global.parameters]
stack_name = "{STACK_NAME}"
region = "us-east-1"
"""


def submitted_command(stdout: str) -> list[str]:
    """The container command of the Batch job `sml submit` printed."""
    found = re.search(r"job id (\S+)", stdout)
    assert found, stdout
    (job,) = boto3.client("batch").describe_jobs(jobs=[found.group(1)])["jobs"]
    command: list[str] = job["container"]["command"]
    return command


def test_config_env_reads_that_environment_of_samconfig(aws_stack: FakeStack) -> None:
    (aws_stack.project / "samconfig.toml").write_text(SAMCONFIG_ENVIRONMENTS)
    data = f"s3://{BUCKET}/data/digits.csv"

    default = aws_stack.sml("submit", "--backend", "batch", "--data", data, "--target", "label")
    prod = aws_stack.sml("submit", "--backend", "batch", "--data", data, "--target", "label", "--config-env", "prod")

    assert default.returncode == 2 and "stack 'not-deployed' not found" in default.stderr
    assert prod.returncode == 0, prod.stderr
    assert submitted_command(prod.stdout)[:2] == ["--data", data]


def test_config_file_and_an_unknown_environment_are_named_in_the_error(aws_stack: FakeStack) -> None:
    (aws_stack.project / "deploy").mkdir()
    (aws_stack.project / "deploy" / "sam.toml").write_text(SAMCONFIG_ENVIRONMENTS)
    data = f"s3://{BUCKET}/data/digits.csv"
    submit = ("submit", "--backend", "batch", "--data", data, "--target", "label")

    chosen = aws_stack.sml(*submit, "--config-file", "deploy/sam.toml", "--config-env", "prod")
    unknown = aws_stack.sml(*submit, "--config-file", "deploy/sam.toml", "--config-env", "staging")
    missing = aws_stack.sml(*submit, "--config-file", "deploy/none.toml")

    assert chosen.returncode == 0, chosen.stderr
    assert unknown.returncode == 2
    assert unknown.stderr == (
        "sml: error: deploy/sam.toml has no environment [staging] (it has: default, prod); pass another --config-env\n"
    )
    assert (missing.returncode, missing.stderr) == (2, "sml: error: --config-file deploy/none.toml not found\n")


def test_status_output_json_holds_the_view_and_latest_metrics(aws_stack: FakeStack) -> None:
    job_id = submit_batch_job(aws_stack)
    put_log_lines(TRAINING_LOG_GROUP, log_stream_of(job_id), EPOCH_LINES)

    result = aws_stack.sml("status", job_id, "--output", "json")

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["job_id"], status["state"], status["outcome"], status["attempts"]) == (
        job_id,
        "SUCCEEDED",
        "succeeded",
        "1",
    )
    assert status["bundle"] == f"s3://{BUCKET}/bundles/{status['name']}/"
    assert status["logs"] == {"group": TRAINING_LOG_GROUP, "streams": [log_stream_of(job_id)], "prefix": None}
    assert status["metrics"] == json.loads(EPOCH_LINES[2])
    stopped = datetime.fromisoformat(status["stopped"])
    assert timedelta(0) <= datetime.now(UTC) - stopped < timedelta(minutes=10)


def test_logs_reads_every_page_of_log_streams(aws_stack: FakeStack) -> None:
    name = "many-20261129-153000-c3d4"
    create_sagemaker_job(aws_stack, name)
    started = int(time.time())
    instances = 60  # describe_log_streams answers 50 streams a page
    for number in range(1, instances + 1):
        put_log_lines("/aws/sagemaker/TrainingJobs", f"{name}/algo-{number}-{started}", [f"worker {number} ready"])

    result = aws_stack.sml("logs", name)

    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(
        f"[algo-{number}] worker {number} ready" for number in range(1, instances + 1)
    )


def test_submit_uploads_a_local_data_file_once_and_trains_on_it(aws_stack: FakeStack) -> None:
    data = b"f0,f1,label\n1,2,0\n3,4,1\n"
    (aws_stack.project / "local.csv").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    key = f"data/{digest[:16]}/local.csv"
    submit = ("submit", "--backend", "batch", "--data", "./local.csv", "--target", "label")

    first = aws_stack.sml(*submit)
    second = aws_stack.sml(*submit)

    assert first.returncode == 0, first.stderr
    assert f"sml: uploading local.csv (0.0 MB) to s3://{BUCKET}/{key}" in first.stderr
    assert submitted_command(first.stdout)[:2] == ["--data", f"s3://{BUCKET}/{key}"]
    assert re.search(r"^submitted local-\d{8}-", first.stdout, re.MULTILINE)
    s3 = boto3.client("s3")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head["Metadata"] == {"sha256": digest}
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()  # S3 checked the bytes
    assert second.returncode == 0, second.stderr
    assert "sml: uploading" not in second.stderr and f"is already at s3://{BUCKET}/{key}" in second.stderr
    assert submitted_command(second.stdout)[:2] == ["--data", f"s3://{BUCKET}/{key}"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "s3://BUCKET/data/digits.csv",
            "--data: bucket name 'BUCKET' is not valid: bucket names are lower case letters, digits, dots and "
            "hyphens, 3-63 characters, starting and ending with a letter or digit",
        ),
        ("s3:///data/digits.csv", "--data: 's3:///data/digits.csv' names no bucket: write s3://BUCKET/KEY"),
        ("gs://bucket/data.csv", "--data: 'gs://bucket/data.csv' is not an s3:// URI: write s3://BUCKET/KEY"),
        ("./absent.csv", "--data ./absent.csv: no such file; pass a local data file or an s3:// URI"),
    ],
)
def test_submit_data_errors_name_the_wrong_part(aws_stack: FakeStack, data: str, message: str) -> None:
    result = aws_stack.sml("submit", "--backend", "batch", "--data", data, "--target", "label")

    assert (result.returncode, result.stderr) == (2, f"sml: error: {message}\n")


def test_submit_uploads_local_validation_and_test_files_named_in_settings(aws_stack: FakeStack) -> None:
    validation = b"f0,f1,label\n5,6,1\n"
    (aws_stack.project / "val.csv").write_bytes(validation)
    (aws_stack.project / "test.csv").write_text("f0,f1,label\n7,8,0\n")
    val_key = f"data/{hashlib.sha256(validation).hexdigest()[:16]}/val.csv"

    result = aws_stack.sml(
        "submit", "--backend", "batch", "--data", f"s3://{BUCKET}/data/digits.csv", "--target", "label",
        "--set", "val_data=val.csv", "--set", "test_data=./test.csv",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    found = re.search(r"job id (\S+)", result.stdout)
    assert found, result.stdout
    (job,) = boto3.client("batch").describe_jobs(jobs=[found.group(1)])["jobs"]
    environment = {item["name"]: item["value"] for item in job["container"]["environment"]}
    assert environment["TRAIN_VAL_DATA"] == f"s3://{BUCKET}/{val_key}"
    assert re.fullmatch(rf"s3://{BUCKET}/data/[0-9a-f]{{16}}/test\.csv", environment["TRAIN_TEST_DATA"])
    bucket, key = environment["TRAIN_TEST_DATA"].removeprefix("s3://").split("/", 1)
    assert boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == b"f0,f1,label\n7,8,0\n"
