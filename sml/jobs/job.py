"""Training jobs on AWS: one request for AWS Batch and SageMaker alike, and one view of a job on either.

The job puts its bundle at s3://BUCKET/bundles/JOB_NAME/ and its checkpoints at s3://BUCKET/checkpoints/JOB_NAME/
on either backend (docs/aws-contracts.md), so `sml promote` and a resumed attempt never need to know which one ran it.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime

BACKENDS = ("batch", "sagemaker")
BATCH_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class TrainingJob:
    """What to train, where the results go, and for how long: the part both backends share."""

    name: str
    data: str  # s3:// URI of a data file or prefix
    target: str
    settings: dict[str, str]  # TrainConfig settings by snake_case name, as strings (SageMaker's hyperparameter type)
    bucket: str
    max_runtime_s: int | None  # None: the backend's default (Batch: the job definition's timeout)

    @property
    def bundle_uri(self) -> str:
        return f"s3://{self.bucket}/bundles/{self.name}/"

    @property
    def checkpoint_uri(self) -> str:
        return f"s3://{self.bucket}/checkpoints/{self.name}/"


@dataclass(frozen=True)
class LogLocation:
    """Where a job's CloudWatch logs are: named streams, or (SageMaker) every stream under a prefix."""

    group: str
    streams: tuple[str, ...] = ()
    prefix: str | None = None


@dataclass(frozen=True)
class JobView:
    """A job on either backend, in the words `sml status` prints."""

    backend: str  # "AWS Batch" or "SageMaker"
    job_id: str
    name: str
    state: str  # the service's own state word: RUNNABLE, RUNNING, InProgress, Completed, ...
    outcome: str | None  # None while it runs; then "succeeded" or "failed"
    logs: LogLocation
    reason: str | None = None
    attempts: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    stopped: datetime | None = None
    bundle: str | None = None
    exit: str | None = None  # how the last attempt's container exited, and what that means for a training job
    notes: tuple[str, ...] = field(default_factory=tuple)  # backend-specific lines: earlier exits, Spot savings


def backend_of(job_id: str) -> str:
    """AWS Batch job ids (and ARNs) are UUIDs; anything else names a SageMaker training job."""
    if BATCH_JOB_ID.fullmatch(job_id) or job_id.startswith("arn:aws:batch:"):
        return "batch"
    return "sagemaker"


def sagemaker_name(job_id: str) -> str:
    """The training job name in a name or an ARN (arn:aws:sagemaker:REGION:ACCOUNT:training-job/NAME)."""
    return job_id.rsplit("training-job/", 1)[-1] if job_id.startswith("arn:") else job_id
