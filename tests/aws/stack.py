"""A deployed serverless-ml stack in moto, for running `sml` against it as a user would.

The servers here are moto's (scripts/moto_server.py) with settings the shared `aws_endpoint` one lacks:
moto's request recorder on, so a test reads the exact submit_job / create_training_job bodies (moto itself
drops retryStrategy and replaces MetricDefinitions), and Batch jobs simulated without Docker, succeeding at
once or, on the `failing_account` server, failing at once (MOTO_SIMPLE_BATCH_FAIL_AFTER=0).

Each server and the stack in it are made once per test process and shared by every module that imports
these fixtures (`from tests.aws.stack import fixture_aws_stack`): importing a fixture into several modules would
otherwise give each module its own session-scoped copy, and moto takes seconds to warm up.
"""

import atexit
import base64
import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from scripts.moto_server import FAKE_CREDENTIALS, moto_server
from tests.projects import run_sml

ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = "serverless-ml-test"
BUCKET = "serverless-ml-artifacts"
TRAINING_LOG_GROUP = "/serverless-ml/training"
IMAGE_TAG = "v7"
SAMCONFIG = f"""version = 0.1
[default.global.parameters]
stack_name = "{STACK_NAME}"
region = "us-east-1"
"""
SERVERS = ExitStack()  # every server started here, stopped when the test process exits
atexit.register(SERVERS.close)


