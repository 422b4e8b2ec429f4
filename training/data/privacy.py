"""The job's privacy gate on the table it read: masked columns hashed, personal data refused (pii.py).

`--mask NAME` replaces each value of a column with a keyed hash (HMAC-SHA256 of the value's text, the first
HASH_HEX hex digits): equal values stay equal, so the column can still be a categorical feature, but its raw
values reach neither the model nor the card. The key comes from the environment variable MASK_KEY_ENV or,
with `--mask-key-secret ARN`, from AWS Secrets Manager; it is never written anywhere (the card records the
secret's ARN, not its value). Keep it: the same key turns the same raw value into the same hash when
callers prepare requests. Then every used column not masked, excluded or allowed (`--allow-column NAME`) is
scanned, and the job refuses one that looks like personal data.
"""

import hashlib
import hmac
import os
from collections.abc import Mapping

import pandas as pd

from training.config import ConfigError, TrainConfig
from training.data.pii import scan
from training.data.tables import DataError, describe

MASK_KEY_ENV = "SML_MASK_KEY"
MIN_KEY_BYTES = 16
HASH_HEX = 16  # 64 bits: no two values of a column of millions share a hash


def protect(table: pd.DataFrame, config: TrainConfig, environ: Mapping[str, str] = os.environ) -> pd.DataFrame:
    """`table` with the --mask columns hashed, after checking the used columns for personal data.

    Raises:
        ConfigError: a --mask or --allow-column name is not a column or is also excluded; no usable key.
        DataError: a used column looks like personal data (the message names it and the ways on).
    """
    check_names(list(table.columns), config)
    if config.mask_key_secret and not config.mask:
        raise ConfigError("--mask-key-secret: no column to mask; add --mask NAME or drop --mask-key-secret")
    if config.mask:
        key = mask_key(config, environ)
        table = table.assign(**{name: keyed_hash(table[name], key) for name in config.mask})
    used = [config.target, *config.features] if config.features else list(table.columns)
    skipped = {*config.mask, *config.allow_column}
    findings = scan(table, [name for name in used if name in table.columns and name not in skipped], config.seed)
    if findings:
        first, others = findings[0], [finding.column for finding in findings[1:]]
        also = f" (so do {', '.join(map(repr, others))})" if others else ""
        raise DataError(
            f"column {first.column!r} looks like personal data: {first.describe()}{also}; pass --exclude "
            f"{first.column} to drop it, --mask {first.column} to train on a keyed hash of it, or --allow-column "
            f"{first.column} if it is not personal data"
        )
    return table


def check_names(columns: list[str], config: TrainConfig) -> None:
    for setting, names in (("--mask", config.mask), ("--allow-column", config.allow_column)):
        for name in names:
            if name in config.exclude:
                raise ConfigError(f"{setting} {name}: the column is also in --exclude; pick one")
            if name not in columns:
                raise ConfigError(f"{setting}: no column named {name!r}; available columns: {describe(columns)}")
    for name in set(config.mask) & set(config.allow_column):
        raise ConfigError(f"{name!r} is in both --mask and --allow-column; pick one")


def keyed_hash(column: pd.Series, key: bytes) -> pd.Series:
    """Each value's HMAC-SHA256 under `key`, as HASH_HEX hex digits; missing values stay missing."""

    def digest(value: object) -> str:
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:HASH_HEX]

    return column.map(digest, na_action="ignore").astype(object)


def mask_key(config: TrainConfig, environ: Mapping[str, str]) -> bytes:
    """The masking key: the Secrets Manager secret --mask-key-secret names, else MASK_KEY_ENV."""
    if config.mask_key_secret:
        key, origin = secret_key(config.mask_key_secret), f"secret {config.mask_key_secret}"
    else:
        key, origin = environ.get(MASK_KEY_ENV, "").encode(), MASK_KEY_ENV
        if not key:
            raise ConfigError(
                f"--mask {','.join(config.mask)}: no masking key; set {MASK_KEY_ENV} to a secret of at least "
                f"{MIN_KEY_BYTES} characters, or pass --mask-key-secret with a Secrets Manager secret's ARN"
            )
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"--mask: the key in {origin} has {len(key)} bytes; use at least {MIN_KEY_BYTES}")
    return key


def secret_key(secret_id: str) -> bytes:
    """The secret's value (SecretString as UTF-8, or SecretBinary), read with the job's AWS credentials."""
    import boto3  # only jobs that keep their key in Secrets Manager need it
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = boto3.session.Session().client("secretsmanager").get_secret_value(SecretId=secret_id)
    except ClientError as error:
        reason = error.response.get("Error", {}).get("Code", "error")
        raise ConfigError(
            f"--mask-key-secret {secret_id}: Secrets Manager answered {reason}; check the ARN and that the job's "
            "role may secretsmanager:GetSecretValue on it"
        ) from None
    except BotoCoreError as error:  # no credentials or region, no connection
        raise ConfigError(f"--mask-key-secret {secret_id}: cannot reach Secrets Manager: {error}") from None
    secret = value.get("SecretBinary")
    return bytes(secret) if secret is not None else str(value.get("SecretString", "")).encode()
