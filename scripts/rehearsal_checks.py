"""What `make rehearse` demands of each architecture's build and answers (scripts/rehearse.py runs them)."""

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

from scripts.package_size import folder_size, zipped_size

ROOT = Path(__file__).resolve().parents[1]
UNZIPPED_LIMIT = 262_144_000  # 250 MB: the function and all its layers, unzipped
ZIPPED_LIMIT = 52_428_800  # 50 MB: each zip uploaded directly to Lambda, not through S3
MB = 1e6


def load_pretraffic_hook() -> Any:
    """functions/pretraffic/hook.py: its compare() is the one check that a version answers its card's sample."""
    spec = importlib.util.spec_from_file_location("pretraffic_hook", ROOT / "functions" / "pretraffic" / "hook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RehearsalError(Exception):
    """One architecture failed; str() is the one line to print."""

    def __init__(self, arch: str, message: str) -> None:
        super().__init__(f"{arch}: {message.splitlines()[0] if message else 'failed'}")


def tiny_bundle(folder: Path) -> Path:
    from tests.fixtures.make_tiny_bundle import make_tiny_bundle  # onnx: only when no --bundle is given

    return make_tiny_bundle(folder, n_features=64)  # digits-shaped: events/predict.json fits it


def sizes(arch: str, built: Path) -> str:
    """Unzipped against the 250 MB that fails a deployment; zipped against the 50 MB of a direct upload (SAM
    uploads through S3, where a bigger zip is fine, so that one is only shown)."""
    function, layer = built / "PredictFunction", built / "OnnxRuntimeLayer"
    unzipped = folder_size(function) + folder_size(layer)
    zipped = {"function": zipped_size(function), "layer": zipped_size(layer)}
    over = [name for name, size in zipped.items() if size >= ZIPPED_LIMIT]
    line = (
        f"built {unzipped / MB:.1f} MB unzipped (Lambda's limit 250 MB); zipped: function "
        f"{zipped['function'] / MB:.2f} MB, layer {zipped['layer'] / MB:.1f} MB (direct upload 50 MB each"
        f"{'; over: ' + ', '.join(over) + ', through S3 only' if over else ''})"
    )
    if unzipped >= UNZIPPED_LIMIT:
        raise RehearsalError(arch, f"too big for Lambda: {line}")
    return line


def events(card: dict[str, Any]) -> dict[str, Any]:
    """events/predict.json and events/health.json, and the predict event carrying the card's sample rows."""
    predict = json.loads((ROOT / "events/predict.json").read_text())
    sample = copy.deepcopy(predict)
    sample["body"] = json.dumps({"instances": card["sample"]["instances"]})
    sample["headers"].pop("content-length", None)
    return {"predict": predict, "sample": sample, "health": json.loads((ROOT / "events/health.json").read_text())}


def interpreter(arch: str, report: dict[str, Any], runtime: str) -> str:
    if "import_error" in report:
        raise RehearsalError(arch, f"the built handler cannot be imported: {report['import_error']}")
    if f"python{report['python'].rsplit('.', 1)[0]}" != runtime:
        raise RehearsalError(arch, f"the root's Python {report['python']} is not the template's {runtime}")
    if report["outside"]:
        raise RehearsalError(arch, f"the handler imported from outside the build: {', '.join(report['outside'])}")
    if report["uncompiled"]:
        modules = ", ".join(report["uncompiled"][:5]) + (", ..." if len(report["uncompiled"]) > 5 else "")
        raise RehearsalError(arch, f"no {runtime} bytecode for {modules}: Lambda compiles them at every cold start")
    return (
        f"  Python {report['python']} on {report['machine']} ({runtime}), only /var/task and /opt on sys.path, "
        "every module from their bytecode"
    )


def body(arch: str, answer: dict[str, Any], route: str, status: int) -> dict[str, Any]:
    if answer.get("statusCode") != status:
        raise RehearsalError(arch, f"{route} answered {answer.get('statusCode')}, not {status}: {answer.get('body')}")
    parsed: dict[str, Any] = json.loads(answer["body"])
    return parsed


def healthy(arch: str, report: dict[str, Any], card: dict[str, Any]) -> list[str]:
    predict, sample, health = report["answers"]
    predicted = body(arch, predict, "POST /predict (events/predict.json)", 200)
    outputs = body(arch, sample, "POST /predict (the card's sample)", 200)
    hook = load_pretraffic_hook()  # what CodeDeploy's pre-traffic check will demand of this build on AWS
    try:
        hook.compare(card, outputs)
    except hook.CheckFailed as failure:
        raise RehearsalError(arch, f"the card's sample rows: {failure}") from None
    status = body(arch, health, "GET /health", 200)
    if status.get("status") != "ready":
        raise RehearsalError(arch, f"GET /health says {status}")
    return [
        f"  POST /predict events/predict.json: 200 {predicted['predictions']}",
        f"  POST /predict the card's {len(card['sample']['instances'])} sample rows: 200, the card's outputs, labels "
        f"and version (the pre-traffic check's comparison, tolerance {hook.SAMPLE_TOLERANCE:g}, relative above 1)",
        f"  GET /health: 200 {status['status']}, model {status['model']['name']} {status['model']['version']}",
    ]


def tampered(arch: str, report: dict[str, Any]) -> str:
    if "import_error" in report:
        raise RehearsalError(arch, f"the built handler cannot be imported: {report['import_error']}")
    (answer,) = report["answers"]
    error = body(arch, answer, "POST /predict with model.onnx changed", 503)["error"]
    if error.get("code") != "model_unavailable":
        raise RehearsalError(arch, f"a changed model.onnx answered 503 {error}, not model_unavailable")
    return f"  POST /predict with one byte of model.onnx changed: 503 {error['code']}"
