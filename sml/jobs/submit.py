"""`sml submit`: start a training job on AWS Batch or SageMaker, every location from a flag or the stack."""

import argparse
import logging
import re
from pathlib import Path

import boto3

from sml.aws import add_aws_arguments, aws_errors, aws_session, stack_for
from sml.errors import UserError
from sml.jobs import batch, sagemaker
from sml.jobs.job import BACKENDS, TrainingJob
from sml.jobs.names import default_name_prefix, new_job_name
from sml.jobs.settings import read_settings
from sml.jobs.status import add_wait_arguments, wait_for
from sml.jobs.upload import local_data_file, upload_data
from sml.stack import BATCH_HINT, Stack
from training.cloud.contract import s3_uri_problem

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
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
    "network_isolation": ("sagemaker", "--network-isolation"),
    "subnets": ("sagemaker", "--subnets"),
    "security_groups": ("sagemaker", "--security-groups"),
}

SUBMIT_DESCRIPTION = """\
Start a training job on AWS Batch or SageMaker. Training settings (TrainConfig names, snake_case or
kebab-case) come from --config FILE and repeated --set NAME=VALUE, which win; they are checked as the
training job reads them before anything is sent. SageMaker receives them as
hyperparameters, Batch as TRAIN_<NAME> environment variables; the data, target, bundle and checkpoint
locations go as flags (Batch) or hyperparameters and channels (SageMaker). The bundle lands in
s3://BUCKET/bundles/JOB/, or, for a SageMaker job with network isolation (the default there), in SageMaker's
s3://BUCKET/models/JOB/output/model.tar.gz; either is ready for `sml promote`."""

logger = logging.getLogger("sml")


def configure_submit(parser: argparse.ArgumentParser) -> None:
    parser.description = SUBMIT_DESCRIPTION
    parser.add_argument("--backend", choices=BACKENDS, required=True, help="where the job runs")
    parser.add_argument(
        "--data",
        help="s3:// URI of the data file (or prefix), or a local file to upload to the stack's bucket under data/; "
        "default: `data` in --config",
    )
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
    on_sagemaker.add_argument(
        "--instance-count",
        type=int,
        default=None,
        help="training instances; above 1 they train together (DDP) (default: 1)",
    )
    on_sagemaker.add_argument(
        "--volume-size", type=int, default=None, metavar="GB", help="disk of each training instance, GB (default: 50)"
    )
    on_sagemaker.add_argument("--max-wait", type=duration, help="Spot: runtime plus waiting (default: 2x runtime)")
    on_sagemaker.add_argument("--role-arn", help="execution role (default: the stack's SageMakerRoleArn)")
    on_sagemaker.add_argument("--image", help="training image URI (default: TrainingRepositoryUri:--image-tag)")
    on_sagemaker.add_argument("--image-tag", help="default: the stack's TrainingImageTag parameter")
    on_sagemaker.add_argument(
        "--network-isolation",
        action=argparse.BooleanOptionalAction,
        help="the job reaches only its channels and output; the bundle comes back as model.tar.gz (default: on)",
    )
    on_sagemaker.add_argument("--subnets", type=id_list, help="run in your VPC: subnet-a,subnet-b")
    on_sagemaker.add_argument("--security-groups", type=id_list, help="with --subnets: sg-1,sg-2")
    add_aws_arguments(parser)


def run_submit(args: argparse.Namespace) -> int:
    """Start a training job on AWS Batch or SageMaker, with every location taken from the stack."""
    for attribute, (backend, flag) in BACKEND_ONLY.items():
        if getattr(args, attribute) is not None and args.backend != backend:
            raise UserError(f"{flag} applies to --backend {backend} only")
    settings = read_settings(args.config, args.set)
    network = network_of(args)
    if args.backend == "sagemaker" and network.isolated and settings.get("mask_key_secret"):
        raise UserError(
            "setting mask_key_secret: an isolated SageMaker job cannot reach Secrets Manager; pass "
            "--no-network-isolation, or use --backend batch"
        )
    data = args.data or settings.get("data")
    target = args.target or settings.get("target")
    settings = {key: value for key, value in settings.items() if key not in ("data", "target")}
    if not data or not target:
        raise UserError("pass --data s3://... and --target COLUMN (or set data and target in --config)")
    local_data = local_data_file(data, "--data")
    if local_data is None:
        require_s3_uri(data, "--data")
    # The validation and test files (settings val_data, test_data) may be local files too: uploaded the same way.
    local_settings = {
        key: path
        for key in ("val_data", "test_data")
        if settings.get(key) and (path := local_data_file(settings[key], f"setting {key}")) is not None
    }
    with aws_errors():
        session = aws_session(args)
        stack = stack_for(args, session)
        bucket = args.bucket or stack.output("ArtifactBucketName", "--bucket")
        if local_data is not None:
            data = upload_data(session, local_data, bucket)
        settings |= {key: upload_data(session, path, bucket) for key, path in local_settings.items()}
        name = new_job_name(args.name or default_name_prefix(data))
        job = TrainingJob(name, data, target, settings, bucket, args.max_runtime)
        if not data.startswith(f"s3://{bucket}/data/"):
            logger.warning(
                "note: the stack's training roles read s3://%s/data/ only; check the job can read %s", bucket, data
            )
        job_id = submit_job(args, session, stack, job, network)
        bundle = sagemaker.bundle_location(job, network.isolated) if args.backend == "sagemaker" else job.bundle_uri
        print(f"submitted {job.name} to {args.backend}: job id {job_id}")
        print(f"  bundle:  {bundle}")
        print(f"  status:  sml status {job_id} --wait")
        print(f"  logs:    sml logs {job_id} --follow")
        print(f"  promote: sml promote {bundle}", flush=True)
        if not args.wait:
            return 0
        return wait_for(session, job_id, args.backend, args.interval)


def submit_job(
    args: argparse.Namespace, session: boto3.Session, stack: Stack, job: TrainingJob, network: sagemaker.Network
) -> str:
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
        kms_key=stack.optional_output("ModelKeyArn"),  # a stack deployed with CreateKmsKey=true or KmsKeyArn
    )
    return sagemaker.submit(session, job, image, role_arn, resources, network)


def network_of(args: argparse.Namespace) -> sagemaker.Network:
    """SageMaker's network settings; checked before any AWS call, as the settings are."""
    if bool(args.subnets) != bool(args.security_groups):
        raise UserError("--subnets and --security-groups go together: a job in your VPC needs both")
    return sagemaker.Network(
        isolated=args.network_isolation is not False,
        subnets=tuple(args.subnets or ()),
        security_groups=tuple(args.security_groups or ()),
    )


def id_list(text: str) -> list[str]:
    """argparse type for --subnets/--security-groups: comma-separated ids, none empty."""
    ids = [item.strip() for item in text.split(",")]
    if not all(ids):
        raise ValueError(f"{text!r} is not a comma-separated list of ids, like subnet-1a2b,subnet-3c4d")
    return ids


def duration(text: str) -> int:
    """argparse type for --max-runtime/--max-wait: its ValueError becomes a one-line usage error."""
    return parse_duration(text)


def parse_duration(text: str) -> int:
    """Seconds in `3600`, `90m`, `12h` or `2d`."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 3600, 90m, 12h or 2d")
    return int(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


def require_s3_uri(uri: str, what: str) -> str:
    if problem := s3_uri_problem(uri):
        raise UserError(f"{what}: {problem}")
    return uri
