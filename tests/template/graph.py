"""CloudFormation's resource graph of a deployed template, and the cycles that make it refuse a change set.

CloudFormation orders resources by every reference between them, wherever it sits in the resource:
Ref, Fn::GetAtt and Fn::Sub in Properties, UpdatePolicy, CreationPolicy and Metadata, plus DependsOn.
A cycle among them ("Circular dependency between resources") stops the stack before anything is made.
"""

import re
from typing import Any

# Where a resource may refer to another; CloudFormation resolves all of them before it creates the resource.
REFERRING_KEYS = ("Properties", "UpdatePolicy", "CreationPolicy", "Metadata")
# ${Name} or ${Name.Attribute} in an Fn::Sub string; ${!Literal} is text, not a reference.
SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


def references(node: Any) -> set[str]:
    """Logical ids (and parameters, pseudo parameters) that `node` names through Ref, Fn::GetAtt or Fn::Sub."""
    if isinstance(node, list):
        return set().union(*(references(item) for item in node))
    if not isinstance(node, dict):
        return set()
    if len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref" and isinstance(arg, str):
            return {arg}
        if key == "Fn::GetAtt":
            # ["Name", "Attr"] or the short string "Name.Attr" (the attribute may hold dots itself)
            return {arg.split(".", 1)[0] if isinstance(arg, str) else arg[0]} | references(arg)
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            named = {match.split(".", 1)[0].strip() for match in SUB_VARIABLE.findall(text)}
            return (named - set(variables)) | references(variables)
    return set().union(*(references(value) for value in node.values()))


def dependencies(resource: dict[str, Any], resource_ids: set[str]) -> set[str]:
    """The resources CloudFormation must create before `resource`."""
    found = set().union(*(references(resource.get(key)) for key in REFERRING_KEYS))
    depends_on = resource.get("DependsOn", [])
    found |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
    return found & resource_ids


def resource_graph(resources: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Logical id -> the logical ids it depends on, for a template whose conditions are resolved."""
    ids = set(resources)
    return {logical_id: dependencies(resource, ids) for logical_id, resource in resources.items()}


def dangling(resources: dict[str, dict[str, Any]], known: set[str]) -> dict[str, set[str]]:
    """Names a resource refers to that are neither a resource nor in `known` (parameters, pseudo parameters)."""
    missing = {}
    for logical_id, resource in resources.items():
        named = set().union(*(references(resource.get(key)) for key in REFERRING_KEYS))
        depends_on = resource.get("DependsOn", [])
        named |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
        unknown = {name for name in named - set(resources) - known if not name.startswith("AWS::")}
        if unknown:
            missing[logical_id] = unknown
    return missing


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One dependency cycle as [a, b, ..., a] (a needs b, ...), or None when the graph is acyclic."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None
