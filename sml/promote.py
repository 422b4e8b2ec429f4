"""`sml promote`: fetch a bundle, have the function's own loader check it, and put it into model/, its card last."""

import base64
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import FlexibleChecksumError

from sml.bundle import (
    BUNDLE_FILES,
    CARD_FILE,
    ENCRYPTED_FILE,
    KEY_FILE,
    MODEL_FILE,
    SERVED_FILES,
    Bundle,
    BundleError,
    check_with_function,
)
from sml.errors import UserError
from training.cloud.contract import s3_uri_problem, split_s3_uri
from training.export.publish import publish

MODEL_DIR_NAME = "model"  # the function's MODEL_DIR in template.yaml
STAGING_PREFIX = ".model-staging-"
ARCHIVE_SUFFIX = ".tar.gz"  # SageMaker's model.tar.gz of /opt/ml/model, an isolated job's bundle
ARCHIVE_NAME = ".model.tar.gz"  # its download, in the staging folder until unpacked


@dataclass(frozen=True)
class Promotion:
    bundle: Bundle  # as placed: bundle.path is the function's model folder
    previous: dict[str, Any] | None  # the card it replaced, if there was one


def promote(
    source: str,
    function_dir: Path,
    session: boto3.Session | None = None,
    kms_key: str | None = None,
    *,
    force: bool = False,
) -> Promotion:
    """Fetch `source` (a folder or an s3:// prefix, read with `session`) beside `function_dir/model`, have the
    function's own loader check the copy, then swap it in. Any failure changes nothing and leaves no staging.
    With `kms_key`, the checked model is sealed with it (sml/seal.py) and the loader checks the sealed copy too.

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
        if kms_key is not None:
            bundle = seal_checked(function_dir, staging, bundle.card, kms_key, session or boto3.Session())
        previous = read_json_object(model_dir / CARD_FILE)
        publish(staging, model_dir, [name for name in SERVED_FILES if name != CARD_FILE], CARD_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Promotion(bundle=Bundle(path=model_dir, card=bundle.card, files=bundle.files), previous=previous)


def seal_checked(
    function_dir: Path, staging: Path, card: dict[str, Any], kms_key: str, session: boto3.Session
) -> Bundle:
    """Seal the staged model with `kms_key`, then have the function open it as it will at init (KMS Decrypt)."""
    from sml.seal import seal  # cryptography: only promotions with --kms-key import it

    seal(staging, card, kms_key, session.client("kms"))
    aws = {"AWS_REGION": session.region_name, "AWS_DEFAULT_REGION": session.region_name}
    if session.profile_name != "default":
        aws["AWS_PROFILE"] = session.profile_name
    return check_with_function(function_dir, staging, os.environ | {k: v for k, v in aws.items() if v})


def fetch_bundle(source: str, destination: Path, session: boto3.Session | None = None) -> None:
    """Copy the bundle files at `source` into `destination`: the one place that knows where bundles come from."""
    if source.startswith("s3://") and source.endswith(ARCHIVE_SUFFIX):
        download_archive(source, destination, session or boto3.Session())
        return
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


def download_archive(uri: str, destination: Path, session: boto3.Session) -> None:
    """The bundle files in SageMaker's model.tar.gz (an isolated job's /opt/ml/model): regular files only."""
    bucket, key = split_s3_uri(uri)
    archive = destination / ARCHIVE_NAME
    try:
        download_verified(session.client("s3"), bucket, key, archive)
        with tarfile.open(archive, "r:gz") as tar:
            members = {member.name.removeprefix("./"): member for member in tar.getmembers()}
            for name in BUNDLE_FILES:
                member = members.get(name)
                if member is None:
                    continue
                source = tar.extractfile(member) if member.isfile() else None
                if source is None:
                    raise BundleError(f"{uri}: {name} is not a regular file in the archive")
                with source, (destination / name).open("wb") as file:
                    shutil.copyfileobj(source, file)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise BundleError(f"{uri} is not a readable model.tar.gz: {error}") from None
    finally:
        archive.unlink(missing_ok=True)


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


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path` (a card, a key file), or None when there is none to read."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


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
    sealed = read_json_object(promotion.bundle.path / KEY_FILE)
    if sealed is not None:
        lines.append(f"  sealed: {ENCRYPTED_FILE} with KMS key {sealed.get('key_id')}; no plaintext model ships")
    if promotion.previous is not None:
        lines.append(f"  replaced: {promotion.previous.get('name')} {promotion.previous.get('version')}")
    if is_dry_run(card):
        lines.append("  warning: a --dry-run bundle (promoted with --force): its predictions are not to be trusted")
    lines.append("next: sam build && sam deploy")
    return "\n".join(lines)
