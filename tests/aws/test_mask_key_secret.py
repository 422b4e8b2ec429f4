"""`--mask` with its key in AWS Secrets Manager (moto's server): the secret's value keys the hash, and is kept."""

import hashlib
import hmac
import json
from pathlib import Path

import boto3
import pandas as pd
import pytest

from training.__main__ import main
from training.cloud.contract import EXIT_USER_ERROR
from training.config import ConfigError, TrainConfig
from training.data.privacy import HASH_HEX, MASK_KEY_ENV, protect

REPO = Path(__file__).resolve().parents[2]
SECRET = "the-team's-masking-key-0123456789"


def hashed(value: str, key: bytes) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:HASH_HEX]


def test_mask_key_from_a_secret_string_keys_the_hash_over_the_environment(
    aws_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name="sml/mask-key", SecretString=SECRET)["ARN"]
    monkeypatch.setenv(MASK_KEY_ENV, "another key, which the secret overrides")
    owners = [f"team.{i % 3}@example.com" for i in range(120)]
    data, out = tmp_path / "customers.csv", tmp_path / "bundle"
    pd.read_csv(REPO / "examples/data/digits.csv").head(120).assign(owner=owners).to_csv(data, index=False)

    args = ["--data", str(data), "--out", str(out), "--target", "owner", "--exclude", "label", "--dry-run"]
    code = main([*args, "--mask", "owner", "--mask-key-secret", arn, "--progress", "none"])

    assert code == 0
    card = json.loads((out / "model.json").read_text())
    assert card["labels"] == sorted(hashed(f"team.{i}@example.com", SECRET.encode()) for i in range(3))
    assert card["training"]["config"]["mask_key_secret"] == arn  # where the key is, never the key
    bundle = b"".join(path.read_bytes() for path in out.iterdir())
    assert SECRET.encode() not in bundle and b"example.com" not in bundle


def test_mask_key_from_a_binary_secret(aws_endpoint: str) -> None:
    key = bytes(range(32))
    boto3.client("secretsmanager").create_secret(Name="sml/binary-key", SecretBinary=key)
    table = pd.DataFrame({"email": ["a@example.com"], "y": [1]})

    masked = protect(table, TrainConfig(target="y", mask=("email",), mask_key_secret="sml/binary-key"), {})

    assert masked["email"].tolist() == [hashed("a@example.com", key)]


def test_a_missing_secret_is_refused_with_one_line_naming_it(
    aws_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d.csv"
    pd.DataFrame({"email": ["a@example.com"] * 20, "x": range(20), "label": [0, 1] * 10}).to_csv(data, index=False)

    code = main(
        [
            "--data",
            str(data),
            "--target",
            "label",
            "--out",
            str(tmp_path / "b"),
            "--mask",
            "email",
            "--mask-key-secret",
            "sml/absent",
        ]
    )

    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == EXIT_USER_ERROR
    assert last == (
        "training: error: --mask-key-secret sml/absent: Secrets Manager answered ResourceNotFoundException; check "
        "the ARN and that the job's role may secretsmanager:GetSecretValue on it"
    )


def test_a_secret_shorter_than_16_bytes_is_refused(aws_endpoint: str) -> None:
    boto3.client("secretsmanager").create_secret(Name="sml/short", SecretString="short")
    table = pd.DataFrame({"email": ["a@example.com"], "y": [1]})

    with pytest.raises(ConfigError, match="the key in secret sml/short has 5 bytes; use at least 16"):
        protect(table, TrainConfig(target="y", mask=("email",), mask_key_secret="sml/short"), {})
