"""The job's privacy gate: personal data refused with one line, --allow-column and --mask as documented."""

import hashlib
import hmac
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.__main__ import main
from training.cloud.contract import EXIT_USER_ERROR
from training.config import ConfigError, TrainConfig
from training.data.privacy import HASH_HEX, MASK_KEY_ENV, protect
from training.data.tables import DataError

REPO = Path(__file__).resolve().parents[2]
KEY = "a masking key of the user's own, kept secret"
ROWS = 120


def expected_hash(value: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:HASH_HEX]


def card_number(base: str) -> str:
    """`base` (15 digits) and the one check digit that passes Luhn, written in groups of four."""
    for digit in "0123456789":
        doubled = [int(d) * (2 if i % 2 else 1) for i, d in enumerate(reversed(base + digit))]
        if sum(d - 9 if d > 9 else d for d in doubled) % 10 == 0:
            number = base + digit
            return " ".join(number[start : start + 4] for start in range(0, 16, 4))
    raise AssertionError("unreachable: one digit completes any number")


def digits_with(tmp_path: Path, **columns: Sequence[object] | np.ndarray) -> Path:
    table = pd.read_csv(REPO / "examples/data/digits.csv").head(ROWS).assign(**columns)
    path = tmp_path / "customers.csv"
    table.to_csv(path, index=False)
    return path


def train(data: Path, out: Path, *extra: str) -> int:
    return main(["--data", str(data), "--out", str(out), "--dry-run", "--progress", "none", *extra])


EMAILS = [f"customer.{i}@example.com" for i in range(ROWS)]
PHONES = 4155550100 + np.arange(ROWS)  # North American numbers, read as int64
CARDS = [card_number(f"411111111111{i:03d}") for i in range(ROWS)]


@pytest.mark.parametrize(
    ("column", "values", "kind"),
    [("email", EMAILS, "email addresses"), ("phone", PHONES, "phone numbers"), ("card", CARDS, "payment card")],
)
def test_a_personal_data_column_is_refused_with_one_line_naming_it(
    column: str, values: Sequence[object], kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = digits_with(tmp_path, **{column: values}), tmp_path / "bundle"

    code = train(data, out)

    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert code == EXIT_USER_ERROR
    assert lines[-1].startswith(f"training: error: column {column!r} looks like personal data: ")
    assert kind in lines[-1]  # before the non-numeric refusal an email column would otherwise get
    for way in (f"--exclude {column}", f"--mask {column}", f"--allow-column {column}"):
        assert way in lines[-1]
    assert str(values[0]) not in stderr  # the job's log quotes no value of the column
    assert not out.exists()


def test_an_allowed_column_trains_and_the_card_records_it(tmp_path: Path) -> None:
    data, out = digits_with(tmp_path, phone=PHONES, email=EMAILS), tmp_path / "bundle"

    code = train(data, out, "--allow-column", "phone", "--exclude", "email")

    card = json.loads((out / "model.json").read_text())
    assert code == 0
    assert "phone" in card["input"]["feature_names"]
    assert card["training"]["privacy"] == {"excluded": ["email"], "masked": [], "allowed": ["phone"]}


def test_a_masked_column_reaches_neither_model_nor_card_as_raw_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The masked column is the target here: its hashes become the model's labels, served by GET /model.
    owners = [f"team.{i % 3}@example.com" for i in range(ROWS)]
    data, out = digits_with(tmp_path, owner=owners), tmp_path / "bundle"
    monkeypatch.setenv(MASK_KEY_ENV, KEY)

    code = train(data, out, "--target", "owner", "--exclude", "label", "--mask", "owner")

    assert code == 0
    card = json.loads((out / "model.json").read_text())
    assert card["labels"] == sorted(expected_hash(f"team.{i}@example.com") for i in range(3))
    assert card["training"]["privacy"] == {"excluded": ["label"], "masked": ["owner"], "allowed": []}
    bundle = b"".join(path.read_bytes() for path in out.iterdir())
    assert b"example.com" not in bundle and KEY.encode() not in bundle


def test_mask_without_a_key_is_refused_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(MASK_KEY_ENV, raising=False)
    data, out = digits_with(tmp_path, email=EMAILS), tmp_path / "bundle"

    code = train(data, out, "--mask", "email")

    lines = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USER_ERROR
    assert lines[-1] == (
        f"training: error: --mask email: no masking key; set {MASK_KEY_ENV} to a secret of at least 16 characters, "
        "or pass --mask-key-secret with a Secrets Manager secret's ARN"
    )
    assert not out.exists()


def test_protect_hashes_a_masked_feature_and_keeps_missing_values_missing() -> None:
    table = pd.DataFrame({"email": ["a@example.com", None, "a@example.com"], "phone": [4155550100.0, np.nan, 1.0]})
    config = TrainConfig(target="phone", mask=("email", "phone"))

    masked = protect(table, config, {MASK_KEY_ENV: KEY})

    assert masked["email"].tolist()[0] == masked["email"].tolist()[2] == expected_hash("a@example.com")
    assert masked["phone"].tolist()[0] == expected_hash("4155550100")  # whole floats hash as their digits
    assert masked["email"].isna().tolist() == [False, True, False]
    assert table["email"].tolist()[0] == "a@example.com"  # the caller's table is left as it was


@pytest.mark.parametrize(
    ("settings", "environ", "error", "message"),
    [
        ({"mask": ("nope",)}, {MASK_KEY_ENV: KEY}, ConfigError, "--mask: no column named 'nope'"),
        ({"allow_column": ("email",), "exclude": ("email",)}, {}, ConfigError, "also in --exclude"),
        ({"mask": ("email",), "allow_column": ("email",)}, {MASK_KEY_ENV: KEY}, ConfigError, "pick one"),
        ({"mask": ("email",)}, {MASK_KEY_ENV: "short"}, ConfigError, "has 5 bytes; use at least 16"),
        ({"mask_key_secret": "arn:aws:secretsmanager:x"}, {}, ConfigError, "no column to mask"),
        ({"features": ("x",)}, {}, DataError, "column 'email' looks like personal data"),  # the target is scanned
    ],
)
def test_protect_refuses_settings_it_cannot_honour(
    settings: dict[str, object], environ: dict[str, str], error: type[Exception], message: str
) -> None:
    table = pd.DataFrame({"email": EMAILS[:10], "x": range(10)})
    config = TrainConfig(target="email", **settings)  # type: ignore[arg-type]

    with pytest.raises(error, match=message):
        protect(table.drop(columns=list(config.exclude)), config, environ)


def test_the_refusal_names_every_personal_column_in_one_line() -> None:
    table = pd.DataFrame({"email": EMAILS, "phone": PHONES, "x": range(ROWS), "y": [0, 1] * (ROWS // 2)})

    with pytest.raises(DataError) as refused:
        protect(table, TrainConfig(target="y"), {})

    message = str(refused.value)
    assert message.startswith("column 'email' looks like personal data: 120 of 120 sampled values look like email")
    assert "(so do 'phone');" in message and "\n" not in message
