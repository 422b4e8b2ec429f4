"""Predictions written as they arrive, one line per input row in input order: JSONL or CSV.

JSONL: {"prediction": ..., "probabilities": {label: p, ...}} (the probabilities for classifiers only).
CSV: a `prediction` column (prediction_0, prediction_1, ... for a model of several outputs), then one
`probability_LABEL` column per label for classifiers.
"""

import csv
import json
from pathlib import Path
from typing import Any, TextIO

from sml.errors import UserError

OUTPUT_FORMATS = ("jsonl", "csv")
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def output_format(out: Path | None, flag: str | None) -> str:
    """--output-format, else the --out file's extension, else JSONL (on stdout)."""
    if flag:
        return flag
    if out is None:
        return "jsonl"
    found = EXTENSIONS.get(out.suffix.lower())
    if found is None:
        raise UserError(
            f"--out {out}: name a .jsonl or .csv file (one line per row, written as answers arrive), "
            "or pass --output-format jsonl|csv"
        )
    return found


class Writer:
    """Writes the answer to each batch of rows, in the order the batches are given."""

    def __init__(self, stream: TextIO, kind: str) -> None:
        self.stream = stream
        self.kind = kind
        self.csv = csv.writer(stream) if kind == "csv" else None
        self.header_written = False

    def write(self, answer: dict[str, Any]) -> None:
        """One line per row of a POST /predict answer: predictions, and probabilities by label if given."""
        predictions = answer["predictions"]
        labels = answer.get("labels") or []
        probabilities = answer.get("probabilities")
        for index, prediction in enumerate(predictions):
            scores = probabilities[index] if probabilities is not None else None
            if self.csv is None:
                self.stream.write(json.dumps(json_record(prediction, labels, scores)) + "\n")
                continue
            if not self.header_written:
                self.csv.writerow(csv_header(prediction, labels, scores))
                self.header_written = True
            values = prediction if isinstance(prediction, list) else [prediction]
            self.csv.writerow([*values, *(scores or [])])


def json_record(prediction: Any, labels: list[str], scores: list[float] | None) -> dict[str, Any]:
    record: dict[str, Any] = {"prediction": prediction}
    if scores is not None:
        record["probabilities"] = dict(zip(labels, scores, strict=True)) if labels else scores
    return record


def csv_header(prediction: Any, labels: list[str], scores: list[float] | None) -> list[str]:
    columns = [f"prediction_{i}" for i in range(len(prediction))] if isinstance(prediction, list) else ["prediction"]
    if scores is not None:
        names = labels or [str(i) for i in range(len(scores))]
        columns += [f"probability_{name}" for name in names]
    return columns
