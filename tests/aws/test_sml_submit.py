"""`sml submit` against the stack in moto: the requests Batch and SageMaker received, read back from the server."""

import json
import re
import uuid

import boto3
import pytest

from tests.aws.stack import (
    BUCKET,
    IMAGE_TAG,
    FakeStack,
    create_output_stack,
    fixture_aws_stack,  # noqa: F401  (a fixture)
)

DATA = f"s3://{BUCKET}/data/digits.csv"
JOB_NAME = re.compile(r"digits-\d{8}-\d{6}-[0-9a-f]{4}")


def submitted(stdout: str) -> tuple[str, str]:
    """(job name, job id) from `submitted NAME to BACKEND: job id ID`."""
    found = re.search(r"^submitted (\S+) to \w+: job id (\S+)$", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(1), found.group(2)


def test_submit_batch_sends_the_contract_command_settings_and_retry_rules(aws_stack: FakeStack) -> None:
    (aws_stack.project / "train.yaml").write_text("epochs: 40\nlr: 0.001\nnesterov: true\ninput_shape: [1, 8, 8]\n")

    result = aws_stack.sml(
        "submit", "--backend", "batch", "--data", DATA, "--target", "label", "--config", "train.yaml",
        "--set", "epochs=5", "--set", "model=cnn", "--attempts", "2", "--max-runtime", "2h",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    name, job_id = submitted(result.stdout)
    assert JOB_NAME.fullmatch(name)
    assert f"bundle:  s3://{BUCKET}/bundles/{name}/" in result.stdout
    (job,) = boto3.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    assert (job["jobName"], job["jobQueue"]) == (name, aws_stack.outputs["JobQueueArn"])
    assert job["jobDefinition"] == aws_stack.outputs["JobDefinitionArn"]
    assert job["container"]["command"] == [
        "--data", DATA, "--target", "label",
        "--out", f"s3://{BUCKET}/bundles/{name}/",
        "--checkpoint-dir", f"s3://{BUCKET}/checkpoints/{name}/",
    ]  # fmt: skip
    environment = {item["name"]: item["value"] for item in job["container"]["environment"]}
    assert {key: value for key, value in environment.items() if key.startswith("TRAIN_")} == {
        "TRAIN_EPOCHS": "5",
        "TRAIN_LR": "0.001",
        "TRAIN_NESTEROV": "true",
        "TRAIN_INPUT_SHAPE": "1,8,8",
        "TRAIN_MODEL": "cnn",
    }
    assert job["timeout"] == {"attemptDurationSeconds": 7200}
    (request,) = aws_stack.account.requests("/v1/submitjob")
    assert request["retryStrategy"] == {
        "attempts": 2,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onExitCode": "143", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }


def test_submit_sagemaker_waits_for_a_spot_training_job_with_checkpoints(aws_stack: FakeStack) -> None:
    result = aws_stack.sml(
        "submit", "--backend", "sagemaker", "--data", DATA, "--target", "label", "--set", "epochs=5",
        "--max-runtime", "1h", "--wait", "--interval", "0.05",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    name, job_id = submitted(result.stdout)
    assert job_id == name and JOB_NAME.fullmatch(name)
    assert "state     Completed" in result.stdout
    artifact = f"s3://{BUCKET}/models/{name}/output/model.tar.gz"  # isolated: SageMaker uploads the bundle
    assert f"  promote: sml promote {artifact}\n" in result.stdout
    assert result.stdout.rstrip().endswith(f"next: sml promote {artifact}")
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=name)
    image = f"{aws_stack.outputs['TrainingRepositoryUri']}:{IMAGE_TAG}"
    assert (job["AlgorithmSpecification"]["TrainingImage"], job["RoleArn"]) == (
        image,
        aws_stack.outputs["SageMakerRoleArn"],
    )
    assert job["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert job["HyperParameters"] == {"epochs": "5", "target": "label", "data": "digits.csv"}  # no `out`: no S3 access
    assert job["EnableNetworkIsolation"] is True
    (channel,) = job["InputDataConfig"]
    assert (channel["ChannelName"], channel["DataSource"]["S3DataSource"]["S3Uri"]) == ("train", DATA)
    assert job["ResourceConfig"] == {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/checkpoints/{name}/",
        "LocalPath": "/opt/ml/checkpoints",
    }
    (request,) = aws_stack.account.requests("SageMaker.CreateTrainingJob")  # moto replaces MetricDefinitions
    assert "EnableInterContainerTrafficEncryption" not in request and "VpcConfig" not in request  # one instance
    assert "VolumeKmsKeyId" not in request["ResourceConfig"] and "KmsKeyId" not in request["OutputDataConfig"]
    metrics = {item["Name"]: item["Regex"] for item in request["AlgorithmSpecification"]["MetricDefinitions"]}
    assert metrics["val_accuracy"] == '"val_accuracy": ([-+0-9.eE]+)' and metrics["epoch"] == '"epoch": ([0-9]+)'
    captured = re.search(metrics["val_loss"], '{"epoch": 3, "val_loss": 0.2345}')
    assert captured is not None and captured.group(1) == "0.2345"


def test_submit_sagemaker_puts_several_instances_in_the_vpc_with_encrypted_traffic(aws_stack: FakeStack) -> None:
    result = aws_stack.sml(
        "submit", "--backend", "sagemaker", "--data", DATA, "--target", "label", "--instance-count", "2",
        "--subnets", "subnet-0a1b,subnet-2c3d", "--security-groups", "sg-0e4f",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    (request,) = aws_stack.account.requests("SageMaker.CreateTrainingJob")
    assert request["EnableNetworkIsolation"] is True
    assert request["EnableInterContainerTrafficEncryption"] is True
    assert request["VpcConfig"] == {"Subnets": ["subnet-0a1b", "subnet-2c3d"], "SecurityGroupIds": ["sg-0e4f"]}
    assert request["ResourceConfig"]["InstanceCount"] == 2


def test_submit_sagemaker_without_isolation_has_the_job_upload_its_bundle(aws_stack: FakeStack) -> None:
    result = aws_stack.sml(
        "submit", "--backend", "sagemaker", "--data", DATA, "--target", "label", "--no-network-isolation",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    name, _ = submitted(result.stdout)
    assert f"  promote: sml promote s3://{BUCKET}/bundles/{name}/\n" in result.stdout
    (request,) = aws_stack.account.requests("SageMaker.CreateTrainingJob")
    assert request["EnableNetworkIsolation"] is False
    assert request["HyperParameters"]["out"] == f"s3://{BUCKET}/bundles/{name}/"


def test_submit_sagemaker_encrypts_volume_and_output_with_the_stacks_key(aws_stack: FakeStack) -> None:
    # A stack deployed with CreateKmsKey=true (or KmsKeyArn) names its key; the job's disk and model.tar.gz use it.
    key = boto3.client("kms").create_key(Description="the stack's key")["KeyMetadata"]["Arn"]
    stack_name = f"submit-with-a-key-{uuid.uuid4().hex[:8]}"  # moto's account outlives the test
    create_output_stack(aws_stack.account, stack_name, {**aws_stack.outputs, "ModelKeyArn": key})

    result = aws_stack.sml(
        "submit", "--backend", "sagemaker", "--data", DATA, "--target", "label", "--stack-name", stack_name,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    (request,) = aws_stack.account.requests("SageMaker.CreateTrainingJob")
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == key
    assert request["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/models/", "KmsKeyId": key}


def test_submit_sagemaker_refuses_subnets_without_security_groups(aws_stack: FakeStack) -> None:
    result = aws_stack.sml("submit", "--backend", "sagemaker", "--data", DATA, "--target", "label", "--subnets", "s-1")

    assert result.returncode == 2
    assert result.stderr == ("sml: error: --subnets and --security-groups go together: a job in your VPC needs both\n")
    assert recorded_calls(aws_stack) == []


def test_submit_batch_refuses_spot_on_a_queue_without_spot_capacity(aws_stack: FakeStack) -> None:
    result = aws_stack.sml("submit", "--backend", "batch", "--data", DATA, "--target", "label", "--spot")

    assert result.returncode == 2
    assert result.stderr == (
        f"sml: error: --spot: queue {aws_stack.outputs['JobQueueArn']} runs on UNMANAGED capacity, not Spot; "
        "pass --job-queue\n"
    )
    assert "submitted" not in result.stdout


def recorded_calls(stack: FakeStack) -> list[str]:
    """Every request the account received since the test began, as `METHOD URL`."""
    if not stack.account.recording.exists():
        return []
    return [
        f"{entry['method']} {entry['url']}"
        for entry in map(json.loads, stack.account.recording.read_text().splitlines())
    ]


# case -> (backend, arguments, what stderr starts with)
BAD_SETTINGS = {
    "misspelt name": (
        "batch",
        ["--set", "epocs=10"],
        "sml: error: --set epocs=10: unknown setting 'epocs' (did you mean 'epochs'?); "
        "known settings: allow_column, batch_size, ",
    ),
    "value of the wrong type": (
        "sagemaker",
        ["--set", "hidden_size=big"],
        "sml: error: --set hidden_size=big: --hidden-size: expected a whole number, got 'big'\n",
    ),
    "misspelt name in the file": (
        "sagemaker",
        ["--config", "train.yaml"],
        "sml: error: --config train.yaml: unknown setting 'hiden_size' (did you mean 'hidden_size'?); ",
    ),
    "a masking key an isolated job cannot fetch": (
        "sagemaker",
        ["--set", "mask=email", "--set", "mask_key_secret=serverless-ml/mask-key"],
        "sml: error: setting mask_key_secret: an isolated SageMaker job cannot reach Secrets Manager; pass "
        "--no-network-isolation, or use --backend batch\n",
    ),
    "settings that contradict each other": (
        "batch",
        ["--set", "model=cnn"],
        "sml: error: training settings: --model cnn needs --input-shape C,H,W (for example 1,8,8)\n",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_submit_refuses_bad_settings_before_any_aws_call(aws_stack: FakeStack, case: str) -> None:
    backend, arguments, expected = BAD_SETTINGS[case]
    (aws_stack.project / "train.yaml").write_text("epochs: 5\nhiden-size: 64\n")

    result = aws_stack.sml("submit", "--backend", backend, "--data", DATA, "--target", "label", *arguments)

    assert result.returncode == 2
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert recorded_calls(aws_stack) == []
