"""Warm latency of the other row forms: objects keyed by feature name, and a model with categorical inputs.

serving_rows runs it in a fresh process with the function's Lambda environment, as serving.py runs warm.py:
`python [-S] -m benchmarks.warm_rows --function DIR --layer DIR --runtime DIR --event FILE --data CSV
--out FILE --n1 N --n64 N --warmup N`. It writes {batch: {call: {"p50": us, "p99": us}}} to --out: the
function's own work (predict.py) for rows as lists in card order and as objects, and session.run alone.
"""

import csv
import json
import sys
from typing import Any

from benchmarks.warm import Calls, measure_batches, write_measured
from sml.endpoint.rows import CSV_MISSING


def card_rows(path: str, features: list[dict[str, Any]]) -> list[list[Any]]:
    """The CSV's rows as POST /predict takes them, in card order; rows missing a number are left out.

    Missing cells are those `sml endpoint predict` (and pandas, which trained the model) reads as missing."""
    rows = []
    with open(path, newline="") as file:  # noqa: PTH123
        for record in csv.DictReader(file):
            row: list[Any] = []
            for feature in features:
                text = record[feature["name"]]
                if feature["kind"] == "categorical":
                    row.append(None if text in CSV_MISSING else text)
                elif text in CSV_MISSING:
                    break
                else:
                    row.append(float(text))
            else:
                rows.append(row)
    return rows


def measure(options: dict[str, str]) -> dict[int, dict[str, dict[str, float]]]:
    sys.path[:0] = [options["--function"], options["--layer"]]
    sys.path.append(options["--runtime"])
    import app  # after sys.path holds the function and layer, as every import below
    import numpy as np
    import predict

    model = app.MODEL
    assert model is not None, app.LOAD_ERROR
    names = model.card["input"]["feature_names"]
    features = model.card["input"].get("features") or [{"name": name, "kind": "numeric"} for name in names]
    rows = card_rows(options["--data"], features)
    with open(options["--event"]) as file:  # noqa: PTH123
        event = json.loads(file.read())

    def calls_for(batch: int) -> Calls:
        positional = (rows * (batch // len(rows) + 1))[:batch]
        named = [dict(zip(names, row, strict=True)) for row in positional]
        requests = {form: dict(event, body=json.dumps({"instances": body})) for form, body in
                    (("positional", positional), ("named", named))}  # fmt: skip
        if model.schema is None:
            feeds = {"features": np.asarray(positional, dtype=np.float32)}
        else:
            from records import parse_rows

            numbers, categories = parse_rows(None, positional, model.schema, batch)
            feeds = {"features": numbers, "categories": categories}

        def own(form: str) -> None:
            request = requests[form]
            predict.serialize(predict.predict(model, request, app.MAX_BATCH, app.ROWS_FIT).answer)

        def run() -> None:
            model.session.run([model.output_name], feeds)

        return {"own positional": lambda: own("positional"), "own named": lambda: own("named"), "run": run}

    return measure_batches(calls_for, options)


if __name__ == "__main__":
    write_measured(measure)
