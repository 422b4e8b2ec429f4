"""S3 for the training job: data in, the bundle out (SHA-256 checksums, model.json last), checkpoints.

Credentials and region come from boto3's usual chain: the job role on AWS Batch and SageMaker, a profile
or AWS_ENDPOINT_URL elsewhere (tests point it at moto). The job role in template.yaml may list the
prefixes it uses, read data/, read and write checkpoints/, and only write bundles/: so this module
lists where it would otherwise call HeadObject, which answers 403 instead of 404 for a missing key
whenever the caller may not list the bucket.
"""

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, ParamValidationError

from training.cloud.contract import s3_uri_problem, split_s3_uri

logger = logging.getLogger("training")

NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket"}
DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


class StorageError(ValueError):
    """An S3 location cannot be used (missing, no access, no credentials); the message says which and why."""


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def split_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/some/key -> ("bucket", "some/key")."""
    if problem := s3_uri_problem(uri):
        raise StorageError(problem)
    return split_s3_uri(uri)


def prefix_of(key: str) -> str:
    """A key prefix that names a folder: "" or ending in "/"."""
    return f"{key.strip('/')}/" if key.strip("/") else ""


def client() -> Any:
    # A session of its own: credentials are looked up now, not reused from whatever boto3 cached earlier.
    return boto3.session.Session().client("s3")


@contextmanager
def s3_errors(uri: str, action: str) -> Iterator[None]:
    """Turn the answers a user can act on (no such bucket or key, access denied, no credentials) into
    StorageError; anything else (throttling, a network fault) stays an error of the job."""
    try:
        yield
    except NoCredentialsError:
        raise StorageError(
            f"{uri}: no AWS credentials while {action}; on AWS the job role provides them, elsewhere set "
            "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ) from None
    except ParamValidationError as error:
        raise StorageError(f"{uri}: not a valid S3 location ({error})") from None
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            raise StorageError(f"{uri}: bucket {split_uri(uri)[0]} does not exist (while {action})") from None
        if code in NOT_FOUND:
            raise StorageError(f"{uri} not found (while {action}); check the URI") from None
        if code in DENIED:
            raise StorageError(
                f"{uri}: access denied ({code}) while {action}; check the URI (S3 answers 403 for a missing key "
                "when the caller may not list the bucket) and the job role's S3 permissions"
            ) from None
        raise


def list_names(uri: str, action: str, s3: Any = None) -> list[str]:
    """Names of the objects directly under the folder-like prefix `uri`."""
    bucket, key = split_uri(uri)
    prefix = prefix_of(key)
    with s3_errors(uri, action):
        pages = (s3 or client()).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        return sorted(item["Key"].removeprefix(prefix) for page in pages for item in page.get("Contents", []))


def download_data(uri: str, directory: Path, suffixes: tuple[str, ...]) -> Path:
    """Download the data file at `uri` (or the one file with one of `suffixes` under a prefix ending in "/")."""
    bucket, key = split_uri(uri)
    if not key or key.endswith("/"):
        found = [name for name in list_names(uri, "listing the data") if name.lower().endswith(suffixes)]
        if len(found) != 1:
            raise StorageError(
                f"{uri} holds {len(found)} CSV/Parquet/NPZ files ({', '.join(found[:5]) or 'none'}); "
                "pass --data with the URI of one file"
            )
        key = prefix_of(key) + found[0]
    path = directory / PurePosixPath(key).name
    with s3_errors(uri, "downloading the data"):
        # The transfer manager splits large objects into parallel ranged GETs.
        client().download_file(bucket, key, str(path))
    logger.info("data: downloaded s3://%s/%s (%d bytes)", bucket, key, path.stat().st_size)
    return path


def check_writable_prefix(uri: str) -> list[str]:
    """Fail now, not after hours of training, when the output bucket is missing or out of reach.

    Returns the names already under the prefix. A listing is all the job role may do there besides
    writing; whether it may write shows only at the upload.
    """
    return list_names(uri, "checking the output location")


def upload_bundle(directory: Path, uri: str, card_name: str) -> None:
    """Upload every file of `directory` under the `uri` prefix, `card_name` last, each with a SHA-256 checksum.

    S3 checks each object against its checksum as it arrives and keeps it for readers (`sml promote`).
    The card goes last, so a reader that sees it sees a complete bundle.
    """
    bucket, key = split_uri(uri)
    prefix = prefix_of(key)
    files = sorted(path for path in directory.iterdir() if path.is_file() and path.name != card_name)
    s3 = client()
    for path in [*files, directory / card_name]:
        with s3_errors(uri, f"uploading {path.name}"):
            s3.upload_file(str(path), bucket, prefix + path.name, ExtraArgs={"ChecksumAlgorithm": "SHA256"})
        logger.info("uploaded s3://%s/%s%s", bucket, prefix, path.name)


class S3Store:
    """Checkpoints under an S3 prefix (training.fit.checkpoint.CheckpointStore).

    An S3 object appears whole or not at all (a multipart upload on completion), so a save needs no rename.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.bucket, key = split_uri(uri)
        self.prefix = prefix_of(key)
        self.s3 = client()

    def save(self, name: str, data: bytes) -> None:
        with s3_errors(self.uri, f"saving checkpoint {name}"):
            self.s3.upload_fileobj(io.BytesIO(data), self.bucket, self.prefix + name)

    def load(self, name: str) -> bytes:
        with s3_errors(self.uri, f"loading checkpoint {name}"):
            data: bytes = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
            return data

    def names(self) -> list[str]:
        return list_names(self.uri, "listing checkpoints", self.s3)

    def delete(self, name: str) -> None:
        with s3_errors(self.uri, f"deleting checkpoint {name}"):
            self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + name)
