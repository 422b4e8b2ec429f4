"""Our own rules for the stack, checked on the template as the SAM transform leaves it."""

import itertools
import json
import re
from typing import Any

import pytest

from tests.template.cfn import deployed, rule_violations

LAMBDA_MEMORY_MB = (128, 10240)
READ_ONLY_VERBS = ("Get", "List", "Describe", "BatchGet", "BatchCheck")
# Write actions that AWS only grants on "*": each needs its reason, and a condition where one exists.
WILDCARD_WRITES = {
    "xray:PutTraceSegments": "X-Ray has no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray has no resource-level permissions",
    "cloudwatch:PutMetricData": "metrics have no ARNs; scoped by a cloudwatch:namespace condition",
}
WILDCARD_WRITES_NEEDING_CONDITION = {"cloudwatch:PutMetricData"}
AWS_MANAGED_POLICIES = {
    "AmazonEC2ContainerServiceforEC2Role": "the ECS agent on Batch's GPU instances; AWS keeps it in step",
}
TRAINING_PREFIXES = ("data/", "checkpoints/", "bundles/", "models/")
SML_OUTPUTS = {
    "ApiUrl",
    "ApiAuth",
    "ArtifactBucketName",
    "PredictFunctionName",
    "PredictFunctionAliasArn",
    "SageMakerRoleArn",
    "TrainingRepositoryUri",
}
BATCH_OUTPUTS = {"JobQueueArn", "JobDefinitionArn", "TrainingLogGroupName"}


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == kind}


def only(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (resource,) = resources_of_type(template, kind).values()
    return resource["Properties"]  # type: ignore[no-any-return]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(owner, statement) for every identity policy the stack writes itself."""
    found = []
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            documents = [policy["PolicyDocument"] for policy in branches(props.get("Policies", []))]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props["PolicyDocument"]]
        else:
            continue
        found += [(name, statement) for document in documents for statement in branches(document["Statement"])]
    return found


