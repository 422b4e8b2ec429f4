"""`sml submit --data ./local.csv`: put a local data file into the stack's bucket, where the training roles read.

The key holds the file's SHA-256 (data/<first 16 hex digits>/<name>), so the same file uploaded twice lands on the
same key and the second upload is skipped; S3 checks the bytes it receives against a SHA-256 checksum too.
"""

import logging
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from sml.errors import UserError
from training.cloud.contract import file_sha256

DATA_PREFIX = "data/"  # the stack's training roles read s3://BUCKET/data/ only
DIGEST_IN_KEY = 16  # hex digits of the SHA-256 in the key: 64 bits, no collision among one user's files

logger = logging.getLogger("sml")


def local_data_file(data: str, flag: str) -> Path | None:
    """The local file `data` names, None when it is a URI; a UserError when it names no file."""
    if "://" in data:
        return None
    path = Path(data)
    if path.is_dir():
        raise UserError(f"{flag} {data}: a local folder cannot be uploaded; pass one data file, or an s3:// prefix")
    if not path.is_file():
        raise UserError(f"{flag} {data}: no such file; pass a local data file or an s3:// URI")
    return path


def upload_data(session: boto3.Session, path: Path, bucket: str) -> str:
    """The s3:// URI of `path` in `bucket` under data/, uploaded unless the same bytes are there already."""
    digest = file_sha256(path)
    key = f"{DATA_PREFIX}{digest[:DIGEST_IN_KEY]}/{path.name}"
    uri = f"s3://{bucket}/{key}"
    s3 = session.client("s3")
    if stored_digest(s3, bucket, key) == digest:
        logger.info("%s is already at %s (same SHA-256); not uploading it again", path, uri)
        return uri
    logger.info("uploading %s (%.1f MB) to %s", path, path.stat().st_size / 1e6, uri)
    s3.upload_file(str(path), bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": digest}})
    return uri


def stored_digest(s3: Any, bucket: str, key: str) -> str | None:
    """The sha256 metadata of the object at `key`, None when there is no such object."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    metadata: dict[str, str] = head.get("Metadata", {})
    return metadata.get("sha256")
