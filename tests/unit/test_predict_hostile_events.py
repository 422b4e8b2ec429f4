"""Events API Gateway never sends, but a direct `aws lambda invoke` can: a 400 in the error form, never a raise."""

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import projects
from tests.conftest import drop_predict_modules, import_predict_app, read_event

PREDICT = read_event("predict.json")
HEALTH = read_event("health.json")
# Refused requests record no metrics; app.py silences that warning, but pytest resets filters per test.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


def changed(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A copy of `event` with `fields` set; a field set to ... is removed."""
    result = copy.deepcopy(event)
    for key, value in fields.items():
        if value is ...:
            del result[key]
        else:
            result[key] = value
    return result


def without_context_field(event: dict[str, Any], *path: str) -> dict[str, Any]:
    result = copy.deepcopy(event)
    parent = result
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return result


INSTANCES = json.loads(PREDICT["body"])["instances"]
HOSTILE_EVENTS = [
    # (case, event, status, error code)
    ("event is a list", [PREDICT], 400, "invalid_event"),
    ("event is a string", "POST /predict", 400, "invalid_event"),
    ("event is a number", 7, 400, "invalid_event"),
    ("event is null", None, 400, "invalid_event"),
    ("event is empty", {}, 400, "invalid_event"),
    ("no requestContext", changed(PREDICT, requestContext=...), 400, "invalid_event"),
    ("requestContext a list", changed(PREDICT, requestContext=[]), 400, "invalid_event"),
    ("no http method", without_context_field(PREDICT, "requestContext", "http", "method"), 400, "invalid_event"),
    ("no routeKey", changed(PREDICT, routeKey=...), 400, "invalid_event"),
    ("routeKey a number", changed(PREDICT, routeKey=1), 400, "invalid_event"),
    ("no rawPath, GET", changed(HEALTH, rawPath=...), 400, "invalid_event"),
    ("body an object", changed(PREDICT, body={"instances": INSTANCES}), 400, "invalid_event"),
    ("body a number", changed(PREDICT, body=42), 400, "invalid_event"),
    ("body a list", changed(PREDICT, body=INSTANCES), 400, "invalid_event"),
    ("headers a list", changed(PREDICT, headers=[["content-type", "application/json"]]), 400, "invalid_event"),
    ("headers a string", changed(PREDICT, headers="content-type: application/json"), 400, "invalid_event"),
    ("content-type a number", changed(PREDICT, headers={"content-type": 5}), 400, "invalid_event"),
    ("content-type a list", changed(PREDICT, headers={"content-type": ["application/json"]}), 400, "invalid_event"),
    ("isBase64Encoded a string", changed(PREDICT, isBase64Encoded="yes"), 400, "invalid_event"),
    ("query a list", changed(HEALTH, queryStringParameters=["a"]), 400, "invalid_event"),
    ("cookies a string", changed(HEALTH, cookies="a=1"), 400, "invalid_event"),
    ("cookies hold a number", changed(HEALTH, cookies=[1]), 400, "invalid_event"),
    ("rawQueryString a number", changed(HEALTH, rawQueryString=1), 400, "invalid_event"),
    # Accepted: fields API Gateway leaves out, or sends as null, are read as absent.
    ("headers null", changed(PREDICT, headers=None), 200, None),
    ("no headers", changed(PREDICT, headers=...), 200, None),
    ("body null", changed(PREDICT, body=None), 400, "invalid_json"),
    ("unknown route", changed(HEALTH, routeKey="GET /nowhere", rawPath="/nowhere"), 404, "not_found"),
]


@pytest.fixture(scope="module")
def app(digits_bundle):
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield import_predict_app(monkeypatch, digits_bundle)
        drop_predict_modules()


def answer(app: Any, event: Any, context: Any) -> tuple[int, Any]:
    response = app.lambda_handler(copy.deepcopy(event), context)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(("case", "event", "status", "code"), HOSTILE_EVENTS, ids=[c[0] for c in HOSTILE_EVENTS])
def test_predict_hostile_event_gets_its_status_and_one_warning(app, lambda_context, caplog, case, event, status, code):
    got_status, body = answer(app, event, lambda_context)

    assert got_status == status, body
    if code is not None:
        assert body["error"]["code"] == code and body["error"]["message"]
    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == (1 if code == "invalid_event" else 0), caplog.text
    if warnings:
        assert warnings[0].reason == body["error"]["message"]


def test_predict_the_word_true_elsewhere_in_the_body_is_not_a_boolean(app, lambda_context):
    body = json.dumps({"instances": INSTANCES, "note": "true or false"})

    status, answered = answer(app, changed(PREDICT, body=body), lambda_context)

    assert status == 200 and len(answered["predictions"]) == len(INSTANCES)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
FIELDS = ("routeKey", "rawPath", "rawQueryString", "body", "isBase64Encoded", "headers", "requestContext",
          "queryStringParameters", "pathParameters", "cookies")  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from([PREDICT, HEALTH]), replaced=st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES))
def test_predict_no_generated_event_is_answered_with_a_5xx(app, lambda_context, base, replaced):
    status, body = answer(app, changed(base, **replaced), lambda_context)

    assert 200 <= status < 500, body


@pytest.mark.parametrize(
    ("case", "event"),
    [("a list", "[1, 2]"), ("empty", "{}"), ("body an object", json.dumps(changed(PREDICT, body={})))],
)
def test_sml_invoke_hostile_event_is_400_without_traceback(tmp_path, digits_bundle, case, event):
    project = projects.predict_project(tmp_path, digits_bundle)

    result = projects.run_sml("invoke", "PredictFunction", "-e", "-", cwd=project, stdin=event, timeout=120)

    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "invalid_event"
    assert "Traceback" not in result.stderr
