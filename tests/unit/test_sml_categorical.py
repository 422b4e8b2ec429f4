"""The penguins bundle downstream: `sml promote` accepts its card (whose sample holds strings), `sml invoke`
answers the committed named-row event, `sml serve` serves named rows and GET /model shows the features."""

import json
from pathlib import Path

import pytest

from tests import projects
from tests.conftest import EVENTS_DIR

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")
NAMED = {"island": "Dream", "bill_length_mm": 49.5, "bill_depth_mm": 19.0, "flipper_length_mm": 200,
         "body_mass_g": 3800, "sex": "male", "year": 2008}  # fmt: skip


def test_sml_promote_accepts_a_card_whose_sample_holds_strings(tmp_path: Path, penguins_bundle: Path) -> None:
    function_dir = projects.copy_function(tmp_path)

    result = projects.run_sml("promote", penguins_bundle, "--function-dir", function_dir, cwd=tmp_path, timeout=120)

    assert result.returncode == 0, result.stderr
    promoted = function_dir / "model" / "model.json"
    assert promoted.read_bytes() == (penguins_bundle / "model.json").read_bytes()


def test_sml_invoke_answers_the_named_rows_event(tmp_path: Path, penguins_bundle: Path) -> None:
    project = projects.predict_project(tmp_path, penguins_bundle)

    result = projects.run_sml("invoke", "PredictFunction", "-e", EVENTS_DIR / "predict-penguins.json", cwd=project)

    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 200, response
    # a Gentoo, and an Adelie whose sex is missing
    assert json.loads(response["body"])["predictions"] == ["Gentoo", "Adelie"]


def test_sml_serve_takes_named_rows_and_shows_the_features(tmp_path: Path, penguins_bundle: Path) -> None:
    project = projects.predict_project(tmp_path, penguins_bundle)
    headers = {"content-type": "application/json"}

    with projects.serving(project) as api:
        named = api.request("POST", "/predict", json.dumps({"instances": [NAMED]}).encode(), headers)
        positional = api.request(
            "POST", "/predict", json.dumps({"instances": [list(NAMED.values())]}).encode(), headers
        )
        card_status, _, card = api.request("GET", "/model")

    assert named[0] == positional[0] == 200 and json.loads(named[2]) == json.loads(positional[2])
    assert json.loads(named[2])["predictions"] == ["Chinstrap"]
    features = json.loads(card)["input"]["features"]
    assert card_status == 200 and [feature["name"] for feature in features] == list(NAMED)
    assert features[-2] == {"name": "sex", "kind": "categorical", "values": ["male", "female"]}
