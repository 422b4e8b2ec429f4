"""`sml status`: a job's state, attempts, reason, timings and latest metrics; and waiting for its end.

The waiting (`--wait` here, `sml submit --wait`) and the JOB/--backend arguments are shared with `sml logs`.
"""

import argparse
import json
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Any

import boto3

from sml.aws import add_aws_arguments, aws_errors, aws_session
from sml.jobs import follow, report
from sml.jobs.job import BACKENDS, JobView

EXIT_JOB_FAILED = 1
DEFAULT_POLL_S = 10.0
OUTPUTS = ("table", "json")  # as the AWS CLI spells --output: aligned lines for people, JSON for scripts


def add_wait_arguments(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    parser.add_argument(flag, action="store_true", help=help_text)
    parser.add_argument(
        "--interval", type=float, default=DEFAULT_POLL_S, metavar="SECONDS", help="seconds between polls (default: 10)"
    )


def wait_for(session: boto3.Session, job_id: str, backend: str | None, interval_s: float, output: str = "table") -> int:
    """Follow the job to its end (progress on stderr), print its status, and exit 1 if it failed."""
    view, progress = follow.wait(session, job_id, backend, interval_s, sys.stderr)
    print_status(view, progress, output)
    if view.outcome == "failed":
        print(f"sml: job {view.name} failed: {report.failure_reason(view, progress)}", file=sys.stderr)
        return EXIT_JOB_FAILED
    if view.bundle and output == "table":
        print(f"next: sml promote {view.bundle}")
    return 0


def print_status(view: JobView, progress: follow.Progress, output: str) -> None:
    if output == "json":
        print(json.dumps(status_document(view, progress), indent=2))
    else:
        print(report.render(view, progress))


def status_document(view: JobView, progress: follow.Progress) -> dict[str, Any]:
    """The status as JSON for scripts: every field of the view (times in ISO 8601), the latest metrics and failure."""
    document = {key: value.isoformat() if isinstance(value, datetime) else value for key, value in asdict(view).items()}
    return {**document, "metrics": progress.metrics, "failure": progress.failure}


def add_job_arguments(parser: argparse.ArgumentParser, follow_flag: str, follow_help: str) -> None:
    """JOB, --backend, the follow flag and the AWS flags: what `status` and `logs` share."""
    parser.add_argument("job_id", metavar="JOB", help="a Batch job id (UUID) or a SageMaker training job name")
    parser.add_argument("--backend", choices=BACKENDS, help="default: batch for UUIDs, else sagemaker")
    add_wait_arguments(parser, follow_flag, follow_help)
    add_aws_arguments(parser, stack=False)


def configure_status(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser, "--wait", "follow the job to its end; exit 1 if it fails")
    parser.add_argument(
        "--output", choices=OUTPUTS, default="table", help="table: aligned lines for people; json: one JSON document"
    )


def run_status(args: argparse.Namespace) -> int:
    """State, attempts, reason, timings and the latest metrics of a job on either backend."""
    with aws_errors():
        session = aws_session(args)
        if args.wait:
            return wait_for(session, args.job_id, args.backend, args.interval, args.output)
        view, progress = follow.status(session, args.job_id, args.backend)
    print_status(view, progress, args.output)
    return 0
