"""What the job takes as a number: finite values whose float32 square is finite, and the refusals of the rest."""

import numpy as np
import pandas as pd

from training.data.tables import DataError

# The model trains and serves in float32, where a value's square must stay finite (variances, squared errors).
MAX_MAGNITUDE = float(np.sqrt(np.finfo(np.float32).max))  # ~1.8e19
QUOTED_CHARACTERS = 40  # a longer value is cut in a message: one readable line, even for a 5000-digit "number"


def check_magnitude(values: np.ndarray, what: str, fix: str) -> None:
    """Refuse finite values whose float32 square overflows (NaN, for missing values, passes)."""
    beyond = np.abs(values) > MAX_MAGNITUDE
    if beyond.any():
        raise too_large(what, float(values[np.flatnonzero(beyond)[0]]), fix)


def too_large(what: str, example: object, fix: str) -> DataError:
    shown = f"{example:g}" if isinstance(example, float) else quote(example)
    return DataError(
        f"{what} holds values beyond ±{MAX_MAGNITUDE:.2g} (e.g. {shown}), too large for float32 training and "
        f"serving; {fix}"
    )


def feature_not_numbers(name: str, column: pd.Series) -> DataError:
    """The refusal of a feature column pandas could not read as numbers, quoting the value that is not one.

    Whole numbers beyond 64 bits make such a column too (pandas keeps them as Python ints): too large.
    """
    example = first_non_number(column)
    if isinstance(example, int) and abs(example) > MAX_MAGNITUDE:
        return too_large(f"feature column {name!r}", example, f"rescale it or pass --exclude {name}")
    return DataError(
        f"feature column {name!r} is not numeric (e.g. {quote(example)}); encode it as numbers, pass "
        f"--categorical {name} to treat its values as categories, or pass --exclude {name}"
    )


def first_non_number(column: pd.Series) -> object:
    """The first value that is not a number, else the first one too large for float32 training, else the first."""
    values = column.dropna()
    if values.empty:
        return None
    try:
        parsed = pd.to_numeric(values, errors="coerce")
    except (TypeError, ValueError, OverflowError):  # lists, dicts: nothing in this column is a number
        return values.iloc[0]
    for suspect in (parsed.isna(), parsed.abs() > MAX_MAGNITUDE):
        if suspect.any():
            return values[suspect].iloc[0]
    return values.iloc[0]


def quote(value: object) -> str:
    """repr(value), cut to QUOTED_CHARACTERS."""
    try:
        shown = repr(value)
    except ValueError:  # an int of more digits than Python converts to text (sys.get_int_max_str_digits)
        return "a number of thousands of digits"
    return shown if len(shown) <= QUOTED_CHARACTERS else f"{shown[:QUOTED_CHARACTERS]}… ({len(shown)} characters)"
