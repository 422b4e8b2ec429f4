"""The AWS commands of `sml`: submit, status, logs and endpoint, as flags and what each one runs.

Every location (queue, job definition, role, bucket, image, API URL) comes from a flag or else from the
deployed stack's outputs; the stack is the one samconfig.toml names, in its region, as `sam deploy` reads it.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import boto3

from sml import batch, endpoint, follow, sagemaker
from sml.aws import aws_errors, open_session
from sml.errors import UserError
from sml.jobs import (
    BACKENDS,
    TrainingJob,
    default_name_prefix,
    new_job_name,
    parse_duration,
    read_settings,
    require_s3_uri,
)
from sml.stack import BATCH_HINT, Stack, read_samconfig

EXIT_JOB_FAILED = 1
DEFAULT_REGION = "us-east-1"  # where S3 requests start when nothing names a region; S3 redirects to the bucket's
DEFAULT_POLL_S = 10.0
# Flags that mean something on one backend only: refused on the other rather than silently ignored.
BACKEND_ONLY = {
    "attempts": ("batch", "--attempts"),
    "gpus": ("batch", "--gpus"),
    "job_queue": ("batch", "--job-queue"),
    "job_definition": ("batch", "--job-definition"),
    "instance_type": ("sagemaker", "--instance-type"),
    "instance_count": ("sagemaker", "--instance-count"),
    "volume_size": ("sagemaker", "--volume-size"),
    "max_wait": ("sagemaker", "--max-wait"),
    "role_arn": ("sagemaker", "--role-arn"),
    "image": ("sagemaker", "--image"),
    "image_tag": ("sagemaker", "--image-tag"),
}

SUBMIT_DESCRIPTION = """\
Start a training job on AWS Batch or SageMaker. Training settings (TrainConfig names, snake_case or
kebab-case) come from --config FILE and repeated --set NAME=VALUE, which win. SageMaker receives them as
hyperparameters, Batch as TRAIN_<NAME> environment variables; the data, target, bundle and checkpoint
locations go as flags (Batch) or hyperparameters and channels (SageMaker). The bundle lands in
s3://BUCKET/bundles/JOB/ on both, ready for `sml promote`."""

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


def configure_submit(parser: argparse.ArgumentParser) -> None:
    parser.description = SUBMIT_DESCRIPTION
    parser.add_argument("--backend", choices=BACKENDS, required=True, help="where the job runs")
    parser.add_argument("--data", help="s3:// URI of the data file (or prefix); default: `data` in --config")
    parser.add_argument("--target", help="column to predict; default: `target` in --config")
    parser.add_argument("--config", type=Path, help="JSON or YAML file of training settings (epochs: 40, ...)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a training setting; repeat; wins over --config",
    )
    parser.add_argument("--name", help="job name prefix (default: the data file's name); sml adds time and a suffix")
    parser.add_argument(
        "--max-runtime",
        type=duration,
        help="per attempt: 3600, 90m, 12h (default: SageMaker 24h, Batch the job definition's)",
    )
    parser.add_argument(
        "--spot",
        action=argparse.BooleanOptionalAction,
        help="Spot capacity (SageMaker default: on; Batch: the queue's)",
    )
    parser.add_argument("--bucket", help="artifact bucket (default: the stack's ArtifactBucketName)")
    add_wait_arguments(parser, "--wait", "follow the job to its end; exit 1 if it fails")
    on_batch = parser.add_argument_group("AWS Batch")
    on_batch.add_argument("--job-queue", help="default: the stack's JobQueueArn")
    on_batch.add_argument("--job-definition", help="default: the stack's JobDefinitionArn")
    on_batch.add_argument(
        "--attempts",
        type=int,
        choices=range(1, 11),
        metavar="1-10",
        help="attempts, retrying Spot reclaims and SIGTERM exits only (default: the job definition's)",
    )
    on_batch.add_argument("--gpus", type=int, help="GPUs for the job (default: the job definition's)")
    on_sagemaker = parser.add_argument_group("SageMaker")
    on_sagemaker.add_argument("--instance-type", default=None, help="default: ml.g5.xlarge")
    on_sagemaker.add_argument("--instance-count", type=int, default=None, help="default: 1")
    on_sagemaker.add_argument("--volume-size", type=int, default=None, metavar="GB", help="default: 50")
    on_sagemaker.add_argument("--max-wait", type=duration, help="Spot: runtime plus waiting (default: 2x runtime)")
    on_sagemaker.add_argument("--role-arn", help="execution role (default: the stack's SageMakerRoleArn)")
    on_sagemaker.add_argument("--image", help="training image URI (default: TrainingRepositoryUri:--image-tag)")
    on_sagemaker.add_argument("--image-tag", help="default: the stack's TrainingImageTag parameter")
    add_aws_arguments(parser)


