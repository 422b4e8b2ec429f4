"""CloudFormation YAML as `sam local` reads it: short-form intrinsics, parameter defaults, !Ref and !Sub."""

import re
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"  # the account `sam local` reports


class CloudFormationLoader(yaml.SafeLoader):
    """A SafeLoader that reads short-form intrinsics (!Ref, !Sub, !GetAtt, !If, ...) as their long form."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def parameter_values(document: dict[str, Any], region: str) -> dict[str, str]:
    """Parameter defaults and the pseudo parameters, as the strings a !Ref to them yields."""
    values = {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "local",
    }
    for name, spec in (document.get("Parameters") or {}).items():
        if isinstance(spec, dict) and "Default" in spec:
            values[name] = scalar_text(spec["Default"])
    return values


def resolve_value(value: Any, parameters: dict[str, str]) -> str | None:
    """A plain value, a !Ref to a parameter, or a !Sub over parameters; None for anything only AWS can resolve."""
    if not isinstance(value, dict):
        return scalar_text(value)
    if set(value) == {"Ref"}:
        return parameters.get(str(value["Ref"]))
    if set(value) == {"Fn::Sub"}:
        text, extra = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
        scope = dict(parameters)
        for name, item in extra.items():
            resolved = resolve_value(item, parameters)
            if resolved is None:
                return None
            scope[name] = resolved
        names = re.findall(r"\$\{([^}!]+)\}", text)
        if any(name not in scope for name in names):
            return None
        return re.sub(r"\$\{([^}!]+)\}", lambda match: scope[match.group(1)], text)
    return None


def is_intrinsic(value: dict[str, Any]) -> bool:
    keys = [str(key) for key in value]
    return len(keys) == 1 and (keys[0] in ("Ref", "Condition") or keys[0].startswith("Fn::"))


def scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
