"""One cold start: a fresh process that imports, loads and answers events/predict.json, then exits.

serving_cold runs it once per contender and round, as a script (never `-m`, whose runpy would add
imports): `python -S benchmarks/cold_start.py CONTENDER --function DIR --layer DIR [--runtime DIR]
--event FILE [--state FILE --hidden 128,128]`; as_built runs it in the rehearsal root the same way.
Each contender imports only what it would in a real handler, in the order one would: this module
imports nothing at its top but json and sys (both loaded at start-up anyway), so the figures are the
contenders' own.
  ours               the function's lambda_handler, from its build folder and the layer;
  bare               numpy + onnxruntime, the floor for any onnxruntime handler;
  bare + powertools  bare plus `import aws_lambda_powertools`, the floor for a function that uses it;
  naive              torch.load of a state dict into benchmarks.classifier.Classifier, then model(x)
                     (run without -S: PyTorch from the virtual environment).
"""

import json
import sys


class Context:
    """The fields of Lambda's context object that the function (powertools' Logger) reads.

    Duck-typed: importing powertools' LambdaContext would add to the cold start being measured.
    """

    function_name, function_version, memory_limit_in_mb, aws_request_id = "PredictFunction", "$LATEST", 1024, "id"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:PredictFunction"


def ours(options: dict[str, str]) -> None:
    sys.path[:0] = [options["--function"], options["--layer"]]
    if "--runtime" in options:  # boto3 and its dependencies, as Lambda's runtime ships them
        sys.path.append(options["--runtime"])
    import app  # after sys.path holds the function and layer

    with open(options["--event"]) as file:  # noqa: PTH123 (pathlib is not loaded yet; json and sys are)
        event = json.loads(file.read())
    response = app.lambda_handler(event, Context())  # type: ignore[arg-type]  # duck-typed
    assert response["statusCode"] == 200, response


def bare(options: dict[str, str], powertools: bool = False) -> None:
    sys.path[:0] = [options["--layer"]]
    if "--runtime" in options:  # boto3 and its dependencies, as Lambda's runtime ships them
        sys.path.append(options["--runtime"])
    import numpy as np
    import onnxruntime as ort

    if powertools:
        import aws_lambda_powertools  # noqa: F401 (what importing the package alone costs)
    with open(options["--event"]) as file:  # noqa: PTH123
        event = json.loads(file.read())
    features = np.asarray(json.loads(event["body"])["instances"], dtype=np.float32)
    model = options["--function"] + "/model/model.onnx"
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"features": features})
    print(json.dumps({"predictions": probabilities.argmax(axis=1).tolist(), "probabilities": probabilities.tolist()}))


def naive(options: dict[str, str]) -> None:
    sys.path.insert(0, __file__.rsplit("/", 2)[0])  # the checkout, for benchmarks.classifier
    import torch

    from benchmarks.classifier import N_FEATURES, Classifier  # imports torch only

    hidden = tuple(int(size) for size in options["--hidden"].split(","))
    model = Classifier(torch.zeros(N_FEATURES), torch.ones(N_FEATURES), hidden)
    model.load_state_dict(torch.load(options["--state"]))
    model.eval()
    with open(options["--event"]) as file:  # noqa: PTH123
        event = json.loads(file.read())
    with torch.no_grad():
        probabilities = model(torch.tensor(json.loads(event["body"])["instances"], dtype=torch.float32))
    print(json.dumps({"predictions": probabilities.argmax(dim=1).tolist(), "probabilities": probabilities.tolist()}))


USAGE = (
    "usage: cold_start.py ours|bare|bare+powertools|naive --function DIR --layer DIR --event FILE [--OPTION VALUE]..."
)


def main(argv: list[str]) -> None:
    if not argv or len(argv) % 2 == 0:
        raise SystemExit(USAGE)
    contender, options = argv[0], dict(zip(argv[1::2], argv[2::2], strict=True))
    if contender == "ours":
        ours(options)
    elif contender in ("bare", "bare+powertools"):
        bare(options, powertools=contender == "bare+powertools")
    elif contender == "naive":
        naive(options)
    else:
        raise SystemExit(f"cold_start: unknown contender {contender!r}; one of ours, bare, bare+powertools, naive")


if __name__ == "__main__":
    main(sys.argv[1:])
