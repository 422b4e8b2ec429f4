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


def test_sml_endpoint_predict_sends_a_csv_s_categories_as_training_read_them(
    tmp_path: Path, penguins_bundle: Path
) -> None:
    lines = (projects.ROOT / "examples/data/penguins.csv").read_text().splitlines()
    header, rows = lines[0], [line for line in lines[1:] if ",NA," not in line][:4]
    missing_sex = next(line for line in lines if line.endswith(",NA,2007") and ",NA,NA," not in line)
    unseen_island = rows[0].replace("Torgersen", "Atlantis")
    (tmp_path / "rows.csv").write_text("\n".join([header, *rows, missing_sex, unseen_island]) + "\n")
    named = [dict(zip(header.split(","), line.split(","), strict=True)) for line in [*rows, missing_sex, unseen_island]]
    instances = [{name: None if value == "NA" else value if name in ("island", "sex") else float(value)
                  for name, value in row.items() if name != "species"} for row in named]  # fmt: skip
    (tmp_path / "project").mkdir()
    project = projects.predict_project(tmp_path / "project", penguins_bundle)

    with projects.serving(project) as api:
        body = json.dumps({"instances": instances}).encode()
        status, _, direct = api.request("POST", "/predict", body, {"content-type": "application/json"})
        result = projects.run_sml("endpoint", "predict", "--file", "rows.csv", "--url", api.url, cwd=tmp_path)

    assert status == 200 and result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [answer["prediction"] for answer in answers] == json.loads(direct)["predictions"]
    assert [list(answer["probabilities"].values()) for answer in answers] == json.loads(direct)["probabilities"]
