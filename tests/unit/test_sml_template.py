"""`sml` reads SAM templates as `sam local` does: short-form tags, Globals, env intrinsics, API routes."""

from pathlib import Path

import pytest

from sml.errors import UserError
from sml.local.gateway import compile_routes, match_route
from sml.local.template import Route, load_template

ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
  Bucket: {Type: String}
  TimeoutSeconds: {Type: Number, Default: 10}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Globals:
  Function:
    Runtime: python3.12
    Timeout: !Ref TimeoutSeconds
    Layers: [!Ref SharedLayer]
    Environment:
      Variables: {LOG_LEVEL: INFO, SHARED: from-globals, FLAG: true}
Resources:
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/api/
      Handler: pkg/handlers.main
      MemorySize: 512
      Layers: [!Ref OwnLayer]
      Environment:
        Variables:
          SHARED: from-function
          STAGE: !Ref Stage
          URL: !Sub "https://${AWS::Region}.example.com/${Stage}/${Extra}"
          PLAIN_SUB: !Sub ["${Name}-x", {Name: !Ref Stage}]
          BUCKET: !Ref Bucket
          TABLE_ARN: !GetAtt Table.Arn
          MODE: !If [IsProd, fast, safe]
      Events:
        Predict: {Type: HttpApi, Properties: {Path: /predict, Method: post}}
        Anything: {Type: HttpApi, Properties: {Path: "/files/{proxy+}", Method: any}}
        Legacy: {Type: Api, Properties: {Path: /legacy, Method: GET}}
        Catchall: {Type: HttpApi}
        Queue: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn}}
  ImageFunction:
    Type: AWS::Serverless::Function
    Properties: {PackageType: Image, ImageUri: repo:latest}
  NodeFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: node/, Handler: index.handler, Runtime: nodejs20.x}
  Table:
    Type: AWS::DynamoDB::Table
"""


@pytest.fixture
def template_path(tmp_path: Path) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return path


def test_sml_template_reads_functions_with_globals_merged(template_path):
    function = load_template(template_path, "eu-west-1").function("ApiFunction")

    assert function.code_dir == (template_path.parent / "src" / "api").resolve()
    assert (function.handler, function.runtime, function.memory_mb, function.timeout_s) == (
        "pkg/handlers.main",
        "python3.12",
        512,
        10.0,
    )
    assert function.environment["LOG_LEVEL"] == "INFO"
    assert function.environment["SHARED"] == "from-function"
    assert function.environment["FLAG"] == "true"


def test_sml_template_resolves_ref_and_sub_to_parameter_defaults(template_path):
    environment = load_template(template_path, "eu-west-1").function("ApiFunction").environment

    assert environment["STAGE"] == "dev"
    assert environment["PLAIN_SUB"] == "dev-x"


def test_sml_template_skips_what_only_aws_can_resolve_with_a_note(template_path):
    template = load_template(template_path, "eu-west-1")
    environment = template.function("ApiFunction").environment

    for name in ("URL", "BUCKET", "TABLE_ARN", "MODE"):  # unknown ${Extra}, no default, !GetAtt, !If
        assert name not in environment
        assert any(f"env {name} = " in note for note in template.notes)
    assert template.function("ApiFunction").declared_env >= {"URL", "BUCKET", "TABLE_ARN", "MODE"}


def test_sml_template_reads_http_api_and_rest_routes(template_path):
    routes = load_template(template_path, "us-east-1").function("ApiFunction").routes

    assert [(r.method, r.path, r.api, r.payload_version) for r in routes] == [
        ("POST", "/predict", "HttpApi", "2.0"),
        ("ANY", "/files/{proxy+}", "HttpApi", "2.0"),
        ("GET", "/legacy", "Api", "1.0"),
        ("ANY", "$default", "HttpApi", "2.0"),
    ]


def test_sml_template_names_functions_that_cannot_run_locally(template_path):
    template = load_template(template_path, "us-east-1")

    with pytest.raises(UserError, match="ImageFunction cannot run locally: image functions need docker"):
        template.function("ImageFunction")
    with pytest.raises(UserError, match=r"runtime 'nodejs20\.x' is not Python"):
        template.function("NodeFunction")


def test_sml_template_picks_the_only_function_when_none_is_named(template_path):
    assert load_template(template_path, "us-east-1").function(None).logical_id == "ApiFunction"


def test_sml_template_needs_a_name_when_it_has_several_functions(tmp_path):
    function = "{Type: AWS::Serverless::Function, Properties: {CodeUri: ., Handler: a.b, Runtime: python3.12}}"
    (tmp_path / "template.yaml").write_text(f"Resources:\n  B: {function}\n  A: {function}\n")

    with pytest.raises(UserError, match=r"has 2 functions \(A, B\); name one"):
        load_template(tmp_path / "template.yaml", "us-east-1").function(None)


def test_sml_template_reads_the_project_template():
    function = load_template(ROOT / "template.yaml", "us-east-1").function("PredictFunction")

    assert function.code_dir == ROOT / "functions" / "predict"
    assert function.environment["MODEL_DIR"] == "model"
    assert ("POST", "/predict") in {(route.method, route.path) for route in function.routes}


def test_sml_template_serves_only_the_predict_function_of_the_project_template():
    template = load_template(ROOT / "template.yaml", "us-east-1")
    hook = template.function("PreTrafficFunction")  # CodeDeploy's pre-traffic check: no API events

    assert [f.logical_id for f in template.functions.values() if f.routes] == ["PredictFunction"]  # what serve runs
    assert (hook.code_dir, hook.handler, hook.routes) == (ROOT / "functions" / "pretraffic", "hook.lambda_handler", ())
    assert hook.runtime == template.function("PredictFunction").runtime
    assert template.skipped == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [("Resources: [", "is not valid YAML"), ("Description: nothing\n", "has no Resources section")],
)
def test_sml_template_bad_file_is_a_user_error(tmp_path, text, message):
    (tmp_path / "template.yaml").write_text(text)

    with pytest.raises(UserError, match=message):
        load_template(tmp_path / "template.yaml", "us-east-1")


def route(method: str, path: str) -> Route:
    return Route(function_id="F", method=method, path=path, api="HttpApi", payload_version="2.0")


@pytest.mark.parametrize(
    ("method", "path", "expected", "parameters"),
    [
        ("GET", "/items/special", "GET /items/special", {}),
        ("GET", "/items/42", "GET /items/{id}", {"id": "42"}),
        ("POST", "/items/42", "ANY /items/{id}", {"id": "42"}),
        ("GET", "/items/42/parts/a/b", "ANY /items/{id}/parts/{rest+}", {"id": "42", "rest": "a/b"}),
        ("DELETE", "/elsewhere", "ANY $default", {}),
        ("TRACE", "/elsewhere", None, None),
    ],
)
def test_sml_routes_prefer_the_most_specific_match(method, path, expected, parameters):
    routes = compile_routes(
        [
            route("ANY", "$default"),
            route("ANY", "/items/{id}/parts/{rest+}"),
            route("ANY", "/items/{id}"),
            route("GET", "/items/{id}"),
            route("GET", "/items/special"),
        ]
    )

    found = match_route(routes, method, path)

    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert (f"{found[0].method} {found[0].path}", found[1]) == (expected, parameters)
