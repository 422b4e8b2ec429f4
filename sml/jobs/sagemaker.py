"""SageMaker: start a training job on the training image, and read a job back as a JobView."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from sml.errors import UserError
from sml.jobs.job import JobView, LogLocation, TrainingJob
from training.cloud.contract import METRIC_REGEXES

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
CHECKPOINT_PATH = "/opt/ml/checkpoints"  # the training job resumes from here (docs/aws-contracts.md)
DEFAULT_MAX_RUNTIME_S = 86_400
# The training job logs one JSON object per epoch; SageMaker turns these captures into CloudWatch metrics.
METRIC_DEFINITIONS = [{"Name": name, "Regex": regex} for name, regex in METRIC_REGEXES.items()]
OUTCOMES = {"Completed": "succeeded", "Failed": "failed", "Stopped": "failed"}


@dataclass(frozen=True)
class Resources:
    instance_type: str
    instance_count: int
    volume_gb: int
    spot: bool
    max_wait_s: int | None  # Spot only: how long to wait for capacity plus train; None: twice the runtime


def submit(session: boto3.Session, job: TrainingJob, image: str, role_arn: str, resources: Resources) -> str:
    """Create the training job; returns its name, which is its id on SageMaker."""
    runtime = job.max_runtime_s or DEFAULT_MAX_RUNTIME_S
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": runtime}
    if resources.spot:
        stopping["MaxWaitTimeInSeconds"] = resources.max_wait_s or 2 * runtime
        if stopping["MaxWaitTimeInSeconds"] < runtime:
            raise UserError(
                f"--max-wait ({stopping['MaxWaitTimeInSeconds']} s) must be at least --max-runtime ({runtime} s)"
            )
    session.client("sagemaker").create_training_job(
        TrainingJobName=job.name,
        AlgorithmSpecification={
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        HyperParameters=hyperparameters(job),
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": job.data,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        # SageMaker also tars /opt/ml/model to S3OutputPath/JOB/output/model.tar.gz; the bundle itself goes to `out`.
        OutputDataConfig={"S3OutputPath": f"s3://{job.bucket}/models/"},
        ResourceConfig={
            "InstanceType": resources.instance_type,
            "InstanceCount": resources.instance_count,
            "VolumeSizeInGB": resources.volume_gb,
        },
        StoppingCondition=stopping,
        EnableManagedSpotTraining=resources.spot,
        CheckpointConfig={"S3Uri": job.checkpoint_uri, "LocalPath": CHECKPOINT_PATH},
        RoleArn=role_arn,
        Tags=[{"Key": "serverless-ml:bundle", "Value": job.bundle_uri}],
    )
    return job.name


def hyperparameters(job: TrainingJob) -> dict[str, str]:
    """The settings plus where things are; `data` names the file when --data is one file, not a prefix."""
    values = {**job.settings, "target": job.target, "out": job.bundle_uri}
    if not job.data.endswith("/"):
        values["data"] = job.data.rsplit("/", 1)[-1]
    return values


def describe(session: boto3.Session, name: str) -> JobView:
    try:
        job = session.client("sagemaker").describe_training_job(TrainingJobName=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ValidationException":
            raise UserError(
                f"no SageMaker training job {name} in {session.region_name}; check the name and --region"
            ) from None
        raise
    transitions = job.get("SecondaryStatusTransitions", [])
    interruptions = sum(1 for item in transitions if item.get("Status") == "Interrupted")
    state, secondary = job["TrainingJobStatus"], job.get("SecondaryStatus")
    return JobView(
        backend="SageMaker",
        job_id=job["TrainingJobName"],
        name=job["TrainingJobName"],
        state=f"{state} ({secondary})" if secondary and secondary != state else state,
        outcome=OUTCOMES.get(state),
        logs=LogLocation(group=LOG_GROUP, prefix=f"{job['TrainingJobName']}/"),
        reason=job.get("FailureReason"),
        attempts=f"{1 + interruptions} ({interruptions} Spot interruptions)" if interruptions else None,
        created=as_utc(job.get("CreationTime")),
        started=as_utc(job.get("TrainingStartTime")),
        stopped=as_utc(job.get("TrainingEndTime")),
        bundle=job.get("HyperParameters", {}).get("out"),
        notes=tuple(spot_notes(job)),
    )


def spot_notes(job: dict[str, Any]) -> list[str]:
    billable, total = job.get("BillableTimeInSeconds"), job.get("TrainingTimeInSeconds")
    if not (job.get("EnableManagedSpotTraining") and billable and total):
        return []
    return [f"billable {billable} s of {total} s trained: Spot saved {100 * (1 - billable / total):.0f}%"]


def as_utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value else None
