"""The pre-traffic check in the stack: CodeDeploy runs it on each new version, with the least it needs."""

from typing import Any

from tests.conftest import import_pretraffic_hook
from tests.template.test_template_rules import as_list

HOOK = import_pretraffic_hook()
INIT_LIMIT_S = 10  # Lambda's limit on a function's init phase, which an invoke of a cold version waits for


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def grants(role: dict[str, Any], action: str) -> list[Any]:
    """Every resource `role` allows `action` on."""
    return [r for s in statements(role) if action in as_list(s["Action"]) for r in as_list(s["Resource"])]


def test_deployment_runs_the_hook_before_traffic_moves(translated: dict[str, Any]) -> None:
    update = translated["Resources"]["PredictFunctionAliaslive"]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    hook = translated["Resources"]["PreTrafficFunction"]

    assert update["BeforeAllowTrafficHook"] == {"Ref": "PreTrafficFunction"}
    assert hook["Type"] == "AWS::Lambda::Function"
    assert hook["Properties"]["Handler"] == "hook.lambda_handler"


def test_hook_checks_the_version_the_alias_is_moving_to(translated: dict[str, Any]) -> None:
    variables = translated["Resources"]["PreTrafficFunction"]["Properties"]["Environment"]["Variables"]
    alias = translated["Resources"]["PredictFunctionAliaslive"]["Properties"]

    assert variables["PREDICT_VERSION_ARN"] == {"Ref": alias["FunctionVersion"]["Fn::GetAtt"][0]}


def test_hook_is_boto3_only_built_without_docker_and_on_the_shared_runtime(sam_template: dict[str, Any]) -> None:
    hook = sam_template["Resources"]["PreTrafficFunction"]

    assert hook["Metadata"] == {"BuildMethod": "makefile"}
    assert hook["Properties"]["CodeUri"] == "functions/pretraffic/"
    assert "Layers" not in hook["Properties"]
    assert "Events" not in hook["Properties"]  # not an API route: `sml serve` and the API never see it
    assert "Runtime" not in hook["Properties"]  # Globals' runtime, like the predict function's


def test_hook_outlasts_its_invokes_and_they_outlast_the_version(sam_template: dict[str, Any]) -> None:
    hook = sam_template["Resources"]["PreTrafficFunction"]["Properties"]
    predict_timeout_max = sam_template["Parameters"]["Timeout"]["MaxValue"]

    assert INIT_LIMIT_S + predict_timeout_max < HOOK.INVOKE_READ_TIMEOUT_S
    assert hook["Timeout"] > 2 * HOOK.INVOKE_READ_TIMEOUT_S  # GET /model, then POST /predict, then the report


def test_hook_role_may_only_invoke_the_predict_function_and_report_to_its_application(
    translated: dict[str, Any],
) -> None:
    resources = translated["Resources"]
    role = resources["PreTrafficFunctionRole"]
    actions = {a for s in statements(role) for a in as_list(s["Action"])}
    groups = [r for r in resources.values() if r["Type"] == "AWS::CodeDeploy::DeploymentGroup"]
    group_arn = "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:"

    assert resources["PreTrafficFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["PreTrafficFunctionRole", "Arn"]}
    assert "ManagedPolicyArns" not in role["Properties"]
    assert actions == {
        "lambda:InvokeFunction",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    assert grants(role, "lambda:InvokeFunction") == [
        {"Fn::GetAtt": ["PredictFunction", "Arn"]},
        {"Fn::Sub": "${PredictFunction.Arn}:*"},
    ]
    assert grants(role, "codedeploy:PutLifecycleEventHookExecutionStatus") == [
        {"Fn::Sub": group_arn + "${ServerlessDeploymentApplication}/*"}
    ]
    # The application's only deployment group is the predict function's.
    assert [g["Properties"]["ApplicationName"] for g in groups] == [{"Ref": "ServerlessDeploymentApplication"}]
    assert grants(role, "logs:PutLogEvents") == [{"Fn::GetAtt": ["PreTrafficFunctionLogGroup", "Arn"]}]


def test_codedeploy_may_invoke_the_hook_and_no_other_function(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    group = resources["PredictFunctionDeploymentGroup"]["Properties"]
    role = resources[group["ServiceRoleArn"]["Fn::GetAtt"][0]]

    assert grants(role, "lambda:InvokeFunction") == [{"Fn::GetAtt": ["PreTrafficFunction", "Arn"]}]