def branches(items: list[Any]) -> list[dict[str, Any]]:
    """The items of a list, with each `Fn::If` item replaced by those of its branches that are not AWS::NoValue."""
    found = []
    for item in items:
        if set(item) == {"Fn::If"}:
            found += [branch for branch in item["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}]
        else:
            found.append(item)
    return found


def test_function_keeps_the_contract_other_parts_rely_on(translated: dict[str, Any]) -> None:
    function = translated["Resources"]["PredictFunction"]
    variables = function["Properties"]["Environment"]["Variables"]

    assert function["Properties"]["Handler"] == "app.lambda_handler"
    assert function["Properties"]["Runtime"] == "python3.13"
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert variables["MODEL_DIR"] == "model"
    assert {"MAX_BATCH", "ORT_INTRA_OP_THREADS", "POWERTOOLS_SERVICE_NAME"} <= set(variables)


def test_function_code_is_the_folder_that_holds_the_model(sam_template: dict[str, Any]) -> None:
    props = sam_template["Resources"]["PredictFunction"]["Properties"]

    assert props["CodeUri"] == "functions/predict/"
    assert props["AutoPublishAlias"] == "live"  # a new model is new code, hence a new version


def test_function_and_layer_architectures_are_the_same_parameter(translated: dict[str, Any]) -> None:
    function = translated["Resources"]["PredictFunction"]["Properties"]
    layer = only(translated, "AWS::Lambda::LayerVersion")

    assert function["Architectures"] == [{"Ref": "Architecture"}]
    assert layer["CompatibleArchitectures"] == function["Architectures"]
    assert function["Layers"] == [{"Ref": name} for name in resources_of_type(translated, "AWS::Lambda::LayerVersion")]


def test_layer_is_built_for_the_architecture_parameter(sam_template: dict[str, Any]) -> None:
    layer = sam_template["Resources"]["OnnxRuntimeLayer"]
    architecture = sam_template["Parameters"]["Architecture"]

    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": {"Ref": "Architecture"}}
    assert architecture["Default"] == "arm64"
    assert set(architecture["AllowedValues"]) == {"arm64", "x86_64"}
    assert layer["Properties"]["CompatibleRuntimes"] == [sam_template["Globals"]["Function"]["Runtime"]]


def test_memory_parameter_stays_within_lambda_limits(translated: dict[str, Any]) -> None:
    memory = translated["Parameters"]["MemorySize"]

    assert translated["Resources"]["PredictFunction"]["Properties"]["MemorySize"] == {"Ref": "MemorySize"}
    assert LAMBDA_MEMORY_MB[0] <= memory["MinValue"] <= memory["Default"] <= memory["MaxValue"] <= LAMBDA_MEMORY_MB[1]


@pytest.mark.parametrize(("snap_start", "provisioned"), list(itertools.product(["true", "false"], ["0", "1", "5"])))
def test_snapstart_and_provisioned_concurrency_are_never_deployed_together(
    translated: dict[str, Any], snap_start: str, provisioned: str
) -> None:
    stack = deployed(translated, EnableSnapStart=snap_start, ProvisionedConcurrency=provisioned)
    function = stack["Resources"]["PredictFunction"]["Properties"]
    alias = stack["Resources"]["PredictFunctionAliaslive"]["Properties"]

    assert not ("SnapStart" in function and "ProvisionedConcurrencyConfig" in alias)
    assert ("SnapStart" in function) == (snap_start == "true")


def test_rules_accept_the_default_parameters(translated: dict[str, Any]) -> None:
    assert rule_violations(translated) == []


def test_rules_refuse_snapstart_with_provisioned_concurrency(translated: dict[str, Any]) -> None:
    (violation,) = rule_violations(translated, EnableSnapStart="true", ProvisionedConcurrency="2")

    assert "cannot be combined" in violation
    assert rule_violations(translated, EnableSnapStart="true") == []
    assert rule_violations(translated, ProvisionedConcurrency="2") == []


def test_rules_refuse_jwt_without_issuer_or_audience(translated: dict[str, Any]) -> None:
    issuer = "https://issuer.example"

    assert rule_violations(translated, ApiAuth="JWT") == [
        "ApiAuth=JWT needs JwtIssuer.",
        "ApiAuth=JWT needs JwtAudience.",
    ]
    assert rule_violations(translated, ApiAuth="JWT", JwtIssuer=issuer) == ["ApiAuth=JWT needs JwtAudience."]
    assert rule_violations(translated, ApiAuth="JWT", JwtIssuer=issuer, JwtAudience="app") == []


def test_rules_refuse_batch_subnets_without_security_groups(translated: dict[str, Any]) -> None:
    assert rule_violations(translated, BatchSubnetIds="subnet-1") == ["BatchSubnetIds needs BatchSecurityGroupIds."]
    assert rule_violations(translated, BatchSubnetIds="subnet-1", BatchSecurityGroupIds="sg-1") == []


def test_reserved_concurrency_is_set_only_when_asked(translated: dict[str, Any]) -> None:
    unset = deployed(translated)["Resources"]["PredictFunction"]["Properties"]
    capped = deployed(translated, ReservedConcurrency="20")["Resources"]["PredictFunction"]["Properties"]

    assert "ReservedConcurrentExecutions" not in unset
    assert capped["ReservedConcurrentExecutions"] == "20"


def test_new_versions_roll_out_by_canary_and_roll_back_on_alarms(translated: dict[str, Any]) -> None:
    group = only(translated, "AWS::CodeDeploy::DeploymentGroup")
    alarms = {alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"]}
    metrics = {translated["Resources"][name]["Properties"]["MetricName"] for name in alarms}
    latency = translated["Resources"]["PredictLatencyAlarm"]["Properties"]

    assert group["DeploymentConfigName"]["Fn::Sub"][1] == {"ConfigName": "Canary10Percent5Minutes"}
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
    assert metrics == {"Errors", "Duration"}  # an alarm on the API would be a cycle: test_stack_graph.py
    assert latency["ExtendedStatistic"] == "p99"
    alias = translated["Resources"]["PredictFunctionAliaslive"]
    assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["BeforeAllowTrafficHook"] == {
        "Ref": "PreTrafficFunction"
    }


def test_version_alarms_watch_the_version_being_deployed(translated: dict[str, Any]) -> None:
    alias = translated["Resources"]["PredictFunctionAliaslive"]["Properties"]
    for name in ("PredictErrorsAlarm", "PredictLatencyAlarm"):
        dimensions = {d["Name"]: d["Value"] for d in translated["Resources"][name]["Properties"]["Dimensions"]}

        assert dimensions["ExecutedVersion"] == alias["FunctionVersion"]


def test_every_log_group_has_a_retention(translated: dict[str, Any]) -> None:
    groups = resources_of_type(translated, "AWS::Logs::LogGroup")

    assert groups
    assert all(group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for group in groups.values())


def test_function_logs_go_to_the_stack_log_group(translated: dict[str, Any]) -> None:
    logging_config = translated["Resources"]["PredictFunction"]["Properties"]["LoggingConfig"]

    assert logging_config == {"LogGroup": {"Ref": "PredictFunctionLogGroup"}}


def test_api_stage_throttles_and_logs_access(translated: dict[str, Any]) -> None:
    stage = only(translated, "AWS::ApiGatewayV2::Stage")
    destination = stage["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]

    assert stage["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ThrottleBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ThrottleRateLimit"},
    }
    assert translated["Resources"][destination]["Type"] == "AWS::Logs::LogGroup"
    assert json.loads(stage["AccessLogSettings"]["Format"])["requestId"] == "$context.requestId"


ANY_METHOD = "x-amazon-apigateway-any-method"


def api_routes(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) -> operation; the $default route, which OpenAPI spells /$default, as ("ANY", "$default")."""
    body = only(template, "AWS::ApiGatewayV2::Api")["Body"]
    return {
        ("ANY" if method == ANY_METHOD else method.upper(), path.removeprefix("/") if path == "/$default" else path): (
            operation
        )
        for path, item in body["paths"].items()
        for method, operation in item.items()
    }


def test_api_serves_exactly_the_function_events(sam_template: dict[str, Any], translated: dict[str, Any]) -> None:
    events = sam_template["Resources"]["PredictFunction"]["Properties"]["Events"].values()
    declared = {(event["Properties"]["Method"], event["Properties"]["Path"]) for event in events}

    v2_models = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")
    assert declared == {("POST", "/predict"), ("GET", "/model"), ("GET", "/health"), ("GET", "/openapi.json"),
                        ("GET", "/v2"), ("GET", "/v2/health/live"), ("GET", "/v2/health/ready"),
                        *(("GET", path) for path in v2_models), *(("GET", f"{path}/ready") for path in v2_models),
                        *(("POST", f"{path}/infer") for path in v2_models), ("ANY", "$default")}  # fmt: skip
    assert set(api_routes(translated)) == declared
    assert all("x-amazon-apigateway-integration" in operation for operation in api_routes(translated).values())


def test_unknown_paths_reach_the_function_so_every_refusal_is_in_its_error_form(translated: dict[str, Any]) -> None:
    # Without a $default route API Gateway itself answers an unknown path with {"message": "Not Found"}.
    default = api_routes(translated)[("ANY", "$default")]

    assert default["isDefaultRoute"] is True
    assert "PredictFunctionAliaslive" in json.dumps(default["x-amazon-apigateway-integration"]["uri"])
    # API Gateway may invoke the function for any method and path of the API, not just the declared routes.
    sources = [
        resource["Properties"]["SourceArn"]["Fn::Sub"][0]
        for resource in translated["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Permission" and "SourceArn" in resource["Properties"]
    ]
    assert "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${__ApiId__}/${__Stage__}/*" in sources


@pytest.mark.parametrize(("auth", "scheme"), [("AWS_IAM", "AWS_IAM"), ("JWT", "JWT")])
def test_every_route_requires_the_chosen_authoriser(translated: dict[str, Any], auth: str, scheme: str) -> None:
    stack = deployed(translated, ApiAuth=auth, JwtIssuer="https://issuer.example", JwtAudience="client-id")
    body = only(stack, "AWS::ApiGatewayV2::Api")["Body"]

    assert {key: op["security"] for key, op in api_routes(stack).items()} == {
        key: [{scheme: []}] for key in api_routes(translated)
    }
    assert set(body["components"]["securitySchemes"]) == {scheme}


def test_iam_is_the_default_authoriser_and_signs_with_sigv4(translated: dict[str, Any]) -> None:
    schemes = only(deployed(translated), "AWS::ApiGatewayV2::Api")["Body"]["components"]["securitySchemes"]

    assert schemes == {
        "AWS_IAM": {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "x-amazon-apigateway-authtype": "awsSigv4",
        }
    }


def test_jwt_authoriser_checks_issuer_and_audience(translated: dict[str, Any]) -> None:
    stack = deployed(translated, ApiAuth="JWT", JwtIssuer="https://issuer.example", JwtAudience="a,b")
    jwt = only(stack, "AWS::ApiGatewayV2::Api")["Body"]["components"]["securitySchemes"]["JWT"]

    assert jwt["x-amazon-apigateway-authorizer"]["jwtConfiguration"] == {
        "issuer": "https://issuer.example",
        "audience": ["a", "b"],
    }


def test_auth_none_leaves_routes_open(translated: dict[str, Any]) -> None:
    stack = deployed(translated, ApiAuth="NONE")

    assert all(operation["security"] == [] for operation in api_routes(stack).values())


def test_artifact_bucket_is_encrypted_versioned_and_private(translated: dict[str, Any]) -> None:
    bucket = deployed(translated)["Resources"]["ArtifactBucket"]["Properties"]  # with a KMS key: test_encryption_rules
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]

    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
    )


def test_artifact_bucket_refuses_requests_without_tls(translated: dict[str, Any]) -> None:
    policy = only(translated, "AWS::S3::BucketPolicy")
    denials = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    insecure = [s for s in denials if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]

    assert policy["Bucket"] == {"Ref": "ArtifactBucket"}
    assert len(insecure) == 1
    assert insecure[0]["Principal"] == "*"
    assert insecure[0]["Action"] == "s3:*"
    assert insecure[0]["Resource"] == [
        {"Fn::GetAtt": ["ArtifactBucket", "Arn"]},
        {"Fn::Sub": "${ArtifactBucket.Arn}/*"},
    ]


def test_artifact_bucket_expires_old_checkpoints_and_versions(translated: dict[str, Any]) -> None:
    rules = translated["Resources"]["ArtifactBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    checkpoints = [r for r in rules if r.get("Prefix") == "checkpoints/" and "ExpirationInDays" in r]
    noncurrent = [r for r in rules if "NoncurrentVersionExpiration" in r and "Prefix" not in r]

    assert all(rule["Status"] == "Enabled" for rule in rules)
    assert len(checkpoints) == 1
    assert len(noncurrent) == 1


def test_training_repository_is_immutable_and_scanned(translated: dict[str, Any]) -> None:
    repository = only(translated, "AWS::ECR::Repository")
    lifecycle = json.loads(repository["LifecyclePolicy"]["LifecyclePolicyText"])

    assert repository["ImageTagMutability"] == "IMMUTABLE"
    assert repository["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert {rule["selection"]["tagStatus"] for rule in lifecycle["rules"]} == {"untagged", "any"}


def test_batch_retries_spot_reclaims_and_sigterm_then_exits_on_anything_else(translated: dict[str, Any]) -> None:
    rules = only(translated, "AWS::Batch::JobDefinition")["RetryStrategy"]["EvaluateOnExit"]

    assert {"OnStatusReason": "Host EC2*", "Action": "RETRY"} in rules
    assert {"OnExitCode": "143", "Action": "RETRY"} in rules
    assert rules[-1] == {"OnReason": "*", "Action": "EXIT"}


def test_batch_job_asks_for_a_gpu_on_an_nvidia_image(translated: dict[str, Any]) -> None:
    container = only(translated, "AWS::Batch::JobDefinition")["ContainerProperties"]
    compute = only(translated, "AWS::Batch::ComputeEnvironment")["ComputeResources"]

    assert {"Type": "GPU", "Value": {"Ref": "TrainingGpus"}} in container["ResourceRequirements"]
    assert compute["Ec2Configuration"] == [{"ImageType": "ECS_AL2023_NVIDIA"}]
    assert compute["MinvCpus"] == 0
    assert compute["Type"] == {"Ref": "BatchComputeType"}
    assert compute["Subnets"] == {"Ref": "BatchSubnetIds"}


def test_no_container_runs_privileged(translated: dict[str, Any]) -> None:
    definitions = resources_of_type(translated, "AWS::Batch::JobDefinition").values()

    assert definitions
    assert all(d["Properties"]["ContainerProperties"].get("Privileged", False) is False for d in definitions)


def test_batch_exists_only_when_subnets_are_given(translated: dict[str, Any]) -> None:
    without = deployed(translated)
    with_batch = deployed(translated, BatchSubnetIds="subnet-1,subnet-2", BatchSecurityGroupIds="sg-1")

    assert not resources_of_type(without, "AWS::Batch::JobQueue")
    assert resources_of_type(with_batch, "AWS::Batch::JobQueue")
    assert set(without["Outputs"]) >= SML_OUTPUTS
    assert set(with_batch["Outputs"]) >= SML_OUTPUTS | BATCH_OUTPUTS


def test_no_policy_grants_a_wildcard_action(translated: dict[str, Any]) -> None:
    actions = [(owner, action) for owner, s in policy_statements(translated) for action in as_list(s["Action"])]

    assert actions
    assert [(owner, action) for owner, action in actions if "*" in action] == []


def test_no_policy_grants_a_write_on_every_resource(translated: dict[str, Any]) -> None:
    offending = []
    for owner, statement in policy_statements(translated):
        if statement["Effect"] != "Allow" or "*" not in as_list(statement["Resource"]):
            continue
        for action in as_list(statement["Action"]):
            if action.split(":")[1].startswith(READ_ONLY_VERBS):
                continue
            needs_condition = action in WILDCARD_WRITES_NEEDING_CONDITION
            if action not in WILDCARD_WRITES or (needs_condition and "Condition" not in statement):
                offending.append((owner, action))

    assert offending == []


def test_only_listed_aws_managed_policies_are_attached(translated: dict[str, Any]) -> None:
    attached = set()
    for role in resources_of_type(translated, "AWS::IAM::Role").values():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            if isinstance(arn, dict) and "Ref" in arn:
                continue  # a policy this stack writes, checked with the others
            attached.add(re.split(r"[/:]", arn["Fn::Sub"] if isinstance(arn, dict) else arn)[-1])

    assert attached <= set(AWS_MANAGED_POLICIES)


def test_s3_object_access_is_scoped_to_training_prefixes(translated: dict[str, Any]) -> None:
    object_resources = []
    for _, statement in policy_statements(translated):
        if any(action.startswith("s3:") and action != "s3:ListBucket" for action in as_list(statement["Action"])):
            object_resources += as_list(statement["Resource"])

    assert object_resources
    for resource in object_resources:
        (prefix,) = re.fullmatch(r"\$\{ArtifactBucket\.Arn\}/(.+)\*", resource["Fn::Sub"]).groups()  # type: ignore[union-attr]
        assert prefix in TRAINING_PREFIXES


def test_bucket_listing_is_limited_to_training_prefixes(translated: dict[str, Any]) -> None:
    listings = [s for _, s in policy_statements(translated) if "s3:ListBucket" in as_list(s["Action"])]

    assert listings
    for statement in listings:
        prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
        assert {prefix.rstrip("*") for prefix in prefixes} <= set(TRAINING_PREFIXES)


def test_function_role_may_only_log_and_trace(translated: dict[str, Any]) -> None:
    role = deployed(translated)["Resources"]["PredictFunctionRole"]["Properties"]  # a KMS key adds Decrypt
    actions = {
        a for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"] for a in as_list(s["Action"])
    }

    assert "ManagedPolicyArns" not in role
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
