"""The stack has no dependency cycle, for every combination of conditions we ship (issue 14, defect 1)."""

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.template.cfn import deployed, parameter_values
from tests.template.conftest import TEMPLATE, translate_many
from tests.template.graph import dangling, find_cycle, references, resource_graph

CYCLIC_FIXTURE = Path(__file__).with_name("fixtures") / "cyclic-api-alarm.yaml"
BATCH = {"off": {}, "on": {"BatchSubnetIds": "subnet-1,subnet-2", "BatchSecurityGroupIds": "sg-1"}}
SERVING = {
    "plain": {},
    "snapstart": {"EnableSnapStart": "true"},
    "provisioned": {"ProvisionedConcurrency": "2", "ReservedConcurrency": "5"},
}
AUTH = {
    "AWS_IAM": {"ApiAuth": "AWS_IAM"},
    "JWT": {"ApiAuth": "JWT", "JwtIssuer": "https://issuer.example", "JwtAudience": "client-id"},
    "NONE": {"ApiAuth": "NONE"},
}
COMBINATIONS = {
    f"batch-{batch}-{serving}-{auth}": {**BATCH[batch], **SERVING[serving], **AUTH[auth]}
    for batch, serving, auth in itertools.product(BATCH, SERVING, AUTH)
}
# The KMS key touches resources on every side (bucket, images, logs, function, roles): with Batch on and off.
KMS_KEY = {
    "given": {"KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
    "created": {"CreateKmsKey": "true"},
}
COMBINATIONS |= {
    f"kms-{key}-batch-{batch}-plain-AWS_IAM": {**KMS_KEY[key], **BATCH[batch]}
    for key, batch in itertools.product(KMS_KEY, BATCH)
}


@pytest.fixture(scope="module")
def translations() -> dict[str, dict[str, Any]]:
    """template.yaml translated with each combination's parameters (SAM resolves some of them itself)."""
    return dict(zip(COMBINATIONS, translate_many(TEMPLATE, list(COMBINATIONS.values())), strict=True))


def stack_graph(translated: dict[str, Any], parameters: dict[str, str]) -> dict[str, set[str]]:
    """The graph of the resources CloudFormation would create, with conditions and Fn::If resolved."""
    return resource_graph(deployed(translated, **parameters)["Resources"])


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_stack_has_no_dependency_cycle(translations: dict[str, dict[str, Any]], combination: str) -> None:
    translated, parameters = translations[combination], COMBINATIONS[combination]
    stack = deployed(translated, **parameters)

    cycle = find_cycle(resource_graph(stack["Resources"]))

    assert cycle is None, "circular dependency: " + " -> ".join(cycle or [])
    known = set(parameter_values(translated)) | set(stack["Conditions"])
    assert dangling(stack["Resources"], known) == {}, "references to resources this combination does not create"


def test_graph_check_names_the_cycle_of_an_alarm_on_the_api_in_the_deployment() -> None:
    (translated,) = translate_many(CYCLIC_FIXTURE, [{}])

    cycle = find_cycle(stack_graph(translated, {}))

    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {
        "ApiServerErrorsAlarm",
        "PredictHttpApi",
        "PredictFunctionAliaslive",  # its integration URI
        "PredictFunctionDeploymentGroup",  # named by the alias's UpdatePolicy, it names the alarm
    }


def test_references_are_read_from_every_intrinsic_form() -> None:
    node = {
        "A": {"Ref": "Bucket"},
        "B": {"Fn::GetAtt": ["Role", "Arn"]},
        "C": {"Fn::GetAtt": "Queue.Arn"},
        "D": {"Fn::Sub": "arn:${AWS::Partition}:x:${Api}/${Function.Version.Version}/${!Literal}"},
        "E": {"Fn::Sub": ["${Local}-${Table.Arn}", {"Local": {"Ref": "Topic"}}]},
        "F": [{"Fn::Join": ["", [{"Ref": "Key"}]]}],
    }

    assert references(node) == {"Bucket", "Role", "Queue", "AWS::Partition", "Api", "Function", "Table", "Topic", "Key"}


def test_dependencies_include_update_and_creation_policies_metadata_and_depends_on() -> None:
    resources: dict[str, dict[str, Any]] = {
        "Alias": {
            "Properties": {"FunctionVersion": {"Fn::GetAtt": ["Version", "Version"]}},
            "UpdatePolicy": {"CodeDeployLambdaAliasUpdate": {"DeploymentGroupName": {"Ref": "Group"}}},
            "CreationPolicy": {"Signal": {"Count": {"Ref": "Count"}}},
            "Metadata": {"Note": {"Fn::Sub": "${Note}"}},
            "DependsOn": "Other",
        },
        "Version": {},
        "Group": {},
        "Count": {},
        "Note": {},
        "Other": {"DependsOn": ["Version"]},
    }

    graph = resource_graph(resources)

    assert graph["Alias"] == {"Version", "Group", "Count", "Note", "Other"}
    assert graph["Other"] == {"Version"}
    assert find_cycle(graph) is None
    graph["Version"] = {"Alias"}
    assert find_cycle(graph) == ["Alias", "Other", "Version", "Alias"]


def test_only_the_taken_branch_of_fn_if_is_a_dependency() -> None:
    template = {
        "Parameters": {"On": {"Type": "String", "Default": "no"}},
        "Conditions": {"IsOn": {"Fn::Equals": [{"Ref": "On"}, "yes"]}},
        "Resources": {
            "A": {"Properties": {"X": {"Fn::If": ["IsOn", {"Ref": "B"}, {"Ref": "AWS::NoValue"}]}}},
            "B": {"Properties": {"Y": {"Ref": "A"}}},
        },
    }

    assert find_cycle(stack_graph(template, {})) is None
    assert find_cycle(stack_graph(template, {"On": "yes"})) == ["A", "B", "A"]
