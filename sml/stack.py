"""The deployed stack as `sml` sees it: its name and region from samconfig.toml (as `sam deploy` reads them,
--config-file and --config-env included),
and its outputs and parameters from CloudFormation, fetched once and only when a flag does not give the value.
"""

import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from sml.errors import UserError

SAMCONFIG = Path("samconfig.toml")
SAMCONFIG_ENVIRONMENT = "default"  # SAM's own default for --config-env
BATCH_HINT = "the stack creates AWS Batch only when deployed with BatchSubnetIds (see the README, Train on AWS)"


@dataclass(frozen=True)
class SamConfig:
    """What `sam deploy` would use: `[ENV.deploy.parameters]` over `[ENV.global.parameters]`."""

    stack_name: str | None = None
    region: str | None = None
    profile: str | None = None


def read_samconfig(
    path: Path = SAMCONFIG, environment: str = SAMCONFIG_ENVIRONMENT, explicit: bool = False
) -> SamConfig:
    """The stack name, region and profile of one environment in samconfig.toml, as `sam deploy --config-env` reads it.

    All None when the file or the environment is absent, unless `explicit` (the user named them): then a UserError.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if explicit:
            raise UserError(f"--config-file {path} not found") from None
        return SamConfig()
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path} is not valid TOML: {error}") from None
    if explicit and environment not in document:
        found = ", ".join(name for name, value in document.items() if isinstance(value, dict)) or "none"
        raise UserError(f"{path} has no environment [{environment}] (it has: {found}); pass another --config-env")
    environment_table = document.get(environment, {})
    values = {
        **environment_table.get("global", {}).get("parameters", {}),
        **environment_table.get("deploy", {}).get("parameters", {}),
    }
    return SamConfig(stack_name=values.get("stack_name"), region=values.get("region"), profile=values.get("profile"))


class Stack:
    """A CloudFormation stack's outputs and parameters, described on first use."""

    def __init__(self, session: boto3.Session, name: str | None) -> None:
        self.session = session
        self._name = name

    @property
    def name(self) -> str:
        if not self._name:
            raise UserError("no stack name: pass --stack-name, or run sml where samconfig.toml names the stack")
        return self._name

    @cached_property
    def _description(self) -> dict[str, dict[str, str]]:
        cloudformation = self.session.client("cloudformation")
        try:
            (stack,) = cloudformation.describe_stacks(StackName=self.name)["Stacks"]
        except ClientError as error:
            if "does not exist" in error.response.get("Error", {}).get("Message", ""):
                raise UserError(
                    f"stack {self.name!r} not found in {self.session.region_name}: "
                    "deploy it with `sam deploy`, or pass --stack-name and --region"
                ) from None
            raise
        return {
            "outputs": {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])},
            "parameters": {
                item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])
            },
        }

    def output(self, key: str, flag: str, hint: str = "") -> str:
        """The output `key`, or a UserError naming the flag that gives the value instead."""
        value = self._description["outputs"].get(key)
        if not value:
            reason = f" ({hint})" if hint else ""
            raise UserError(f"stack {self.name!r} has no output {key}{reason}; pass {flag}")
        return value

    def optional_output(self, key: str) -> str | None:
        """The output `key` where the stack has it (a condition may leave it out); None too when sml knows no
        stack, as when flags gave every other value."""
        if not self._name:
            return None
        return self._description["outputs"].get(key) or None

    def parameter(self, key: str) -> str | None:
        return self._description["parameters"].get(key)
