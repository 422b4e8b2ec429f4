"""Warm latency: lambda_handler and its parts, timed round-robin in one process on the same inputs.

serving_warm runs it in a fresh process with the function's Lambda environment:
`python -S -m benchmarks.warm --function DIR --layer DIR --runtime DIR --event FILE --digits FILE
--out FILE --n1 N --n64 N --warmup N`. It writes {batch: {call: {"p50": us, "p99": us}}} to --out.
numpy, orjson and the function come from the function and layer folders, imported once sys.path
holds them, as in Lambda.
"""

import base64
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.cold_start import Context

Calls = dict[str, Callable[[], object]]


def percentiles(calls: Calls, n: int, warmup: int) -> dict[str, dict[str, float]]:
    """p50 and p99 of each call in microseconds.

    Round-robin, so the machine's load hits every contender alike, each round in a shuffled order, so none
    always runs right after another left the model's weights in cache; the first rounds warm up.
    """
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names, shuffler = list(calls), random.Random(0)
    for i in range(n + warmup):
        shuffler.shuffle(names)
        for name in names:
            started = time.perf_counter()
            calls[name]()
            if i >= warmup:
                samples[name].append(time.perf_counter() - started)
    ranked = {name: sorted(values) for name, values in samples.items()}
    return {name: {"p50": v[n // 2] * 1e6, "p99": v[int(n * 0.99)] * 1e6} for name, v in ranked.items()}


def v2_requests(event: dict[str, Any], name: str, features: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /v2/models/{name}/infer events for `features`: JSON tensors, and binary tensors both ways."""
    path = f"/v2/models/{name}/infer"
    base = dict(event, routeKey="POST /v2/models/{name}/infer", rawPath=path)
    shape = list(features.shape)
    tensor = {"name": "features", "datatype": "FP32", "shape": shape}
    json_body = json.dumps({"inputs": [tensor | {"data": features.tolist()}]})
    blob = features.astype("<f4").tobytes()
    header = json.dumps({"inputs": [tensor | {"parameters": {"binary_data_size": len(blob)}}],
                         "parameters": {"binary_data_output": True}}).encode()  # fmt: skip
    headers = dict(event["headers"], **{"content-type": "application/octet-stream",
                                        "inference-header-content-length": str(len(header))})  # fmt: skip
    binary = dict(base, headers=headers, body=base64.b64encode(header + blob).decode(), isBase64Encoded=True)
    return dict(base, body=json_body), binary


def measure(options: dict[str, str]) -> dict[int, dict[str, dict[str, float]]]:
    sys.path[:0] = [options["--function"], options["--layer"]]
    sys.path.append(options["--runtime"])
    import app  # after sys.path holds the function and layer, as every import below
    import numpy as np
    import orjson
    import predict
    from aws_lambda_powertools.metrics import MetricUnit

    context: Any = Context()  # duck-typed LambdaContext

    def observe(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # What powertools adds to each prediction: the Logger and Metrics wrappers, the correlation id and
        # the two metrics, as app.lambda_handler and app.answer_predict call them.
        app.logger.set_correlation_id(event["requestContext"]["requestId"])
        app.metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
        app.metrics.add_metric(name="ModelLatency", unit=MetricUnit.Milliseconds, value=0.1)
        return {}

    powertools = app.with_observability(observe)
    with open(options["--event"]) as file:  # noqa: PTH123
        event = json.loads(file.read())
    rows = np.loadtxt(options["--digits"], delimiter=",", skiprows=1, dtype=np.float32)[:, :-1]
    model = app.MODEL
    assert model is not None

    def calls_for(batch: int) -> Calls:
        # Floats, as tabular clients send them: the digits' pixel intensities (0 to 16) scaled to [0, 1].
        body = json.dumps({"instances": (rows[:batch] / 16).tolist()})
        request = dict(event, body=body)
        features = np.asarray(json.loads(body)["instances"], dtype=np.float32)
        labels = model.labels
        probabilities = model.predict(features)

        def handler() -> None:
            assert app.lambda_handler(request, context)["statusCode"] == 200

        def own() -> None:
            # The function's own work for POST /predict (predict.py): no routing, logs or metrics.
            predict.serialize(predict.predict(model, request, app.MAX_BATCH, app.ROWS_FIT).answer)

        def run() -> None:
            model.session.run(["probabilities"], {"features": features})

        def parse() -> Any:
            return np.asarray(orjson.loads(body)["instances"], dtype=np.float32)

        def write(scores: Any) -> None:
            predictions = [labels[i] for i in scores.argmax(axis=1).tolist()]
            answer = {"predictions": predictions, "probabilities": scores, "labels": labels, "model": {}}
            orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)

        def io() -> None:
            parse()
            write(probabilities)

        def minimal() -> None:
            # The floor for any handler: the same work in one call, with no checks, logs or metrics.
            (scores,) = model.session.run(["probabilities"], {"features": parse()})
            write(scores)

        def run_then_powertools() -> None:
            # In the function powertools flushes right after the model, which has just left the caches cold.
            run()
            powertools(request, context)

        v2_json, v2_binary = v2_requests(event, model.name, rows[:batch] / 16)

        def v2_json_handler() -> None:
            assert app.lambda_handler(v2_json, context)["statusCode"] == 200

        def v2_binary_handler() -> None:
            assert app.lambda_handler(v2_binary, context)["statusCode"] == 200

        calls: Calls = {"handler": handler, "own": own, "run": run, "io": io, "minimal": minimal}
        calls |= {"v2 json": v2_json_handler, "v2 binary": v2_binary_handler}
        calls["run + powertools"] = run_then_powertools
        return calls

    return measure_batches(calls_for, options)


def measure_batches(
    calls_for: Callable[[int], Calls], options: dict[str, str]
) -> dict[int, dict[str, dict[str, float]]]:
    """Every call's percentiles at batch 1 and 64, over --n1 and --n64 rounds after --warmup discarded ones."""
    warmup = int(options["--warmup"])
    return {
        batch: percentiles(calls_for(batch), int(options[flag]), warmup) for batch, flag in ((1, "--n1"), (64, "--n64"))
    }


def write_measured(measure: Callable[[dict[str, str]], dict[int, dict[str, dict[str, float]]]]) -> None:
    """Run `measure` with this process's `--flag value` arguments and write its figures as JSON to --out."""
    arguments = sys.argv[1:]
    options = dict(zip(arguments[::2], arguments[1::2], strict=True))
    with open(options["--out"], "w") as out:  # noqa: PTH123
        out.write(json.dumps(measure(options)))


if __name__ == "__main__":
    write_measured(measure)
