"""`sml promote`: its arguments, and the command around sml.promote (fetch, verify, swap into the function)."""

import argparse
from pathlib import Path

from sml.aws import add_aws_arguments, aws_errors, aws_session, stack_for

STACK_KEY = "stack"  # --kms-key stack: the key the stack made or was given (template.yaml's ModelKeyArn)
STACK_KEY_HINT = "deployed without CreateKmsKey=true or KmsKeyArn"


def configure_promote(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="a bundle folder, or the s3:// prefix a training job wrote")
    parser.add_argument(
        "--function-dir",
        type=Path,
        default=Path("functions/predict"),
        help="the function's folder; the bundle goes into its model/ (default: functions/predict)",
    )
    parser.add_argument(
        "--force", action="store_true", help="promote a --dry-run bundle too (refused without it: not a trained model)"
    )
    parser.add_argument(
        "--kms-key",
        metavar="KEY",
        help="seal model.onnx with this KMS key (id, ARN or alias/NAME; `stack`: the deployed stack's own key, "
        "its ModelKeyArn output): the function decrypts it at init",
    )
    add_aws_arguments(parser)


def run_promote(args: argparse.Namespace) -> int:
    """Fetch and verify a bundle (S3 checksums, card, sha256, sample outputs), then swap it into model/."""
    from sml.promote import describe, promote  # the other commands need none of what it imports

    with aws_errors():
        uses_aws = args.source.startswith("s3://") or args.kms_key is not None
        session = aws_session(args, region_required=args.kms_key is not None) if uses_aws else None
        key = args.kms_key
        if key == STACK_KEY and session is not None:  # KMS key ids, ARNs and aliases never read `stack`
            key = stack_for(args, session).output("ModelKeyArn", "--kms-key KEY", STACK_KEY_HINT)
        print(describe(promote(args.source, args.function_dir, session, key, force=args.force)))
    return 0
