"""Every broken bundle of the corpus is refused alike by the function (503 on every route, the reason on
/health, never an exception) and by `sml promote` (exit 2, one line, the promoted bundle untouched)."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from sml.cli import main
from tests.fixtures.broken_bundles import BROKEN_BUNDLES, PROMOTE_REASONS
from tests.projects import copy_function

ROUTES = ("health.json", "model.json", "openapi.json", "predict.json")
# Refusals record no metrics; app.py silences that warning, but pytest resets filters per test.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (hidden ones too): a file's sha256, or what else it is."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in sorted(folder.rglob("*"))
    }


def broken_copy(case: str, tmp_path: Path, bundle: Path) -> Path:
    """A copy of `bundle`, broken as the corpus case says."""
    copy = Path(shutil.copytree(bundle, tmp_path / "case" / "bundle"))
    BROKEN_BUNDLES[case][0](copy)
    return copy


@pytest.fixture(scope="module")
def promoted(tmp_path_factory: pytest.TempPathFactory, tiny_regression_bundle: Path) -> Path:
    """A copy of functions/predict serving a valid bundle: what every refused promote must leave as it is."""
    function_dir = copy_function(tmp_path_factory.mktemp("promoted"))
    assert main(["promote", str(tiny_regression_bundle), "--function-dir", str(function_dir)]) == 0
    return function_dir


def call(app, load_event, context, name):
    event = load_event("health.json" if name == "openapi.json" else name)
    if name == "openapi.json":
        event["rawPath"] = event["requestContext"]["http"]["path"] = "/openapi.json"
    response = app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("case", list(BROKEN_BUNDLES))
def test_function_answers_503_with_the_reason_on_every_route(
    case, tmp_path, tiny_bundle, load_predict_app, load_event, lambda_context
):
    reason = BROKEN_BUNDLES[case][1]

    app = load_predict_app(broken_copy(case, tmp_path, tiny_bundle))

    status, body = call(app, load_event, lambda_context, "health.json")
    assert (status, body["status"], body["error"]["code"]) == (503, "unavailable", "model_unavailable")
    assert reason in body["error"]["message"]
    assert "\n" not in body["error"]["message"] and len(body["error"]["message"]) < 1000
    for route in ROUTES[1:]:
        status, body = call(app, load_event, lambda_context, route)
        assert (status, body["error"]["code"]) == (503, "model_unavailable"), route


@pytest.mark.parametrize("case", list(BROKEN_BUNDLES))
def test_promote_refuses_with_one_line_and_changes_nothing(case, tmp_path, tiny_bundle, promoted, capsys):
    bundle = broken_copy(case, tmp_path, tiny_bundle)
    reason = PROMOTE_REASONS.get(case, BROKEN_BUNDLES[case][1])
    before = snapshot(promoted)

    code = main(["promote", str(bundle), "--function-dir", str(promoted)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("sml: error: ") and err.count("\n") == 1 and len(err) < 1000, err
    assert reason in err
    assert "Traceback" not in err
    assert snapshot(promoted) == before  # the served bundle byte for byte, and no staging folder left
