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
MODELS_PREFIX = "models/"  # SageMaker's own output (model.tar.gz); template.yaml lets training jobs write there
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
    kms_key: str | None = None  # encrypts the training volume and model.tar.gz (the stack's ModelKeyArn)


@dataclass(frozen=True)
class Network:
    """Where the job's containers may reach: only their channels and output when isolated, and which VPC."""

    isolated: bool = True
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()

    def request(self, instance_count: int) -> dict[str, Any]:
        """The CreateTrainingJob fields for this network."""
        fields: dict[str, Any] = {"EnableNetworkIsolation": self.isolated}
        if instance_count > 1:  # traffic between the hosts (torch.distributed) is encrypted on the wire
            fields["EnableInterContainerTrafficEncryption"] = True
        if self.subnets:
            fields["VpcConfig"] = {"Subnets": list(self.subnets), "SecurityGroupIds": list(self.security_groups)}
        return fields


def submit(
    session: boto3.Session, job: TrainingJob, image: str, role_arn: str, resources: Resources, network: Network
) -> str:
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
        HyperParameters=hyperparameters(job, network.isolated),
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
        # SageMaker tars /opt/ml/model to S3OutputPath/JOB/output/model.tar.gz (model_artifact); a job that is not
        # isolated also uploads the bundle itself to `out`.
        OutputDataConfig={"S3OutputPath": f"s3://{job.bucket}/{MODELS_PREFIX}", **encrypted("KmsKeyId", resources)},
        ResourceConfig={
            "InstanceType": resources.instance_type,
            "InstanceCount": resources.instance_count,
            "VolumeSizeInGB": resources.volume_gb,
            **encrypted("VolumeKmsKeyId", resources),
        },
        StoppingCondition=stopping,
        EnableManagedSpotTraining=resources.spot,
        CheckpointConfig={"S3Uri": job.checkpoint_uri, "LocalPath": CHECKPOINT_PATH},
        RoleArn=role_arn,
        Tags=[{"Key": "serverless-ml:bundle", "Value": bundle_location(job, network.isolated)}],
        **network.request(resources.instance_count),
    )
    return job.name


def encrypted(field: str, resources: Resources) -> dict[str, str]:
    """`field` naming the key, where there is one: else SageMaker uses AWS-managed keys."""
    return {field: resources.kms_key} if resources.kms_key else {}


def bundle_location(job: TrainingJob, isolated: bool) -> str:
    """What `sml promote` reads: SageMaker's model.tar.gz for an isolated job, which cannot reach S3 itself."""
    return model_artifact(job.bucket, job.name) if isolated else job.bundle_uri


def model_artifact(bucket: str, name: str) -> str:
    return f"s3://{bucket}/{MODELS_PREFIX}{name}/output/model.tar.gz"


def hyperparameters(job: TrainingJob, isolated: bool) -> dict[str, str]:
    """The settings plus where things are; `data` names the file when --data is one file, not a prefix.

    An isolated job gets no `out`: it writes the bundle to /opt/ml/model only, and SageMaker uploads that.
    """
    values = {**job.settings, "target": job.target}
    if not isolated:
        values["out"] = job.bundle_uri
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
        bundle=job.get("HyperParameters", {}).get("out") or model_artifacts(job),
        notes=tuple(spot_notes(job)),
    )


def model_artifacts(job: dict[str, Any]) -> str | None:
    """An isolated job's bundle: SageMaker's model.tar.gz, once the job has completed."""
    if job.get("TrainingJobStatus") != "Completed":
        return None
    artifact = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    return str(artifact) if artifact else None


def spot_notes(job: dict[str, Any]) -> list[str]:
    billable, total = job.get("BillableTimeInSeconds"), job.get("TrainingTimeInSeconds")
    if not (job.get("EnableManagedSpotTraining") and billable and total):
        return []
    return [f"billable {billable} s of {total} s trained: Spot saved {100 * (1 - billable / total):.0f}%"]


def as_utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value else None
