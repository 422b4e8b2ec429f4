"""Generated card mutations: `sml promote` either refuses a card cleanly, or the function serves what it accepted."""

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sml.cli import main
from tests.conftest import drop_predict_modules, import_predict_app, read_event
from tests.projects import copy_function

DELETE = object()
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()  # NaN and infinities too: json.dumps writes them
    | st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
)
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the card a mutation can hit: each key and list index, at any depth."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    found = [prefix] if prefix else []
    for key, child in children:
        found += paths(child, (*prefix, key))
    return found


def mutate(card: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    parent = card
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


def call(app: Any, event: dict[str, Any]) -> tuple[int, Any]:
    from tests.conftest import FakeLambdaContext

    response = app.lambda_handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def assert_served(model_dir: Path) -> None:
    """Every route answers 200 for the promoted bundle, and POST /predict scores the card's own sample."""
    card = json.loads((model_dir / "model.json").read_text())
    with pytest.MonkeyPatch.context() as monkeypatch:
        app = import_predict_app(monkeypatch, model_dir)
        try:
            status, body = call(app, read_event("health.json"))
            assert (status, body["status"]) == (200, "ready"), body
            assert call(app, read_event("model.json"))[0] == 200
            openapi = read_event("health.json")
            openapi["rawPath"] = openapi["requestContext"]["http"]["path"] = "/openapi.json"
            assert call(app, openapi)[0] == 200
            predict = read_event("predict.json")
            predict["body"] = json.dumps({"instances": card["sample"]["instances"]})
            status, body = call(app, predict)
            assert status == 200, body
        finally:
            drop_predict_modules()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_promote_refuses_a_mutated_card_cleanly_or_the_function_serves_it(data, tiny_bundle, capsys):
    card = json.loads((tiny_bundle / "model.json").read_text())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="edits")):
        # Half the edits go where most values are allowed, so that accepted cards are served often enough to test.
        region = data.draw(st.sampled_from([(), (), (), ("training",), ("export",), ("metrics", "test")]))
        path = data.draw(
            st.sampled_from(
                [p for p in paths(card) if len(p) > len(region) and p[: len(region)] == region] or [("training",)]
            )
        )
        mutate(card, path, data.draw(st.just(DELETE) | VALUES, label="value"))
    with tempfile.TemporaryDirectory() as folder:
        bundle = Path(shutil.copytree(tiny_bundle, Path(folder) / "bundle"))
        (bundle / "model.json").write_text(json.dumps(card))
        function_dir = copy_function(Path(folder))

        code = main(["promote", str(bundle), "--function-dir", str(function_dir)])

        err = capsys.readouterr().err
        event(f"promote exit {code}")
        if code == 0:
            assert_served(function_dir / "model")
        else:
            assert code == 2 and err.startswith("sml: error: ") and err.count("\n") == 1, err
            assert "Traceback" not in err
            assert sorted(path.name for path in function_dir.iterdir() if path.name.startswith((".", "model"))) == [
                "model.py"
            ]
