"""The rows of an input file, read as a stream (CSV, JSONL, Parquet) so a file larger than memory can be scored,
and grouped into requests the function accepts.

Cells that are numbers are sent as numbers, others as text. A header row (CSV) or column names (Parquet) pick
and order the columns by the model card's feature names; a categorical feature's cells (the card's
`input.features`) are sent as the strings training saw: a missing cell as null, an integer code as "3".
"""

import csv
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sml.errors import UserError

FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}
MAX_REQUEST_BYTES = 5 * 1024 * 1024  # Lambda takes 6 MB per event; the event wraps the body with headers and context
PARQUET_BATCH_ROWS = 4096  # rows pyarrow decodes at a time
# The cells pandas' read_csv reads as missing (pandas._libs.parsers.STR_NA_VALUES), as the training job read
# its CSV; sml imports no pandas, so tests/aws/test_sml_endpoint.py holds this copy equal to pandas'.
CSV_MISSING = frozenset(("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                         "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"))  # fmt: skip


def input_format(path: Path) -> str:
    """csv, jsonl, json or parquet, by the file's extension; a UserError when there is no such file."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"--file {path}: name a .csv, .tsv, .jsonl, .parquet or .json file")
    if not path.is_file():
        raise UserError(f"--file {path} not found")
    return kind


def read_rows(path: Path, card: dict[str, Any]) -> Iterator[Any]:
    """The file's rows one at a time, in the shape the model takes (the card names its features and shape)."""
    kind = input_format(path)
    feature_names: list[str] = card.get("input", {}).get("feature_names") or []
    if kind == "json":
        return json_rows(path)
    if kind == "jsonl":
        return jsonl_rows(path)
    tables = parquet_rows(path, feature_names) if kind == "parquet" else csv_rows(path, feature_names)
    vocabularies = categorical_vocabularies(card)
    if any(vocabulary is not None for vocabulary in vocabularies):
        return (
            as_categories(row, vocabularies, missing=CSV_MISSING if kind == "csv" else frozenset()) for row in tables
        )
    return shaped(tables, card)


def json_rows(path: Path) -> Iterator[Any]:
    """A JSON document (a list of rows, or {"instances": [...]}) is read whole: use JSONL for large files."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise UserError(f"--file {path} is not valid JSON: {error}") from None
    rows = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(rows, list) or not rows:
        raise UserError(f'--file {path}: expected a non-empty list of rows, or {{"instances": [...]}}')
    return iter(rows)


def jsonl_rows(path: Path) -> Iterator[Any]:
    """One row (a JSON list) per line; blank lines are skipped."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as error:
                raise UserError(f"--file {path} line {number} is not valid JSON: {error}") from None


def csv_rows(path: Path, feature_names: list[str]) -> Iterator[list[Any]]:
    """Cells by row; a first row that names the model's features, or holds no number, is a header."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8", newline="") as file:
        reader = (row for row in csv.reader(file, delimiter=delimiter) if row)
        first = next(reader, None)
        if first is None:
            raise UserError(f"--file {path} holds no rows")
        header = first if is_header(first, feature_names) else None
        columns = pick_columns(path, header, feature_names) if header else list(range(len(first)))
        if header is None:
            yield [cell_value(cell) for cell in first]
        for number, row in enumerate(reader, start=2):
            try:
                yield [cell_value(row[index]) for index in columns]
            except IndexError:
                raise UserError(f"--file {path} row {number} has {len(row)} cells, fewer than the header") from None


def parquet_rows(path: Path, feature_names: list[str]) -> Iterator[list[Any]]:
    """Rows of a Parquet file, a batch of rows at a time (pyarrow's iter_batches)."""
    try:
        import pyarrow.parquet as parquet  # only Parquet input needs it
    except ImportError:
        raise UserError("reading Parquet needs pyarrow: pip install pyarrow") from None
    file = parquet.ParquetFile(path)
    names = list(file.schema_arrow.names)
    columns = [names[index] for index in pick_columns(path, names, feature_names)]
    for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
        values = [batch.column(name).to_pylist() for name in columns]
        yield from (list(row) for row in zip(*values, strict=True))


def pick_columns(path: Path, header: list[str], feature_names: list[str]) -> list[int]:
    """The header's columns in the model's feature order, when the model names its features; else all of them."""
    if not feature_names:
        return list(range(len(header)))
    missing = [name for name in feature_names if name not in header]
    if missing:
        raise UserError(f"--file {path} lacks columns the model needs: {', '.join(missing[:5])}")
    return [header.index(name) for name in feature_names]


def shaped(rows: Iterable[list[Any]], card: dict[str, Any]) -> Iterator[Any]:
    """Flat rows as the model's row shape: image-shaped models take [rows, C, H, W]; files hold them flat."""
    shape = card.get("input", {}).get("shape") or []
    row_shape = [size for size in shape[1:] if isinstance(size, int)]
    for row in rows:
        if len(shape) > 2 and len(row_shape) == len(shape) - 1 and math.prod(row_shape) == len(row):
            yield nest(row, row_shape)
        else:
            yield row


def nest(values: list[Any], shape: list[int]) -> list[Any]:
    """A flat row as nested lists of `shape` (row-major, like numpy's reshape)."""
    if len(shape) == 1:
        return values
    step = math.prod(shape[1:])
    return [nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def categorical_vocabularies(card: dict[str, Any]) -> list[set[str] | None]:
    """Per feature in row order: a categorical one's known values, None for a numeric one; [] without features."""
    features = card.get("input", {}).get("features")
    if not isinstance(features, list):
        return []
    return [set(f.get("values") or ()) if f.get("kind") == "categorical" else None for f in features]


def as_categories(row: list[Any], vocabularies: list[set[str] | None], missing: frozenset[str]) -> list[Any]:
    """The row with each categorical cell as the text training saw, or None where it is missing."""
    if len(row) != len(vocabularies):
        return row  # the function names the wrong row length
    return [cell if vocabulary is None else category_text(cell, vocabulary, missing)
            for cell, vocabulary in zip(row, vocabularies, strict=True)]  # fmt: skip


def category_text(cell: Any, vocabulary: set[str], missing: frozenset[str]) -> str | None:
    """A cell of a categorical column as training wrote it: a whole number without ".0", missing as None."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    text = cell if isinstance(cell, str) else str(cell)
    if text in missing:
        return None
    if text in vocabulary or isinstance(cell, bool):
        return text
    number = cell if isinstance(cell, int | float) else cell_value(text)
    if isinstance(number, int | float) and float(number).is_integer() and abs(number) < 2**53:
        return str(int(number))  # training wrote integer codes read as floats (a column with gaps) as "3"
    return text


def cell_value(text: str) -> float | str:
    """A number when the cell holds one, else its text."""
    try:
        return float(text)
    except ValueError:
        return text


def is_header(row: list[str], feature_names: list[str]) -> bool:
    """A row naming the model's features, or holding no number at all (a data row of text cells is unlikely)."""
    named = bool(feature_names) and set(feature_names) <= set(row)
    return named or not any(isinstance(cell_value(cell), float) for cell in row)


def batches(rows: Iterable[Any], max_rows: int, max_bytes: int = MAX_REQUEST_BYTES) -> Iterator[list[Any]]:
    """Consecutive slices of `rows` with at most `max_rows` rows and `max_bytes` of JSON each."""
    batch: list[Any] = []
    size = 0
    for number, row in enumerate(rows):
        row_bytes = len(json.dumps(row)) + 2
        if row_bytes > max_bytes:
            raise UserError(f"row {number} alone is {row_bytes} bytes of JSON, over the {max_bytes}-byte request limit")
        if batch and (len(batch) == max_rows or size + row_bytes > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_bytes
    if batch:
        yield batch
