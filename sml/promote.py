"""`sml promote`: fetch a bundle, have the function's own loader check it, and put it into model/, its card last."""

import base64
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import FlexibleChecksumError

from sml.bundle import BUNDLE_FILES, CARD_FILE, INT8_FILE, MODEL_FILE, Bundle, BundleError, check_with_function
from sml.errors import UserError
from training.cloud.contract import s3_uri_problem, split_s3_uri
from training.export.publish import publish

MODEL_DIR_NAME = "model"  # the function's MODEL_DIR in template.yaml
STAGING_PREFIX = ".model-staging-"


@dataclass(frozen=True)
class Promotion:
    bundle: Bundle  # as placed: bundle.path is the function's model folder
    previous: dict[str, Any] | None  # the card it replaced, if there was one


def promote(source: str, function_dir: Path, session: boto3.Session | None = None, *, force: bool = False) -> Promotion:
    """Fetch `source` (a folder or an s3:// prefix, read with `session`) beside `function_dir/model`, have the
    function's own loader check the copy, then swap it in. Any failure changes nothing and leaves no staging.

    Raises:
        UserError: the source is missing, the bundle fails a check (BundleError names which), or it is a
            --dry-run bundle and `force` is not set.
    """
    if not function_dir.is_dir():
        raise UserError(f"function folder {function_dir} not found; pass --function-dir")
    for leftover in function_dir.glob(f"{STAGING_PREFIX}*"):  # from a promote killed mid-way
        shutil.rmtree(leftover, ignore_errors=True)
    model_dir = function_dir / MODEL_DIR_NAME
    # Staging inside function_dir keeps it on the model folder's file system, so the swap is a rename.
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=function_dir))
    staging.chmod(0o755)  # mkdtemp makes it 0700; Lambda's runtime user must be able to read the model
    try:
        fetch_bundle(source, staging, session)
        if not (staging / MODEL_FILE).is_file() or not (staging / CARD_FILE).is_file():
            raise BundleError(f"{source} is not a bundle: it needs {MODEL_FILE} and {CARD_FILE}")
        bundle = check_with_function(function_dir, staging)  # the copies that will be served, not the source
        if is_dry_run(bundle.card) and not force:
            raise UserError(
                f"{source} is a --dry-run bundle (one batch of one epoch), not a trained model; train without "
                "--dry-run, or pass --force to serve it anyway"
            )
        previous = read_previous_card(model_dir)
        publish(staging, model_dir, (MODEL_FILE, INT8_FILE), CARD_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Promotion(bundle=Bundle(path=model_dir, card=bundle.card, files=bundle.files), previous=previous)


def fetch_bundle(source: str, destination: Path, session: boto3.Session | None = None) -> None:
    """Copy the bundle files at `source` into `destination`: the one place that knows where bundles come from."""
    if source.startswith("s3://"):
        download_bundle(source, destination, session or boto3.Session())
        return
    folder = Path(source)
    if not folder.is_dir():
        raise UserError(f"bundle folder {source} not found")
    for name in BUNDLE_FILES:
        if (folder / name).is_symlink():  # copying would follow it out of the bundle
            raise BundleError(f"{folder / name} is a symbolic link; a bundle holds regular files")
        if (folder / name).is_file():
            shutil.copyfile(folder / name, destination / name)


def download_bundle(uri: str, destination: Path, session: boto3.Session) -> None:
    """Download the bundle files under an S3 prefix; model.json, uploaded last, says the bundle is complete."""
    if problem := s3_uri_problem(uri):
        raise UserError(problem)
    bucket, key_prefix = split_s3_uri(uri)
    prefix = f"{key_prefix.rstrip('/')}/" if key_prefix.strip("/") else ""
    s3 = session.client("s3")
    names = {
        item["Key"].removeprefix(prefix)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        for item in page.get("Contents", [])
    }
    if CARD_FILE not in names:
        raise UserError(
            f"{uri} holds no {CARD_FILE}: the job has not finished uploading the bundle, or the prefix is wrong"
        )
    for name in BUNDLE_FILES:
        if name in names:
            download_verified(s3, bucket, prefix + name, destination / name)


def download_verified(s3: Any, bucket: str, key: str, path: Path) -> None:
    """Stream one object to `path`, and refuse it when it differs from the SHA-256 checksum S3 stored at upload."""
    response = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    digest = hashlib.sha256()
    try:
        with path.open("wb") as file:
            for chunk in response["Body"].iter_chunks(1 << 20):
                digest.update(chunk)
                file.write(chunk)
    except FlexibleChecksumError:  # botocore checked the stream against the stored checksum too
        raise BundleError(f"s3://{bucket}/{key} does not match the SHA-256 checksum S3 stored for it") from None
    stored = response.get("ChecksumSHA256")
    # A multipart upload stores a checksum of part checksums ("...-N"); the card's sha256 still covers the model.
    if stored and "-" not in stored and base64.b64encode(digest.digest()).decode() != stored:
        raise BundleError(f"s3://{bucket}/{key} does not match the SHA-256 checksum S3 stored for it")


def is_dry_run(card: dict[str, Any]) -> bool:
    """The card records the training settings; a smoke test's bundle has dry_run true there."""
    training = card.get("training")
    config = training.get("config") if isinstance(training, dict) else None
    return isinstance(config, dict) and config.get("dry_run") is True


def read_previous_card(model_dir: Path) -> dict[str, Any] | None:
    try:
        card = json.loads((model_dir / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return card if isinstance(card, dict) else None


def describe(promotion: Promotion) -> str:
    """What was promoted, in a few lines for the terminal, ending with the next command to run."""
    card = promotion.bundle.card
    metrics = card["metrics"]["test"]
    figures = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, int | float))
    files = ", ".join(promotion.bundle.files)
    lines = [
        f"promoted {card['name']} {card['version']} ({card['task']}) into {promotion.bundle.path}",
        f"  files: {files} (model.onnx sha256 {card['sha256'][:12]}...)",
        f"  test metrics: {figures or 'none recorded'}",
    ]
    if promotion.previous is not None:
        lines.append(f"  replaced: {promotion.previous.get('name')} {promotion.previous.get('version')}")
    if is_dry_run(card):
        lines.append("  warning: a --dry-run bundle (promoted with --force): its predictions are not to be trusted")
    lines.append("next: sam build && sam deploy")
    return "\n".join(lines)
