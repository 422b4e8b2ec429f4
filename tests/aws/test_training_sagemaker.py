"""`train` as SageMaker runs it: settings and data under /opt/ml, the bundle in the model folder and on S3."""

import hashlib
import json
from pathlib import Path

import boto3
import pytest

from sml.jobs.job import TrainingJob
from sml.jobs.sagemaker import hyperparameters
from tests.unit.test_train_sagemaker import sagemaker_root
from training.__main__ import main

BUCKET = "training-sagemaker"


@pytest.mark.slow
def test_training_sagemaker_job_delivers_the_bundle_to_the_model_folder_and_s3(
    aws_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    hyperparameters = {"target": "label", "epochs": "2", "hidden-size": "32", "out": f"s3://{BUCKET}/bundles/job/"}
    paths = sagemaker_root(tmp_path / "ml", hyperparameters)
    monkeypatch.setenv("SML_SAGEMAKER_ROOT", str(paths.root))

    code = main(["train"])

    assert code == 0, capsys.readouterr().err
    local = {path.name: path.read_bytes() for path in paths.model.iterdir()}
    assert set(local) == {"model.onnx", "model.json", "curves.png"}
    card = json.loads(local["model.json"])
    assert card["sha256"] == hashlib.sha256(local["model.onnx"]).hexdigest()
    assert (card["training"]["config"]["epochs"], card["training"]["config"]["hidden_size"]) == (2, 32)
    s3 = boto3.client("s3")
    for name, body in local.items():
        assert s3.get_object(Bucket=BUCKET, Key=f"bundles/job/{name}")["Body"].read() == body, name
    assert sorted(path.name for path in paths.checkpoints.iterdir()) == [
        "epoch-0001-step-000000.pt",
        "epoch-0002-step-000000.pt",
    ]
    assert not paths.failure.exists()
    assert sorted(path.name for path in paths.root.iterdir()) == ["checkpoints", "input", "model"]


@pytest.mark.slow
def test_training_sagemaker_job_with_network_isolation_needs_no_aws_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hyperparameters `sml submit` gives an isolated job: the job reaches nothing, SageMaker moves its files."""
    job = TrainingJob("job", f"s3://{BUCKET}/data/digits.csv", "label", {"epochs": "2"}, BUCKET, None)
    paths = sagemaker_root(tmp_path / "ml", hyperparameters(job, isolated=True))
    monkeypatch.setenv("SML_SAGEMAKER_ROOT", str(paths.root))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: any AWS call would fail the job
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = main(["train"])

    assert code == 0, capsys.readouterr().err
    assert {"model.onnx", "model.json"} <= {path.name for path in paths.model.iterdir()}  # SageMaker uploads these
    assert sorted(path.name for path in paths.checkpoints.iterdir()) == [
        "epoch-0001-step-000000.pt",
        "epoch-0002-step-000000.pt",
    ]
