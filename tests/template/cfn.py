"""Evaluate a CloudFormation template's conditions and Fn::If for given parameter values, as a deploy would."""

from pathlib import Path
from typing import Any

import yaml

from sml.local.cloudformation import CloudFormationLoader

NO_VALUE = object()  # what !Ref AWS::NoValue leaves behind; dropped from maps and lists


def load_sam_template(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)
    return document


def parameter_values(template: dict[str, Any], **overrides: str) -> dict[str, Any]:
    """Each parameter's default (lists split like CommaDelimitedList), with overrides applied."""
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        raw = str(overrides.get(name, spec.get("Default", "")))
        values[name] = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
    unknown = set(overrides) - set(values)
    if unknown:
        raise KeyError(f"no such parameters: {sorted(unknown)}")
    return values


def evaluate_conditions(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, bool]:
    conditions = template.get("Conditions", {})
    results: dict[str, bool] = {}

    def condition(name: str) -> bool:
        if name not in results:
            results[name] = bool(resolve(conditions[name], parameters, condition))
        return results[name]

    for name in conditions:
        condition(name)
    return results


def resolve(node: Any, parameters: dict[str, Any], condition: Any) -> Any:
    """Resolve Ref to parameters, Condition and Fn::If/Equals/Not/And/Or/Join/EachMemberEquals; leave the rest."""
    if isinstance(node, list):
        items = [resolve(item, parameters, condition) for item in node]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref" and arg == "AWS::NoValue":
            return NO_VALUE
        if key == "Ref" and arg in parameters:
            return parameters[arg]
        if key == "Condition":
            return condition(arg)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return resolve(when_true if condition(name) else when_false, parameters, condition)
        if key == "Fn::Equals":
            left, right = (resolve(item, parameters, condition) for item in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not resolve(arg[0], parameters, condition)
        if key == "Fn::And":
            return all(resolve(item, parameters, condition) for item in arg)
        if key == "Fn::Or":
            return any(resolve(item, parameters, condition) for item in arg)
        if key == "Fn::EachMemberEquals":  # a rule function: every item of a list parameter equals a value
            items, value = (resolve(item, parameters, condition) for item in arg)
            return all(str(item) == str(value) for item in items)
        if key == "Fn::Join":
            separator, items = arg
            return separator.join(str(item) for item in resolve(items, parameters, condition))
    resolved = {key: resolve(value, parameters, condition) for key, value in node.items()}
    return {key: value for key, value in resolved.items() if value is not NO_VALUE}


def deployed(template: dict[str, Any], **overrides: str) -> dict[str, Any]:
    """The template as CloudFormation would create it: conditional resources dropped, Fn::If resolved."""
    parameters = parameter_values(template, **overrides)
    conditions = evaluate_conditions(template, parameters)
    resources = {
        logical_id: resolve(resource, parameters, conditions.__getitem__)
        for logical_id, resource in template["Resources"].items()
        if conditions.get(resource.get("Condition", ""), True)
    }
    outputs = {
        name: output
        for name, output in template.get("Outputs", {}).items()
        if conditions.get(output.get("Condition", ""), True)
    }
    return {"Resources": resources, "Outputs": outputs, "Conditions": conditions}


def rule_violations(template: dict[str, Any], **overrides: str) -> list[str]:
    """AssertDescription of each Rules assertion CloudFormation would refuse the parameters with."""
    parameters = parameter_values(template, **overrides)
    conditions = evaluate_conditions(template, parameters)
    violations = []
    for rule in template.get("Rules", {}).values():
        if not resolve(rule.get("RuleCondition", True), parameters, conditions.__getitem__):
            continue
        for assertion in rule["Assertions"]:
            if not resolve(assertion["Assert"], parameters, conditions.__getitem__):
                violations.append(assertion["AssertDescription"])
    return violations
