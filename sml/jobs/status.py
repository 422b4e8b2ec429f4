"""The AWS side of `sml` that every AWS command shares (flags, session, stack, waiting) and `status` and `logs`.

Every location (queue, job definition, role, bucket, image, API URL) comes from a flag or else from the
deployed stack's outputs; the stack is the one samconfig.toml names, in its region, as `sam deploy` reads it.
`sml submit` is in submit_command.py, `sml endpoint` in endpoint_command.py.
"""

import argparse
import logging
import os
import sys

import boto3

from sml.aws import aws_errors, open_session
from sml.jobs import follow
from sml.jobs.job import BACKENDS
from sml.stack import Stack, read_samconfig

EXIT_JOB_FAILED = 1
DEFAULT_REGION = "us-east-1"  # where S3 requests start when nothing names a region; S3 redirects to the bucket's
DEFAULT_POLL_S = 10.0
logger = logging.getLogger("sml")


def add_aws_arguments(parser: argparse.ArgumentParser, stack: bool = True) -> None:
    """--profile, --region and (for commands that read the stack) --stack-name, as SAM and the AWS CLI spell them."""
    group = parser.add_argument_group("AWS")
    group.add_argument("--profile", help="AWS profile (default: samconfig.toml's, else AWS_PROFILE or default)")
    group.add_argument("--region", help="AWS region (default: samconfig.toml's, else AWS_REGION or the profile's)")
    if stack:
        group.add_argument("--stack-name", help="the deployed stack (default: stack_name in samconfig.toml)")


def aws_session(args: argparse.Namespace, region_required: bool = True) -> boto3.Session:
    """--profile/--region, else samconfig.toml's (as `sam deploy` reads them), else the AWS CLI's defaults."""
    samconfig = read_samconfig()
    region = args.region or samconfig.region
    if not region and not region_required:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return open_session(args.profile or samconfig.profile, region)


def stack_for(args: argparse.Namespace, session: boto3.Session) -> Stack:
    """--stack-name, else samconfig.toml's stack_name; described only when a flag leaves an output to read."""
    return Stack(session, args.stack_name or read_samconfig().stack_name)


def add_wait_arguments(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    parser.add_argument(flag, action="store_true", help=help_text)
    parser.add_argument(
        "--interval", type=float, default=DEFAULT_POLL_S, metavar="SECONDS", help="between polls (default: 10)"
    )


def wait_for(session: boto3.Session, job_id: str, backend: str | None, interval_s: float) -> int:
    """Follow the job to its end (progress on stderr), print its status, and exit 1 if it failed."""
    view, progress = follow.wait(session, job_id, backend, interval_s, sys.stderr)
    print(follow.render(view, progress))
    if view.outcome == "failed":
        print(f"sml: job {view.name} failed: {follow.failure_reason(view, progress)}", file=sys.stderr)
        return EXIT_JOB_FAILED
    if view.bundle:
        print(f"next: sml promote {view.bundle}")
    return 0


def add_job_arguments(parser: argparse.ArgumentParser, follow_flag: str, follow_help: str) -> None:
    """JOB, --backend, the follow flag and the AWS flags: what `status` and `logs` share."""
    parser.add_argument("job_id", metavar="JOB", help="a Batch job id (UUID) or a SageMaker training job name")
    parser.add_argument("--backend", choices=BACKENDS, help="default: batch for UUIDs, else sagemaker")
    add_wait_arguments(parser, follow_flag, follow_help)
    add_aws_arguments(parser, stack=False)


def configure_status(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser, "--wait", "follow the job to its end; exit 1 if it fails")


def run_status(args: argparse.Namespace) -> int:
    """State, attempts, reason, timings and the latest metrics of a job on either backend."""
    with aws_errors():
        session = aws_session(args)
        if args.wait:
            return wait_for(session, args.job_id, args.backend, args.interval)
        view, progress = follow.status(session, args.job_id, args.backend)
    print(follow.render(view, progress))
    return 0


def configure_logs(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser, "--follow", "keep printing new lines until the job ends; exit 1 if it fails")


def run_logs(args: argparse.Namespace) -> int:
    """The job's CloudWatch log lines; each attempt (Batch) or instance (SageMaker) labelled when there are several."""
    with aws_errors():
        session = aws_session(args)
        view, progress = follow.print_logs(session, args.job_id, args.backend, args.follow, args.interval, sys.stdout)
    if not (view.logs.streams or view.logs.prefix) and not args.follow:
        logger.info("no logs yet: the job is %s", view.state)
    if args.follow and view.outcome == "failed":
        print(f"sml: job {view.name} failed: {follow.failure_reason(view, progress)}", file=sys.stderr)
        return EXIT_JOB_FAILED
    return 0