@dataclass
class Account:
    """A moto server playing one AWS account, and the file its request recorder writes."""

    url: str
    recording: Path

    def post(self, path: str, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def client(self, service: str) -> Any:
        """A boto3 client of this account, whatever the environment says (session fixtures run outside tests)."""
        session: Any = boto3.Session(
            region_name=FAKE_CREDENTIALS["AWS_REGION"],
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        return session.client(service, endpoint_url=self.url)

    def enter(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point boto3, here and in subprocesses, at this account; start a fresh recording."""
        self.post("/moto-api/recorder/reset-recording")
        for name, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", self.url)
        monkeypatch.delenv("AWS_PROFILE", raising=False)

    def requests(self, operation: str) -> list[dict[str, Any]]:
        """JSON bodies of the recorded requests for `operation`: an X-Amz-Target (SageMaker.CreateTrainingJob)
        or a REST path (/v1/submitjob)."""
        bodies = []
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            if entry["headers"].get("X-Amz-Target") == operation or entry["url"].endswith(operation):
                body = base64.b64decode(entry["body"]) if entry["body_encoded"] else entry["body"]
                bodies.append(json.loads(body))
        return bodies


@functools.cache
def started_account(name: str, fail_batch_jobs: bool = False) -> Account:
    """The moto server called `name`, started on first use: recording requests, Batch without Docker."""
    folder = Path(tempfile.mkdtemp(prefix=f"moto-{name}-"))
    SERVERS.callback(shutil.rmtree, folder, ignore_errors=True)
    with pytest.MonkeyPatch.context() as patch:  # the server reads these when it starts
        patch.setenv("MOTO_RECORDER_FILEPATH", str(folder / "requests.jsonl"))
        if fail_batch_jobs:
            patch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
        url = SERVERS.enter_context(moto_server())
    account = Account(url=url, recording=folder / "requests.jsonl")
    account.post("/moto-api/config", {"batch": {"use_docker": False}})
    account.post("/moto-api/recorder/start-recording")
    return account


@dataclass
class FakeStack:
    """The stack's resources in moto, the project folder `sml` runs in, and how to run it there."""

    account: Account
    project: Path
    outputs: dict[str, str]
    initial_model: dict[str, bytes] = field(init=False)  # what a refused command leaves in functions/predict/model

    def __post_init__(self) -> None:
        self.initial_model = self.model_files()

    def sml(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`sml ARGS` in the project folder, as a user's shell runs it."""
        return run_sml(*args, cwd=self.project, env=env or dict(os.environ))

    def model_files(self) -> dict[str, bytes]:
        folder = self.project / "functions" / "predict" / "model"
        return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def create_stack_resources(account: Account) -> dict[str, str]:
    """Bucket, role, image repository, log group, Batch queue and job definition; a stack whose outputs name them."""
    account.client("s3").create_bucket(Bucket=BUCKET)
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    role = account.client("iam").create_role(RoleName="SageMakerExecutionRole", AssumeRolePolicyDocument=trust)
    repository = account.client("ecr").create_repository(repositoryName="training")["repository"]["repositoryUri"]
    account.client("logs").create_log_group(logGroupName=TRAINING_LOG_GROUP)
    outputs = {
        "ApiUrl": "https://abc123.execute-api.us-east-1.amazonaws.com",
        "ApiAuth": "AWS_IAM",
        "ArtifactBucketName": BUCKET,
        "TrainingRepositoryUri": repository,
        "SageMakerRoleArn": role["Role"]["Arn"],
        "TrainingLogGroupName": TRAINING_LOG_GROUP,
        **create_batch_queue(account, repository),
    }
    create_output_stack(account, STACK_NAME, outputs)
    return outputs


def create_batch_queue(account: Account, repository: str) -> dict[str, str]:
    """A compute environment, its queue and the training job definition.

    Unmanaged (hosts of one's own), because a managed one makes moto start its EC2 simulation: seconds per run.
    """
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    role = account.client("iam").create_role(RoleName="BatchServiceRole", AssumeRolePolicyDocument=trust)
    environment = account.client("batch").create_compute_environment(
        computeEnvironmentName="GpuComputeEnvironment",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role["Role"]["Arn"],  # moto asks for one; AWS falls back to its service-linked role
    )["computeEnvironmentArn"]
    return create_queue_and_definition(account, repository, environment)


def create_queue_and_definition(account: Account, repository: str, environment: str) -> dict[str, str]:
    batch = account.client("batch")
    queue = batch.create_job_queue(
        jobQueueName="TrainingJobQueue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
    )["jobQueueArn"]
    definition = batch.register_job_definition(
        jobDefinitionName="TrainingJobDefinition",
        type="container",
        containerProperties={
            "image": f"{repository}:{IMAGE_TAG}",
            "resourceRequirements": [
                {"type": "GPU", "value": "1"},
                {"type": "VCPU", "value": "4"},
                {"type": "MEMORY", "value": "14336"},
            ],
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": TRAINING_LOG_GROUP}},
        },
    )["jobDefinitionArn"]
    return {"JobQueueArn": queue, "JobDefinitionArn": definition}


def create_output_stack(account: Account, name: str, outputs: dict[str, str]) -> None:
    """A plain CloudFormation stack whose Outputs echo `outputs` (and a TrainingImageTag parameter)."""
    template = {
        "Parameters": {key: {"Type": "String"} for key in [*outputs, "TrainingImageTag"]},
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": {"Ref": key}} for key in outputs},
    }
    values = {**outputs, "TrainingImageTag": IMAGE_TAG}
    account.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in values.items()],
    )


@functools.cache
def promoted_project(bundle: Path) -> Path:
    """samconfig.toml naming the stack, and functions/predict with `bundle` promoted into model/."""
    from tests.projects import promoted_function

    root = Path(tempfile.mkdtemp(prefix="project-"))
    SERVERS.callback(shutil.rmtree, root, ignore_errors=True)
    (root / "samconfig.toml").write_text(SAMCONFIG)
    promoted_function(root, bundle)
    return root


@functools.cache
def deployed_stack() -> dict[str, str]:
    """The stack's outputs; its resources live for the whole run (tests add jobs and objects, never remove any)."""
    return create_stack_resources(started_account("recording"))


@functools.cache
def failing_queue() -> dict[str, str]:
    """A bucket, a Batch queue and a job definition whose jobs fail; no stack (sml takes them as flags)."""
    account = started_account("failing", fail_batch_jobs=True)
    account.client("s3").create_bucket(Bucket=BUCKET)
    account.client("logs").create_log_group(logGroupName=TRAINING_LOG_GROUP)
    return create_batch_queue(account, "123456789012.dkr.ecr.us-east-1.amazonaws.com/training")


@pytest.fixture(name="aws_stack")
def fixture_aws_stack(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeStack:
    """The account holding the deployed stack (with AWS Batch), and a project folder whose samconfig names it."""
    account = started_account("recording")
    outputs = deployed_stack()
    account.enter(monkeypatch)
    project = Path(shutil.copytree(promoted_project(tiny_bundle), tmp_path / "project"))
    return FakeStack(account=account, project=project, outputs=outputs)


@pytest.fixture(name="failing_account")
def fixture_failing_account(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeStack:
    """An account whose Batch jobs all fail at once."""
    account = started_account("failing", fail_batch_jobs=True)
    outputs = failing_queue()
    account.enter(monkeypatch)
    project = Path(shutil.copytree(promoted_project(tiny_bundle), tmp_path / "project"))
    return FakeStack(account=account, project=project, outputs=outputs)


def put_log_lines(group: str, stream: str, lines: list[str]) -> None:
    """What the training container writes to CloudWatch (moto's Batch simulation runs no container).

    The events end a second ago: CloudWatch, and moto's server like it, drops events older than 14 days
    (or more than 2 hours ahead), so a fixed timestamp would make the tests fail from some day on.
    """
    logs = boto3.client("logs")
    with suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    start = time.time_ns() // 1_000_000 - 1000 * (len(lines) + 1)
    events = [{"timestamp": start + index * 1000, "message": line} for index, line in enumerate(lines)]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
