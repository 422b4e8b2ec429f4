"""What the training job and `sml` agree on, in one place: both sides import it (docs/aws-contracts.md).

Standard library only (torch-free, pandas-free), like training.config: `sml` imports it where only the base
dependencies are installed.
"""

import hashlib
import re
from pathlib import Path

# The JSON line the job logs each epoch, as SageMaker's MetricDefinitions capture it (name: regex).
METRIC_REGEXES = {
    "train_loss": r'"train_loss": ([-+0-9.eE]+)',
    "val_loss": r'"val_loss": ([-+0-9.eE]+)',
    "val_accuracy": r'"val_accuracy": ([-+0-9.eE]+)',
    "val_r2": r'"val_r2": ([-+0-9.eE]+)',
    "epoch": r'"epoch": ([0-9]+)',
}

# The job's exit codes, and what each means to a user reading `sml status`.
EXIT_USER_ERROR = 2
EXIT_EXPORT_REFUSED = 3
EXIT_INTERRUPTED = 143  # 128 + SIGTERM, what schedulers expect from a process that stopped on SIGTERM
EXIT_SIGINT = 130  # 128 + SIGINT (Ctrl+C)
EXIT_MEANINGS = {
    1: "the training job crashed",
    EXIT_USER_ERROR: "bad settings or data (not retried)",
    EXIT_EXPORT_REFUSED: "export refused: the ONNX model did not reproduce PyTorch's outputs",
    137: "killed: out of memory, or past its time limit",
    EXIT_INTERRUPTED: "stopped by SIGTERM after writing a checkpoint (Spot reclaim or time limit)",
}

# How the one line on stderr before a non-zero exit starts; `sml status` and `sml logs` look for these.
USER_ERROR_PREFIX = "training: error:"
EXPORT_REFUSED_PREFIX = "training: export refused:"
INTERRUPTED_PREFIX = "training: interrupted"
FAILURE_PREFIXES = (USER_ERROR_PREFIX, EXPORT_REFUSED_PREFIX, INTERRUPTED_PREFIX)


# S3's rules for a bucket name (general purpose buckets), checked before any request names it.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
BUCKET_RULE = "bucket names are lower case letters, digits, dots and hyphens, 3-63 characters"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/some/key -> ("bucket", "some/key"); the bucket is "" when the URI names none."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def s3_uri_problem(uri: str) -> str | None:
    """What is wrong with an s3://BUCKET/KEY URI, naming the wrong part; None when S3 would accept it."""
    if not uri.startswith("s3://"):
        return f"{uri!r} is not an s3:// URI: write s3://BUCKET/KEY"
    bucket, _ = split_s3_uri(uri)
    if not bucket:
        return f"{uri!r} names no bucket: write s3://BUCKET/KEY"
    if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        return f"bucket name {bucket!r} is not valid: {BUCKET_RULE}, starting and ending with a letter or digit"
    return None


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes: the card's `sha256` of model.onnx, and the data fingerprint.

    functions/predict/model.py computes the same digest of the bytes it loads (it may not import this module).
    """
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
