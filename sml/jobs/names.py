"""Training job names that AWS Batch and SageMaker both accept: `prefix-YYYYMMDD-HHMMSS-xxxx`."""

import re
import secrets
from datetime import UTC, datetime

from sml.errors import UserError

# SageMaker's rule (letters, digits, inner hyphens, at most 63) is the stricter one, so such a name suits both.
NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
NAME_SUFFIX_LENGTH = len("-20261129-153000-a1b2")


def new_job_name(prefix: str, now: datetime | None = None) -> str:
    """`prefix-YYYYMMDD-HHMMSS-xxxx`: unique, sortable, and valid for Batch and SageMaker."""
    if not NAME_PATTERN.fullmatch(prefix) or len(prefix) > 63 - NAME_SUFFIX_LENGTH:
        longest = 63 - NAME_SUFFIX_LENGTH
        raise UserError(f"--name {prefix!r}: use 1-{longest} letters, digits and inner hyphens")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


def default_name_prefix(data: str) -> str:
    """The data file's stem, cut to what job names allow: s3://b/data/digits.csv -> digits."""
    stem = data.rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0]
    cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", stem).strip("-")[: 63 - NAME_SUFFIX_LENGTH].strip("-")
    return cleaned or "sml"
