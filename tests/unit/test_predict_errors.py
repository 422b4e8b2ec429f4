"""Every bad request gets its documented 4xx in the {"error": {"code", "message"}} shape, never a 500."""

import base64
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import drop_predict_modules, import_predict_app, read_event

ROW = [float(value % 17) for value in range(64)]
ALLOWED_STATUSES = {200, 400, 413, 415, 422}
EVENT = json.dumps(read_event("predict.json"))
# Refused requests record no metrics; app.py silences that warning, but pytest resets filters per test.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")


@pytest.fixture(scope="module")
def app(digits_bundle):
    # One import for the whole module: hypothesis calls the handler hundreds of times.
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield import_predict_app(monkeypatch, digits_bundle, MAX_BATCH="8")
        drop_predict_modules()


def post(app, context, body, *, base64_encoded=False, content_type="application/json"):
    event = json.loads(EVENT)
    event["body"] = body
    event["isBase64Encoded"] = base64_encoded
    if content_type is None:
        del event["headers"]["content-type"]
    else:
        event["headers"]["content-type"] = content_type
    response = app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


BAD_REQUESTS = [
    # (case, body, extra post() arguments, status, error code)
    ("not json", "instances=1,2,3", {}, 400, "invalid_json"),
    ("empty body", "", {}, 400, "invalid_json"),
    ("truncated json", '{"instances": [[1, 2', {}, 400, "invalid_json"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, {}, 400, "invalid_json"),
    ("deep nesting, no closing", '{"instances": ' + "[" * 100_000, {}, 400, "invalid_json"),
    (
        "invalid utf-8 in base64 body",
        base64.b64encode(b'{"instances": [[\xff\xfe]]}').decode(),
        {"base64_encoded": True},
        400,
        "invalid_json",
    ),
    ("not base64", "{not base64!}", {"base64_encoded": True}, 400, "invalid_json"),
    (
        "wrong content type",
        json.dumps({"instances": [ROW]}),
        {"content_type": "text/csv"},
        415,
        "unsupported_media_type",
    ),
    (
        "form content type",
        json.dumps({"instances": [ROW]}),
        {"content_type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),
    ("too many rows", json.dumps({"instances": [ROW] * 9}), {}, 413, "batch_too_large"),
    ("no instances", json.dumps({"rows": [ROW]}), {}, 422, "invalid_instances"),
    ("not an object", json.dumps([ROW]), {}, 422, "invalid_instances"),
    ("empty instances", json.dumps({"instances": []}), {}, 422, "invalid_instances"),
    ("instances not a list", json.dumps({"instances": "1,2,3"}), {}, 422, "invalid_instances"),
    ("one flat row", json.dumps({"instances": ROW}), {}, 422, "invalid_instances"),
    ("short row", json.dumps({"instances": [ROW[:63]]}), {}, 422, "invalid_instances"),
    ("ragged rows", json.dumps({"instances": [ROW, ROW[:10]]}), {}, 422, "invalid_instances"),
    ("extra axis", json.dumps({"instances": [[ROW]]}), {}, 422, "invalid_instances"),
    ("string value", json.dumps({"instances": [["1.0", *ROW[1:]]]}), {}, 422, "invalid_instances"),
    ("null value", json.dumps({"instances": [[None, *ROW[1:]]]}), {}, 422, "invalid_instances"),
    ("boolean row", json.dumps({"instances": [[True] * 64]}), {}, 422, "invalid_instances"),
    ("boolean among numbers", json.dumps({"instances": [ROW, [True, *ROW[1:]]]}), {}, 422, "invalid_instances"),
    ("huge integer", json.dumps({"instances": [[10**400, *ROW[1:]]]}), {}, 422, "non_finite"),
    ("NaN", json.dumps({"instances": [[float("nan"), *ROW[1:]]]}), {}, 422, "non_finite"),
    ("Infinity", json.dumps({"instances": [[float("-inf"), *ROW[1:]]]}), {}, 422, "non_finite"),
    ("1e999", '{"instances": [[1e999' + ", 0" * 63 + "]]}", {}, 422, "non_finite"),
    ("beyond float32", json.dumps({"instances": [[1e39, *ROW[1:]]]}), {}, 422, "non_finite"),
]


@pytest.mark.parametrize(
    ("body", "options", "status", "code"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_predict_bad_request_gets_its_status(app, lambda_context, body, options, status, code):
    got_status, got = post(app, lambda_context, body, **options)

    assert (got_status, got["error"]["code"]) == (status, code)
    assert got["error"]["message"]


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("predict-bad-shape.json", 422, "invalid_instances"),
        ("predict-nan.json", 422, "non_finite"),
        ("predict-not-json.json", 400, "invalid_json"),
    ],
)
def test_predict_bad_events_get_their_status(app, load_event, lambda_context, name, status, code):
    response = app.lambda_handler(load_event(name), lambda_context)

    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (status, code)


@pytest.mark.parametrize(
    ("options", "body"),
    [
        ({"content_type": None}, json.dumps({"instances": [ROW]})),
        ({"content_type": "application/json; charset=utf-8"}, json.dumps({"instances": [ROW]})),
        ({"base64_encoded": True}, base64.b64encode(json.dumps({"instances": [ROW] * 8}).encode()).decode()),
    ],
    ids=["no content type", "charset", "base64 body of MAX_BATCH rows"],
)
def test_predict_accepts_json_variants(app, lambda_context, options, body):
    status, got = post(app, lambda_context, body, **options)

    assert status == 200
    assert len(got["predictions"]) == len(
        json.loads(base64.b64decode(body) if options.get("base64_encoded") else body)["instances"]
    )


@pytest.mark.parametrize(
    ("value", "status"),
    [(3.4028235e38, 200), (-3.40282356e38, 200), (3.4028236e38, 422), (-1e39, 422), (1e-46, 200)],
    ids=["float32 max as numpy prints it", "rounds down to -max", "rounds up to inf", "-1e39", "underflows to 0"],
)
def test_predict_float32_range_is_exact(app, lambda_context, value, status):
    # Values that round to a finite float32 are scored; the first that rounds to inf is refused by row.
    got_status, got = post(app, lambda_context, json.dumps({"instances": [ROW, [*ROW[:5], value, *ROW[6:]]]}))

    assert got_status == status
    if status == 200:
        assert len(got["predictions"]) == 2
    else:
        assert got["error"] == {
            "code": "non_finite",
            "message": "instance 1 holds a value that is not a finite float32 number",
        }


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=40,
)
numbers = st.floats(width=64) | st.integers(-(2**70), 2**70)
# A valid row with a few values replaced and its length nudged: cheap to draw, close to the edge cases.
rows = st.builds(
    lambda length, changes: [changes.get(i, value) for i, value in enumerate((ROW * 2)[:length])],
    st.sampled_from([64] * 6 + [62, 63, 65, 66]),
    st.dictionaries(st.integers(0, 65), numbers, max_size=3),
)
bodies = st.one_of(
    st.binary(max_size=200).map(lambda raw: (base64.b64encode(raw).decode(), True)),
    st.text(max_size=200).map(lambda text: (text, False)),
    st.text(max_size=200).map(lambda text: (text, True)),
    json_values.map(lambda value: (json.dumps(value), False)),
    json_values.map(lambda value: (json.dumps({"instances": value}), False)),
    st.lists(rows, min_size=0, max_size=10).map(lambda batch: (json.dumps({"instances": batch}), False)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=st.sampled_from(["application/json", None, "text/plain", "application/vnd.api+json"]))
def test_predict_random_input_never_500(app, lambda_context, body, content_type):
    text, base64_encoded = body

    status, got = post(app, lambda_context, text, base64_encoded=base64_encoded, content_type=content_type)

    assert status in ALLOWED_STATUSES
    if status == 200:
        assert len(got["predictions"]) == len(got["probabilities"])
    else:
        assert set(got) == {"error"} and set(got["error"]) == {"code", "message"}


def parsed(app, body):
    """parse_instances' array, or the refusal it raises as (status, code, message)."""
    try:
        return app.predict.parse_instances(body, (64,), 8)
    except app.predict.ApiError as error:
        return (error.status, error.code, error.message)


# Numbers float32 holds, from subnormals to its largest and 64-bit integers (orjson's range).
finite = st.floats(-3.4e38, 3.4e38) | st.integers(-(2**63), 2**63 - 1)
# Now and then one cell of the batch spoiled: replaced by what is not a number, or by a number beyond float32,
# or dropped (a short row).
DROP = object()
spoilers = st.none() | st.tuples(st.integers(0, 2), st.integers(0, 63),
                                 st.sampled_from([True, False, None, "1.5", [1.0], 1e39, -1e39, DROP]))  # fmt: skip


def only_numbers(value):
    return all(map(only_numbers, value)) if type(value) is list else type(value) in (int, float)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.lists(finite, min_size=64, max_size=64), min_size=1, max_size=3), spoil=spoilers,
       as_bytes=st.booleans())  # fmt: skip
def test_rows_of_numbers_read_straight_as_float32_equal_the_checked_reading(app, batch, spoil, as_bytes):
    # A body of numbers only is read straight into float32 (predict.only_numbers); a key after the rows sends the
    # same rows through the reading that checks each value. Both give the same array, or the same refusal.
    if spoil is not None and spoil[0] < len(batch):
        row, at, value = spoil
        batch[row][at : at + 1] = [] if value is DROP else [value]
    texts = json.dumps({"instances": batch}), json.dumps({"instances": batch, "note": "checked"})
    straight, checked = (text.encode() for text in texts) if as_bytes else texts

    got, want = parsed(app, straight), parsed(app, checked)

    assert app.predict.only_numbers(straight) == only_numbers(batch)
    assert not app.predict.only_numbers(checked)
    event("refused" if isinstance(want, tuple) else "scored")
    if isinstance(want, tuple):
        assert got == want
    else:
        assert got.dtype == want.dtype == "float32" and got.tobytes() == want.tobytes()
