"""Bad input to the AWS commands: one readable line, exit 2, no traceback, and the function's model untouched."""

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.aws.stack import (
    BUCKET,
    FakeStack,
    create_output_stack,
    fixture_aws_stack,  # noqa: F401  (a fixture)
)

DATA = f"s3://{BUCKET}/data/digits.csv"
UNKNOWN_BATCH_JOB = "3f1c6a8e-0b7e-4a51-9a4e-8d2b1c0e9f11"


def assert_user_error(stack: FakeStack, result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stdout
    assert result.stderr == f"sml: error: {message}\n"
    assert stack.model_files() == stack.initial_model


def test_sml_without_credentials_says_how_to_get_them(aws_stack: FakeStack, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET", "AWS_SESSION"))}
    env |= {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups on a developer machine
    }

    result = aws_stack.sml("status", UNKNOWN_BATCH_JOB, env=env)

    assert_user_error(
        aws_stack,
        result,
        "no AWS credentials found: run `aws configure` or `aws sso login`, set AWS_PROFILE, or pass --profile",
    )


def test_sml_with_an_unknown_profile_names_it_and_the_fix(aws_stack: FakeStack, tmp_path: Path) -> None:
    env = dict(os.environ, AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))

    result = aws_stack.sml("status", UNKNOWN_BATCH_JOB, "--profile", "ml-prod", env=env)

    assert_user_error(
        aws_stack, result, "AWS profile 'ml-prod' not found; create it with `aws configure --profile ml-prod`"
    )


def test_submit_to_an_unknown_stack_names_it_and_the_fix(aws_stack: FakeStack) -> None:
    result = aws_stack.sml("submit", "--backend", "sagemaker", "--data", DATA, "--target", "y", "--stack-name", "nope")

    assert_user_error(
        aws_stack,
        result,
        "stack 'nope' not found in us-east-1: deploy it with `sam deploy`, or pass --stack-name and --region",
    )


def test_submit_to_a_stack_without_batch_names_the_missing_output_and_flag(aws_stack: FakeStack) -> None:
    outputs = {k: v for k, v in aws_stack.outputs.items() if k not in ("JobQueueArn", "JobDefinitionArn")}
    stack_name = f"no-batch-{secrets.token_hex(2)}"
    create_output_stack(aws_stack.account, stack_name, outputs)

    result = aws_stack.sml("submit", "--backend", "batch", "--data", DATA, "--target", "y", "--stack-name", stack_name)

    assert_user_error(
        aws_stack,
        result,
        f"stack '{stack_name}' has no output JobQueueArn (the stack creates AWS Batch only when deployed with "
        "BatchSubnetIds (see the README, Train on AWS)); pass --job-queue",
    )


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (UNKNOWN_BATCH_JOB, f"no AWS Batch job {UNKNOWN_BATCH_JOB} in us-east-1; check the id and --region"),
        ("digits-20261129-000000-0000", "no SageMaker training job digits-20261129-000000-0000 in us-east-1; "
         "check the name and --region"),
    ],
)  # fmt: skip
def test_status_of_an_unknown_job_says_so(aws_stack: FakeStack, job: str, message: str) -> None:
    result = aws_stack.sml("status", job)

    assert_user_error(aws_stack, result, message)
