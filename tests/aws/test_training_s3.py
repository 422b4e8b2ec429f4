"""`python -m training` on AWS Batch's terms against a real S3 API (moto): s3:// data in, a checked bundle out."""

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest

from tests.aws.stack import (
    BUCKET,
    FakeStack,
    fixture_aws_stack,  # noqa: F401  (a fixture)
)
from training.__main__ import main
from training.cloud.contract import EXIT_USER_ERROR

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples/data/digits.csv"


def objects(bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        item["Key"].removeprefix(prefix): s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listed
    }


def uploaded_in_order(stack: FakeStack, prefix: str) -> list[str]:
    """The names PUT under `prefix`, in the order the S3 API received them (moto's request recorder)."""
    names = []
    for line in stack.account.recording.read_text().splitlines():
        entry = json.loads(line)
        path = urlparse(entry["url"]).path.removeprefix(f"/{BUCKET}/")
        if entry["method"] == "PUT" and path.startswith(prefix):
            names.append(path.removeprefix(prefix))
    return names


@pytest.mark.slow
def test_training_s3_job_uploads_a_verified_bundle_card_last_that_sml_promote_takes(
    aws_stack: FakeStack, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    job = f"digits-{secrets.token_hex(3)}"
    s3.upload_file(str(DIGITS), BUCKET, f"data/{job}.csv")
    bundle_uri = f"s3://{BUCKET}/bundles/{job}/"
    command = ["--data", f"s3://{BUCKET}/data/{job}.csv", "--target", "label", "--out", bundle_uri]
    command += ["--checkpoint-dir", f"s3://{BUCKET}/checkpoints/{job}/", "--progress", "none"]
    workdir = tmp_path / "job"
    workdir.mkdir()

    # As AWS Batch runs the image: the locations as flags, the settings as TRAIN_* variables.
    result = subprocess.run(
        [sys.executable, "-m", "training", *command],
        env={**os.environ, "TRAIN_EPOCHS": "3", "AWS_BATCH_JOB_ATTEMPT": "1"},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    bundle = objects(BUCKET, f"bundles/{job}/")
    assert set(bundle) == {"model.onnx", "model.json", "curves.png"}
    for name, body in bundle.items():
        stored = s3.get_object_attributes(Bucket=BUCKET, Key=f"bundles/{job}/{name}", ObjectAttributes=["Checksum"])
        assert stored["Checksum"]["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode(), name
    card = json.loads(bundle["model.json"])
    assert card["sha256"] == hashlib.sha256(bundle["model.onnx"]).hexdigest()
    assert card["training"]["config"]["epochs"] == 3
    assert card["training"]["config"]["data"] == f"s3://{BUCKET}/data/{job}.csv"
    assert uploaded_in_order(aws_stack, f"bundles/{job}/")[-1] == "model.json"
    assert sorted(objects(BUCKET, f"checkpoints/{job}/")) == ["epoch-0002-step-000000.pt", "epoch-0003-step-000000.pt"]
    assert json.loads(result.stdout)["bundle"] == bundle_uri
    assert list(workdir.iterdir()) == []  # nothing written beside the job

    promoted = aws_stack.sml("promote", bundle_uri)

    assert promoted.returncode == 0, promoted.stderr
    placed = aws_stack.model_files()
    assert (placed["model.json"], placed["model.onnx"]) == (bundle["model.json"], bundle["model.onnx"])


def bad_locations(bucket: str) -> dict[str, tuple[list[str], str]]:
    data = f"s3://{bucket}/data/digits.csv"
    out = f"s3://{bucket}/bundles/job/"
    return {
        "missing data": (["--data", f"s3://{bucket}/data/absent.csv", "--out", out], "absent.csv not found"),
        "empty data prefix": (["--data", f"s3://{bucket}/data/empty/", "--out", out], "holds 0 CSV/Parquet/NPZ"),
        "missing output bucket": (["--data", data, "--out", "s3://no-such-bucket/bundles/job/"], "does not exist"),
        "missing checkpoint bucket": (
            ["--data", data, "--out", out, "--checkpoint-dir", "s3://no-such-bucket/checkpoints/job/"],
            "bucket no-such-bucket does not exist",
        ),
        "no credentials": (["--data", data, "--out", out], "no AWS credentials"),
        "upper-case bucket name": (
            ["--data", data, "--out", "s3://BUCKET/bundles/job/"],
            "bucket name 'BUCKET' is not valid: bucket names are lower case letters, digits, dots and hyphens",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing data",
        "empty data prefix",
        "missing output bucket",
        "missing checkpoint bucket",
        "no credentials",
        "upper-case bucket name",
    ],
)
def test_training_s3_bad_location_exits_2_with_one_line_and_no_bundle(
    case: str,
    aws_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = "training-bad-input"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(DIGITS), bucket, "data/digits.csv")
    args, expected = bad_locations(bucket)[case]
    if case == "no credentials":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.chdir(tmp_path)

    code = main([*args, "--dry-run", "--progress", "none"])

    stderr = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert stderr.startswith("training: error: ") and stderr.count("\n") == 1, stderr
    assert expected in stderr
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["data/digits.csv"]
    assert list(tmp_path.iterdir()) == []
