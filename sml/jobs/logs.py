"""`sml logs`: a training job's CloudWatch log lines, once or followed to the job's end."""

import argparse
import logging
import sys

from sml.aws import aws_errors, aws_session
from sml.jobs import follow, report
from sml.jobs.status import EXIT_JOB_FAILED, add_job_arguments

logger = logging.getLogger("sml")


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
        print(f"sml: job {view.name} failed: {report.failure_reason(view, progress)}", file=sys.stderr)
        return EXIT_JOB_FAILED
    return 0
