"""Personal data in the training table, recognised before anything trains on it.

Text columns and identifier-like numeric columns (whole numbers of 10 digits or more) are scanned. A value
counts as the first of these kinds it matches:

- email: an address such as name@example.com anywhere in the value;
- IP address: IPv4 or IPv6, as Python's `ipaddress` reads it;
- US SSN: 123-45-6789 (area not 000, 666 or 9xx; group not 00; serial not 0000);
- UK NINO: AB 12 34 56 C (prefix letters as HMRC issues them, spaces optional);
- FR INSEE (NIR): 15 digits, sex 1-2, month 01-12 or 20-99, department (2A/2B for Corsica), key 97 - n mod 97;
- payment card: 13-19 digits (spaces or dashes between groups allowed) that pass the Luhn check;
- phone: 9-15 digits after a leading + or split into three or more groups by spaces, dashes, dots or
  parentheses (+44 20 7946 0958, (415) 555-0123, 06 12 34 56 78); as bare digits (whole-number columns too),
  a North American number: 10 digits, or 11 starting with 1, whose area code and exchange start with 2-9.

A column is personal data when at least SHARE of a seeded sample of its non-missing values (SAMPLE_VALUES at
most) are of one kind. This is a net for the common shapes, not a proof of absence: names, addresses and
free-form identifiers pass it, and `--exclude` remains the way to keep a column out.
"""

import ipaddress
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

SHARE = 0.3
SAMPLE_VALUES = 1000
MAX_AT_SIGNS = 5  # in one value; free text with more is checked around its first ones
MIN_IDENTIFIER = 10**9  # whole numbers below 10 digits match no kind: counts, codes and pixels are not scanned

EMAIL = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
CARD = re.compile(r"\d(?:[ -]?\d){12,18}")
SSN = re.compile(r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}")
NINO = re.compile(r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]")
NIR = re.compile(r"[12]\d{2}(?:0[1-9]|1[0-2]|[2-9]\d)(?:\d{2}|2[AB])\d{6}\d{2}")
PHONE = re.compile(r"\+?[\d\s().-]{9,24}")
NANP = re.compile(r"1?[2-9]\d{2}[2-9]\d{6}")
KINDS = ("email addresses", "IP addresses", "US social security numbers", "UK national insurance numbers",
         "FR INSEE numbers", "payment card numbers", "phone numbers")  # fmt: skip


@dataclass(frozen=True)
class Finding:
    column: str
    kind: str  # one of KINDS
    matched: int
    sampled: int

    def describe(self) -> str:
        return f"{self.matched} of {self.sampled} sampled values look like {self.kind}"


def scan(table: pd.DataFrame, columns: list[str], seed: int = 0) -> list[Finding]:
    """The columns among `columns` that hold personal data, in their order."""
    findings = []
    for name in columns:
        values = scanned_values(table[name], seed)
        if not values:
            continue
        counts = np.bincount([kind_of(value) for value in values], minlength=len(KINDS) + 1)[: len(KINDS)]
        if counts.max() >= SHARE * len(values):
            findings.append(Finding(name, KINDS[int(counts.argmax())], int(counts.max()), len(values)))
    return findings


def scanned_values(column: pd.Series, seed: int) -> list[str]:
    """A sample of the column's values as text; [] for a column no kind can match (floats, small numbers)."""
    present = column.dropna()
    if len(present) > SAMPLE_VALUES:
        present = present.sample(SAMPLE_VALUES, random_state=seed)
    if pd.api.types.is_bool_dtype(present) or pd.api.types.is_complex_dtype(present):
        return []
    if pd.api.types.is_numeric_dtype(present):
        numbers = present.to_numpy(dtype=np.float64)
        whole = bool(np.isfinite(numbers).all()) and bool(np.all(np.mod(numbers, 1) == 0))
        if not whole or not np.any(np.abs(numbers) >= MIN_IDENTIFIER):
            return []
        return [str(int(value)) for value in present.tolist()]  # exact for int64
    return [text for text in map(as_text, present.tolist()) if text is not None]


def as_text(value: object) -> str | None:
    """A text column's value as text: strings, and whole numbers of up to 20 digits (an identifier's length)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**20:
        return str(value)  # a Python int of thousands of digits would not even convert (sys.int_info)
    return None


def kind_of(value: str) -> int:
    """The index in KINDS of the first kind `value` is, or len(KINDS)."""
    checks = (
        lambda: has_email(value),
        lambda: is_ip(value),
        lambda: SSN.fullmatch(value) is not None,
        lambda: NINO.fullmatch(value.upper()) is not None,
        lambda: is_nir(value.replace(" ", "").upper()),
        lambda: CARD.fullmatch(value) is not None and luhn(re.sub(r"\D", "", value)),
        lambda: is_phone(value),
    )
    return next((index for index, check in enumerate(checks) if check()), len(KINDS))


def has_email(value: str) -> bool:
    """An address around one of the first few "@": searched in a window of an address's longest parts (RFC 5321),
    because a search over a whole long text would retry at each of its characters."""
    at = -1
    for _ in range(MAX_AT_SIGNS):
        at = value.find("@", at + 1)
        if at < 0:
            return False
        if EMAIL.search(value[max(0, at - 64) : at + 256]):
            return True
    return False


def is_ip(value: str) -> bool:
    if "." not in value and ":" not in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def luhn(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        doubled = int(digit) * (2 if position % 2 else 1)
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def is_nir(value: str) -> bool:
    if not NIR.fullmatch(value):
        return False
    # Corsica's departments 2A and 2B count as 19 and 18 in the key.
    number = int(value[:13].replace("2A", "19").replace("2B", "18"))
    return int(value[13:]) == 97 - number % 97


def is_phone(value: str) -> bool:
    if NANP.fullmatch(value):
        return True
    if not PHONE.fullmatch(value):
        return False
    digits = re.sub(r"\D", "", value)
    groups = [group for group in re.split(r"[\s().-]+", value.lstrip("+")) if group]
    return 9 <= len(digits) <= 15 and (value.startswith("+") or len(groups) >= 3)
