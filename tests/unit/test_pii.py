"""The personal-data scan: each documented kind is recognised, and ordinary columns are not."""

import time

import numpy as np
import pandas as pd
import pytest

from training.data.pii import SAMPLE_VALUES, luhn, scan

ROWS = 200


def with_luhn_digit(base: str) -> str:
    return next(base + digit for digit in "0123456789" if luhn(base + digit))


def nir(i: int) -> str:
    number = f"1{80 + i % 20:02d}{1 + i % 12:02d}75{i % 1000:03d}{(7 * i) % 1000:03d}"
    return f"{number}{97 - int(number) % 97:02d}"


PERSONAL = {
    "email addresses": [f"user.{i}@example.com" for i in range(ROWS)],
    "IP addresses": [f"10.0.{i // 256}.{i % 256}" if i % 2 else f"2001:db8::{i:x}" for i in range(ROWS)],
    "payment card numbers": [with_luhn_digit(f"4000{i:011d}") for i in range(ROWS)],
    "US social security numbers": [f"{100 + i % 500:03d}-{10 + i % 80:02d}-{1000 + i:04d}" for i in range(ROWS)],
    "UK national insurance numbers": [f"AB {i % 100:02d} {i // 100:02d} 56 C" for i in range(ROWS)],
    "FR INSEE numbers": [nir(i) for i in range(ROWS)],
    "phone numbers": [f"+44 20 7946 {i:04d}" if i % 2 else f"(415) 555-{i:04d}" for i in range(ROWS)],
}
ORDINARY = {
    "pixels": np.arange(ROWS) % 17,
    "words": ["dark", "light"] * (ROWS // 2),
    "dates": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(ROWS)],
    "decimals": [f"{i}.{i * 7919 % 100000:05d}" for i in range(ROWS)],
    "versions": [f"1.{i % 10}.{i}" for i in range(ROWS)],
    "timestamps": 1_700_000_000 + np.arange(ROWS) * 3600,
    "amounts": np.linspace(1e9, 5e9, ROWS),  # large, but not whole numbers
    "random_ids": np.random.default_rng(0).integers(10**15, 10**16, ROWS),  # Luhn passes one in ten
}


@pytest.mark.parametrize("kind", sorted(PERSONAL))
def test_scan_recognises_each_documented_kind(kind: str) -> None:
    table = pd.DataFrame({"column": PERSONAL[kind]})

    (finding,) = scan(table, ["column"])

    assert (finding.column, finding.kind, finding.matched, finding.sampled) == ("column", kind, ROWS, ROWS)


def test_scan_recognises_phone_and_card_numbers_stored_as_whole_numbers() -> None:
    phones = 4155550100 + np.arange(ROWS)
    cards = [int(with_luhn_digit(f"5500{i:011d}")) for i in range(ROWS)]
    table = pd.DataFrame({"phone": phones, "card": cards, "phone_with_gaps": np.where(phones % 3, phones, np.nan)})

    findings = scan(table, ["phone", "card", "phone_with_gaps"])

    assert [(f.column, f.kind) for f in findings] == [
        ("phone", "phone numbers"),
        ("card", "payment card numbers"),
        ("phone_with_gaps", "phone numbers"),  # read as floats because of the gaps: still whole numbers
    ]


def test_scan_leaves_ordinary_columns_alone() -> None:
    table = pd.DataFrame(ORDINARY)

    assert scan(table, list(table.columns)) == []


def test_scan_finds_addresses_inside_free_text_above_the_threshold_share() -> None:
    notes = [f"call back, wrote from ann{i}@example.org" if i % 3 == 0 else "no contact" for i in range(ROWS)]
    rare = [f"ann{i}@example.org" if i % 10 == 0 else "no contact" for i in range(ROWS)]

    findings = scan(pd.DataFrame({"notes": notes, "rare": rare}), ["notes", "rare"])

    assert [(f.column, f.kind) for f in findings] == [("notes", "email addresses")]  # 34% counts; 10% does not


def test_scan_samples_a_large_column() -> None:
    table = pd.DataFrame({"email": [f"u{i}@example.com" for i in range(5 * SAMPLE_VALUES)]})

    (finding,) = scan(table, ["email"])

    assert finding.sampled == SAMPLE_VALUES


def test_scan_of_long_free_text_takes_linear_time() -> None:
    # A regular-expression search for addresses over a long run of word characters retries at each of them.
    table = pd.DataFrame({"notes": ["x" * 50_000 + "@" + "y" * 50_000] * 50 + ["x" * 100_000] * 50})

    started = time.perf_counter()
    assert scan(table, ["notes"]) == []
    assert time.perf_counter() - started < 5  # about 0.1 s; a quadratic search takes hours
