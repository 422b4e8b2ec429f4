"""AWS Batch: submit a training job to the stack's queue, and read a job back as a JobView."""

from datetime import UTC, datetime
from typing import Any

import boto3

from sml.errors import UserError
from sml.jobs.job import JobView, LogLocation, TrainingJob
from training.cloud.contract import EXIT_MEANINGS

DEFAULT_LOG_GROUP = "/aws/batch/job"  # where awslogs writes when the job definition names no group
# submit_job's retryStrategy replaces the job definition's, so the rules travel with --attempts: retry what
# a new attempt can fix (a reclaimed Spot host, a SIGTERM after a checkpoint), fail fast on anything else.
RETRY_RULES = [
    {"onStatusReason": "Host EC2*", "action": "RETRY"},
    {"onExitCode": "143", "action": "RETRY"},
    {"onReason": "*", "action": "EXIT"},
]
SPOT_TYPES = ("SPOT", "FARGATE_SPOT")
OUTCOMES = {"SUCCEEDED": "succeeded", "FAILED": "failed"}


def submit(
    session: boto3.Session,
    job: TrainingJob,
    queue: str,
    definition: str,
    attempts: int | None = None,
    gpus: int | None = None,
) -> str:
    """Submit `job`; returns the Batch job id. The locations go as flags, the settings as TRAIN_* variables."""
    overrides: dict[str, Any] = {"command": container_command(job), "environment": container_environment(job)}
    if gpus is not None:
        overrides["resourceRequirements"] = [{"type": "GPU", "value": str(gpus)}]
    request: dict[str, Any] = {
        "jobName": job.name,
        "jobQueue": queue,
        "jobDefinition": definition,
        "containerOverrides": overrides,
        "tags": {"serverless-ml:bundle": job.bundle_uri},
        "propagateTags": True,  # the tag reaches the ECS task, so Cost Explorer can group spend per job
    }
    if attempts is not None:
        request["retryStrategy"] = {"attempts": attempts, "evaluateOnExit": RETRY_RULES}
    if job.max_runtime_s is not None:
        request["timeout"] = {"attemptDurationSeconds": job.max_runtime_s}
    job_id: str = session.client("batch").submit_job(**request)["jobId"]
    return job_id


def container_command(job: TrainingJob) -> list[str]:
    return [
        "--data", job.data,
        "--target", job.target,
        "--out", job.bundle_uri,
        "--checkpoint-dir", job.checkpoint_uri,
    ]  # fmt: skip


def container_environment(job: TrainingJob) -> list[dict[str, str]]:
    """TRAIN_<SETTING> variables: the same strings SageMaker gets, so true/false and lists parse alike on both."""
    return [{"name": f"TRAIN_{key.upper()}", "value": value} for key, value in sorted(job.settings.items())]


def check_spot(session: boto3.Session, queue: str, spot: bool) -> None:
    """Batch has no per-job Spot switch: the queue's compute environments decide. Refuse a queue that disagrees."""
    batch = session.client("batch")
    queues = batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
    if not queues:
        raise UserError(f"job queue {queue} not found in {session.region_name}")
    environments = [item["computeEnvironment"] for item in queues[0]["computeEnvironmentOrder"]]
    described = batch.describe_compute_environments(computeEnvironments=environments)["computeEnvironments"]
    types = {env.get("computeResources", {}).get("type", "UNMANAGED") for env in described}
    if spot and not types & set(SPOT_TYPES):
        raise UserError(
            f"--spot: queue {queue} runs on {', '.join(sorted(types))} capacity, not Spot; pass --job-queue"
        )
    if not spot and types & set(SPOT_TYPES):
        raise UserError(
            f"--no-spot: queue {queue} runs on Spot capacity; pass --job-queue of an On-Demand queue, "
            "or deploy the stack with BatchComputeType=EC2"
        )


def describe(session: boto3.Session, job_id: str) -> JobView:
    batch = session.client("batch")
    jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
    if not jobs:
        raise UserError(f"no AWS Batch job {job_id} in {session.region_name}; check the id and --region")
    job = jobs[0]
    container = job.get("container", {})
    attempts = job.get("attempts", [])
    streams = [a["container"]["logStreamName"] for a in attempts if a.get("container", {}).get("logStreamName")]
    if container.get("logStreamName") and container["logStreamName"] not in streams:
        streams.append(container["logStreamName"])
    allowed = job.get("retryStrategy", {}).get("attempts")
    exits = exit_notes(attempts, container)
    return JobView(
        backend="AWS Batch",
        job_id=job["jobId"],
        name=job["jobName"],
        state=job["status"],
        outcome=OUTCOMES.get(job["status"]),
        logs=LogLocation(group=log_group(batch, job), streams=tuple(streams)),
        reason=job.get("statusReason"),
        attempts=f"{len(attempts)} of {allowed}" if allowed else str(len(attempts)),
        created=from_millis(job.get("createdAt")),
        started=from_millis(job.get("startedAt")),
        stopped=from_millis(job.get("stoppedAt")),
        bundle=flag_value(container.get("command", []), "--out"),
        exit=exits[-1] if exits else None,
        notes=tuple(exits[:-1]),
    )


def log_group(batch: Any, job: dict[str, Any]) -> str:
    """The awslogs group of the job's container, else of its job definition, else Batch's default."""
    options = job.get("container", {}).get("logConfiguration", {}).get("options", {})
    if "awslogs-group" in options:
        return str(options["awslogs-group"])
    definitions = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])["jobDefinitions"]
    for definition in definitions:
        options = definition.get("containerProperties", {}).get("logConfiguration", {}).get("options", {})
        if "awslogs-group" in options:
            return str(options["awslogs-group"])
    return DEFAULT_LOG_GROUP


def exit_notes(attempts: list[dict[str, Any]], container: dict[str, Any]) -> list[str]:
    """One line per attempt that exited, with what its exit code means for a training job."""
    notes = []
    for number, attempt in enumerate(attempts, start=1):
        details = attempt.get("container", {})
        code = details.get("exitCode")
        if code is None and number == len(attempts):
            code = container.get("exitCode")
        if code is None:
            continue
        meaning = "finished" if code == 0 else EXIT_MEANINGS.get(code, "failed")
        reason = f" ({details['reason']})" if details.get("reason") else ""
        notes.append(f"attempt {number} exited {code}: {meaning}{reason}")
    return notes


def flag_value(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command[:-1] else None


def from_millis(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None