def run_submit(args: argparse.Namespace) -> int:
    """Start a training job on AWS Batch or SageMaker, with every location taken from the stack."""
    for attribute, (backend, flag) in BACKEND_ONLY.items():
        if getattr(args, attribute) is not None and args.backend != backend:
            raise UserError(f"{flag} applies to --backend {backend} only")
    settings = read_settings(args.config, args.set)
    data = args.data or settings.get("data")
    target = args.target or settings.get("target")
    settings = {key: value for key, value in settings.items() if key not in ("data", "target")}
    if not data or not target:
        raise UserError("pass --data s3://... and --target COLUMN (or set data and target in --config)")
    require_s3_uri(data, "--data")
    with aws_errors():
        session = aws_session(args)
        stack = stack_for(args, session)
        bucket = args.bucket or stack.output("ArtifactBucketName", "--bucket")
        name = new_job_name(args.name or default_name_prefix(data))
        job = TrainingJob(name, data, target, settings, bucket, args.max_runtime)
        if not data.startswith(f"s3://{bucket}/data/"):
            logger.warning(
                "note: the stack's training roles read s3://%s/data/ only; check the job can read %s", bucket, data
            )
        job_id = submit_job(args, session, stack, job)
        print(f"submitted {job.name} to {args.backend}: job id {job_id}")
        print(f"  bundle:  {job.bundle_uri}")
        print(f"  status:  sml status {job_id} --wait")
        print(f"  logs:    sml logs {job_id} --follow")
        print(f"  promote: sml promote {job.bundle_uri}", flush=True)
        if not args.wait:
            return 0
        return wait_for(session, job_id, args.backend, args.interval)


def submit_job(args: argparse.Namespace, session: boto3.Session, stack: Stack, job: TrainingJob) -> str:
    if args.backend == "batch":
        queue = args.job_queue or stack.output("JobQueueArn", "--job-queue", BATCH_HINT)
        definition = args.job_definition or stack.output("JobDefinitionArn", "--job-definition", BATCH_HINT)
        if args.spot is not None:
            batch.check_spot(session, queue, args.spot)
        return batch.submit(session, job, queue, definition, args.attempts, args.gpus)
    if args.max_wait is not None and args.spot is False:
        raise UserError("--max-wait applies to Spot training only; drop it, or drop --no-spot")
    role_arn = args.role_arn or stack.output("SageMakerRoleArn", "--role-arn")
    image = args.image
    if image is None:
        tag = args.image_tag or stack.parameter("TrainingImageTag") or "v1"
        image = f"{stack.output('TrainingRepositoryUri', '--image')}:{tag}"
    resources = sagemaker.Resources(
        instance_type=args.instance_type or "ml.g5.xlarge",
        instance_count=args.instance_count or 1,
        volume_gb=args.volume_size or 50,
        spot=args.spot is not False,
        max_wait_s=args.max_wait,
    )
    return sagemaker.submit(session, job, image, role_arn, resources)


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


def configure_endpoint(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    predict = actions.add_parser(
        "predict",
        help="send rows to POST /predict",
        description="Send rows from a CSV or JSON file to the deployed API, in batches it accepts.",
        epilog=f"examples:\n  {ENDPOINT_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("--file", type=Path, required=True, help="rows.csv (a header picks columns) or rows.json")
    predict.add_argument("--out", type=Path, help="write the predictions here (default: print them)")
    predict.add_argument("--url", help="API base URL (default: the stack's ApiUrl)")
    predict.add_argument(
        "--auth",
        choices=endpoint.AUTH_MODES,
        help="default: the stack's ApiAuth; with --url, iam for execute-api hosts, else none",
    )
    predict.add_argument("--token", help="JWT for --auth jwt (default: SML_API_TOKEN)")
    predict.add_argument(
        "--max-batch", type=int, default=endpoint.DEFAULT_MAX_BATCH, help="rows per request (default: 256, MAX_BATCH)"
    )
    add_aws_arguments(predict)


def run_endpoint(args: argparse.Namespace) -> int:
    """`sml endpoint predict`: rows in, predictions out."""
    with aws_errors():
        api = endpoint_api(args)
        rows = endpoint.read_rows(args.file, api)
        answer = endpoint.predict(api, rows, args.max_batch)
    text = json.dumps(answer)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    model = answer.get("model") or {}
    where = f" -> {args.out}" if args.out else ""
    logger.info(
        "%d rows, %d requests, model %s %s%s",
        len(rows),
        api.requests_sent,
        model.get("name"),
        model.get("version"),
        where,
    )
    if "models" in answer:
        logger.warning(
            "note: answers came from %d model versions; a deployment is shifting traffic", len(answer["models"])
        )
    return 0


def endpoint_api(args: argparse.Namespace) -> endpoint.Api:
    """The API's URL and auth mode from the flags, else from the stack's ApiUrl and ApiAuth outputs."""
    session: boto3.Session | None = None
    if args.url:
        url, auth = args.url, args.auth or endpoint.default_auth(args.url)
    else:
        session = aws_session(args)
        stack = stack_for(args, session)
        url = stack.output("ApiUrl", "--url")
        auth = args.auth or endpoint.STACK_AUTH.get(stack.output("ApiAuth", "--auth"), "iam")
    token = args.token or os.environ.get("SML_API_TOKEN")
    if auth == "jwt" and not token:
        raise UserError("the API takes JWT bearer tokens: pass --token or set SML_API_TOKEN")
    if auth == "iam" and session is None:
        session = aws_session(args)
    return endpoint.Api(url=url, auth=auth, session=session, token=token)


def duration(text: str) -> int:
    """argparse type for --max-runtime/--max-wait: its ValueError becomes a one-line usage error."""
    return parse_duration(text)


ENDPOINT_EXAMPLES = (
    "sml endpoint predict --file rows.csv --out predictions.json\n"
    "  sml endpoint predict --file rows.json --url http://127.0.0.1:3000\n"
    "  sml endpoint predict --file rows.csv --stack-name serverless-ml-prod --profile prod"
)
