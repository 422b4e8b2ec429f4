"""Translate a SAM template to plain CloudFormation JSON offline, as CloudFormation's SAM transform would.

Runs in the tools venv, which has aws-sam-translator (scripts/template_tools.sh makes it):
    .venv-tools/bin/python scripts/sam_translate.py template.yaml [--parameter Name=Value ...] > out.json
No AWS call is made: the managed-policy map is fixed and the region comes from the command line.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ACCOUNT_ID = "123456789012"
PACKAGE_BUCKET = "sam-package-placeholder"
LOCAL_CODE_PROPERTIES = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
# AWS managed policies a template names by name rather than ARN (SAM's shorthand). Ours names
# none, so translation never needs IAM's ListPolicies.
MANAGED_POLICIES: dict[str, str] = {}


class FixedManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader, which lists policies through IAM."""

    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


def point_code_at_s3(template: dict[str, Any]) -> None:
    """Replace local code folders by S3 URIs, as `sam package` does before CloudFormation sees the template."""
    for resource in template.get("Resources", {}).values():
        prop = LOCAL_CODE_PROPERTIES.get(resource.get("Type"))
        location = (resource.get("Properties") or {}).get(prop)
        if prop and isinstance(location, str) and not location.startswith("s3://"):
            resource["Properties"][prop] = f"s3://{PACKAGE_BUCKET}/{location.strip('/')}.zip"


def translate(template_path: Path, parameters: dict[str, str], region: str) -> dict[str, Any]:
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator asks boto3 for the region; no request is sent
    template = yaml_parse(template_path.read_text(encoding="utf-8"))
    point_code_at_s3(template)
    values = {"AWS::Region": region, "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": "serverless-ml", **parameters}
    translated: dict[str, Any] = transform(template, values, FixedManagedPolicyLoader())
    return translated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the translator warns about feature toggles it has no config for

    try:
        translated = translate(args.template, dict(item.split("=", 1) for item in args.parameter), args.region)
    except InvalidDocumentException as error:
        for cause in error.causes:
            print(f"{args.template}: {cause.message}", file=sys.stderr)
        return 1
    json.dump(translated, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
