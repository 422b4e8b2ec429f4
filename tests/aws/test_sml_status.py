"""`sml status` and `sml logs`: one view of Batch and SageMaker jobs, read from moto's Batch, SageMaker and Logs."""

import json
import re
import time

import boto3

from tests.aws.stack import (
    BUCKET,
    TRAINING_LOG_GROUP,
    FakeStack,
    fixture_aws_stack,  # noqa: F401  (a fixture)
    fixture_failing_account,  # noqa: F401  (a fixture)
    put_log_lines,
)

DATA = f"s3://{BUCKET}/data/digits.csv"
EPOCH_LINES = [
    "training: 1257 train rows, 270 val rows",
    json.dumps({"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.71, "lr": 0.001}),
    json.dumps({"epoch": 2, "train_loss": 0.4321, "val_loss": 0.5, "val_accuracy": 0.9312, "lr": 0.001}),
]


def submit_batch_job(stack: FakeStack, *flags: str) -> str:
    """`sml submit --backend batch`; returns the job id it printed."""
    result = stack.sml("submit", "--backend", "batch", "--data", DATA, "--target", "label", *flags)
    assert result.returncode == 0, result.stderr
    found = re.search(r"job id (\S+)", result.stdout)
    assert found, result.stdout
    return found.group(1)


def log_stream_of(job_id: str) -> str:
    (job,) = boto3.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    stream: str = job["container"]["logStreamName"]
    return stream


def create_sagemaker_job(stack: FakeStack, name: str) -> None:
    boto3.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "training:v1", "TrainingInputMode": "File"},
        HyperParameters={"out": f"s3://{BUCKET}/bundles/{name}/"},
        RoleArn=stack.outputs["SageMakerRoleArn"],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/models/"},
        ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )


def test_status_shows_state_attempts_timings_bundle_and_latest_metrics(aws_stack: FakeStack) -> None:
    job_id = submit_batch_job(aws_stack)
    put_log_lines(TRAINING_LOG_GROUP, log_stream_of(job_id), EPOCH_LINES)

    result = aws_stack.sml("status", job_id)

    assert result.returncode == 0, result.stderr
    view = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert view["job"].endswith(f"(AWS Batch {job_id})")
    assert (view["state"], view["attempts"]) == ("SUCCEEDED", "1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(ran 0m 0\ds\)", view["stopped"])
    assert view["bundle"] == f"s3://{BUCKET}/bundles/{view['job'].split()[0]}/"
    assert view["logs"] == f"{TRAINING_LOG_GROUP} {log_stream_of(job_id)}"
    assert view["metrics"] == "epoch 2: train_loss=0.4321 val_loss=0.5 val_accuracy=0.9312 lr=0.001"


def test_status_wait_exits_1_with_the_failure_reason(failing_account: FakeStack) -> None:
    job_id = submit_batch_job(
        failing_account,
        *("--job-queue", failing_account.outputs["JobQueueArn"]),
        *("--job-definition", failing_account.outputs["JobDefinitionArn"]),
        *("--bucket", BUCKET),
    )
    put_log_lines(TRAINING_LOG_GROUP, log_stream_of(job_id), [*EPOCH_LINES[:2], "training: error: no column 'label'"])

    result = failing_account.sml("status", job_id, "--wait", "--interval", "0.05")

    assert result.returncode == 1
    assert "state     FAILED" in result.stdout and "metrics   epoch 1: " in result.stdout
    progress, failure = result.stderr.splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d FAILED  attempt 1  epoch 1: train_loss=0.9 .*", progress)
    assert re.fullmatch(r"sml: job digits-\S+ failed: training: error: no column 'label'", failure)


def test_logs_follow_prints_every_line_and_exits_1_when_the_job_failed(failing_account: FakeStack) -> None:
    job_id = submit_batch_job(
        failing_account,
        *("--job-queue", failing_account.outputs["JobQueueArn"]),
        *("--job-definition", failing_account.outputs["JobDefinitionArn"]),
        *("--bucket", BUCKET),
    )
    lines = [*EPOCH_LINES, "training: export refused: parity error 0.2 above 1e-05"]
    put_log_lines(TRAINING_LOG_GROUP, log_stream_of(job_id), lines)

    result = failing_account.sml("logs", job_id, "--follow", "--interval", "0.05")

    assert result.returncode == 1
    assert result.stdout.splitlines() == lines
    assert result.stderr.strip().endswith("failed: training: export refused: parity error 0.2 above 1e-05")


def test_logs_prints_each_sagemaker_instance_labelled(aws_stack: FakeStack) -> None:
    name = "digits-20261129-153000-a1b2"
    create_sagemaker_job(aws_stack, name)
    started = int(time.time())  # SageMaker names each instance's stream after the job's start, in seconds
    put_log_lines("/aws/sagemaker/TrainingJobs", f"{name}/algo-1-{started}", EPOCH_LINES[1:])
    put_log_lines("/aws/sagemaker/TrainingJobs", f"{name}/algo-2-{started}", ["worker 2 ready"])

    result = aws_stack.sml("logs", name)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"[algo-1] {EPOCH_LINES[1]}",
        f"[algo-1] {EPOCH_LINES[2]}",
        "[algo-2] worker 2 ready",
    ]
