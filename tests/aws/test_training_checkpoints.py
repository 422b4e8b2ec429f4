"""Checkpoints on S3 (AWS Batch): SIGTERM mid-epoch writes one there, and the resumed run ends bit for bit
where an uninterrupted run ends."""

from pathlib import Path

import boto3
import pytest
import torch

from tests.unit.test_checkpoint import STEPS, run_fit
from training.cloud.s3 import S3Store, StorageError
from training.fit.checkpoint import load_latest_checkpoint
from training.fit.interrupt import Interrupted

BUCKET = "training-checkpoints"


def test_training_sigterm_checkpoint_on_s3_resumes_to_the_same_weights(aws_endpoint: str, tmp_path: Path) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    checkpoints = f"s3://{BUCKET}/checkpoints/job-1/"
    with pytest.raises(Interrupted):
        run_fit(checkpoints, sigterm_at_step=20)  # step 20 (epoch 2, step 7 of 13) ends, then the run stops
    store = S3Store(checkpoints)
    state = load_latest_checkpoint(store)
    assert state is not None and state["position"] == {"epoch": 1, "step": 7}
    assert store.names() == ["epoch-0001-step-000000.pt", "epoch-0001-step-000007.pt"]

    resumed = run_fit(checkpoints, resume=True)

    expected = run_fit(str(tmp_path / "reference"))
    assert (expected["steps"], resumed["steps"]) == (STEPS, STEPS - 20)
    assert resumed["history"] == expected["history"]
    for name, tensor in expected["weights"].items():
        assert torch.equal(resumed["weights"][name], tensor), name


def test_training_s3_store_refuses_a_missing_bucket_by_name(aws_endpoint: str) -> None:
    with pytest.raises(StorageError, match="bucket absent-bucket does not exist"):
        S3Store("s3://absent-bucket/checkpoints/job/").names()
