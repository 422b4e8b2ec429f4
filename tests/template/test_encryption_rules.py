"""The optional customer-managed KMS key (KmsKeyArn, or CreateKmsKey=true): everything that stores data uses it,
the function may only decrypt a sealed model's data key with it, and without one the stack is as it always was."""

import json
from typing import Any

import pytest

from tests.template.cfn import deployed, rule_violations
from tests.template.test_template_rules import as_list, resources_of_type

GIVEN_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CREATED_KEY = {"Fn::GetAtt": ["ModelKey", "Arn"]}
KEYS = {"given": ({"KmsKeyArn": GIVEN_KEY}, GIVEN_KEY), "created": ({"CreateKmsKey": "true"}, CREATED_KEY)}


def test_without_a_key_the_stack_uses_aws_managed_encryption(translated: dict[str, Any]) -> None:
    stack = deployed(translated)
    resources = stack["Resources"]

    assert resources_of_type(stack, "AWS::KMS::Key") == {} and resources_of_type(stack, "AWS::KMS::Alias") == {}
    (encryption,) = resources["ArtifactBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    assert resources["TrainingRepository"]["Properties"]["EncryptionConfiguration"] == {"EncryptionType": "AES256"}
    assert all(
        "KmsKeyId" not in group["Properties"] for group in resources_of_type(stack, "AWS::Logs::LogGroup").values()
    )
    assert "KmsKeyArn" not in resources["PredictFunction"]["Properties"]
    assert "kms:" not in json.dumps(resources)
    assert "ModelKeyArn" not in stack["Outputs"]


@pytest.mark.parametrize("key", sorted(KEYS))
def test_with_a_key_the_bucket_images_logs_and_environment_use_it(translated: dict[str, Any], key: str) -> None:
    parameters, arn = KEYS[key]
    stack = deployed(translated, **parameters)
    resources = stack["Resources"]

    (encryption,) = resources["ArtifactBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption == {
        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": arn},
        "BucketKeyEnabled": True,
    }
    assert resources["TrainingRepository"]["Properties"]["EncryptionConfiguration"] == {
        "EncryptionType": "KMS",
        "KmsKey": arn,
    }
    groups = resources_of_type(stack, "AWS::Logs::LogGroup")
    assert groups and all(group["Properties"]["KmsKeyId"] == arn for group in groups.values())
    assert resources["PredictFunction"]["Properties"]["KmsKeyArn"] == arn
    assert stack["Outputs"]["ModelKeyArn"]["Value"] == {"Fn::If": ["CreatesKmsKey", CREATED_KEY, {"Ref": "KmsKeyArn"}]}
    assert ("ModelKey" in resources) is (key == "created")


@pytest.mark.parametrize("key", sorted(KEYS))
def test_the_function_may_only_decrypt_a_data_key_naming_a_model(translated: dict[str, Any], key: str) -> None:
    parameters, arn = KEYS[key]
    role = deployed(translated, **parameters)["Resources"]["PredictFunctionRole"]["Properties"]

    kms = [
        s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"] if "kms:" in str(s["Action"])
    ]

    assert kms == [
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": arn,
            "Condition": {
                "Null": {"kms:EncryptionContext:model": "false", "kms:EncryptionContext:sha256": "false"},
                "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["model", "sha256"]},
            },
        }
    ]


@pytest.mark.parametrize("key", sorted(KEYS))
def test_training_jobs_use_the_key_through_s3_only(translated: dict[str, Any], key: str) -> None:
    parameters, arn = KEYS[key]
    policy = deployed(translated, **parameters)["Resources"]["TrainingArtifactsPolicy"]["Properties"]

    kms = [s for s in policy["PolicyDocument"]["Statement"] if any("kms:" in a for a in as_list(s["Action"]))]

    assert [(s["Action"], s["Resource"]) for s in kms] == [(["kms:Decrypt", "kms:GenerateDataKey"], arn)]
    assert kms[0]["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}}


def test_a_created_key_rotates_and_lets_cloudwatch_logs_use_it_for_this_account_only(
    translated: dict[str, Any],
) -> None:
    key = deployed(translated, CreateKmsKey="true")["Resources"]["ModelKey"]
    statements = {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}

    assert key["Properties"]["EnableKeyRotation"] is True
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert set(statements) == {"AccountAdministersAndGrantsThroughIam", "CloudWatchLogsEncryptsThisAccountsLogGroups"}
    logs = statements["CloudWatchLogsEncryptsThisAccountsLogGroups"]
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    assert "kms:*" not in as_list(logs["Action"])
    assert list(logs["Condition"]["ArnLike"]) == ["kms:EncryptionContext:aws:logs:arn"]


def test_rules_refuse_a_given_key_and_a_created_one_together(translated: dict[str, Any]) -> None:
    assert rule_violations(translated, CreateKmsKey="true", KmsKeyArn=GIVEN_KEY) == [
        "CreateKmsKey=true creates a key; leave KmsKeyArn empty, or set CreateKmsKey=false."
    ]
    assert rule_violations(translated, CreateKmsKey="true") == []
    assert rule_violations(translated, KmsKeyArn=GIVEN_KEY) == []
