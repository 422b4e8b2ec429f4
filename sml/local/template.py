"""Read a SAM template the way `sam local` does: each function's code, handler, environment and API routes."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sml.errors import UserError
from sml.local.cloudformation import CloudFormationLoader, is_intrinsic, parameter_values, resolve_value

FUNCTION_TYPE = "AWS::Serverless::Function"
DEFAULT_MEMORY_MB = 128  # Lambda's defaults when the template says nothing
DEFAULT_TIMEOUT_S = 3


@dataclass(frozen=True)
class Route:
    """One API event: `method` is GET, POST, ... or ANY; `path` may hold {name} / {proxy+}, or be $default."""

    function_id: str
    method: str
    path: str
    api: str  # "HttpApi" or "Api" (REST)
    payload_version: str  # "2.0" by default for HttpApi, always "1.0" for Api


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_dir: Path
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: float
    environment: dict[str, str]
    declared_env: frozenset[str]  # every variable the template declares, resolvable or not
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class Template:
    path: Path
    functions: dict[str, Function]
    skipped: dict[str, str]  # logical id -> why it cannot run locally
    notes: tuple[str, ...]  # what we read but could not use, for the user to see

    def function(self, logical_id: str | None) -> Function:
        """The function to invoke; the only one when the template has one and no id is given."""
        if logical_id is None:
            if len(self.functions) != 1:
                names = ", ".join(sorted(self.functions)) or "none"
                raise UserError(f"{self.path} has {len(self.functions)} functions ({names}); name one")
            return next(iter(self.functions.values()))
        if logical_id in self.skipped:
            raise UserError(f"{logical_id} cannot run locally: {self.skipped[logical_id]}")
        if logical_id not in self.functions:
            names = ", ".join(sorted(self.functions)) or "none"
            raise UserError(f"{self.path} has no function {logical_id!r} (functions: {names})")
        return self.functions[logical_id]


def load_template(path: Path, region: str) -> Template:
    """Parse `path`; intrinsics in env values resolve against parameter defaults and pseudo parameters."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)
    except FileNotFoundError:
        raise UserError(f"template {path} not found; pass --template") from None
    except yaml.YAMLError as error:
        raise UserError(f"template {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise UserError(f"template {path} has no Resources section")

    parameters = parameter_values(document, region)
    global_props = ((document.get("Globals") or {}).get("Function")) or {}
    functions: dict[str, Function] = {}
    skipped: dict[str, str] = {}
    notes: list[str] = []
    for logical_id, resource in document["Resources"].items():
        if not isinstance(resource, dict) or resource.get("Type") != FUNCTION_TYPE:
            continue
        props = merge_globals(global_props, resource.get("Properties") or {})
        reason = _why_not_runnable(props)
        if reason:
            skipped[logical_id] = reason
            notes.append(f"{logical_id}: skipped, {reason}")
            continue
        functions[logical_id] = Function(
            logical_id=logical_id,
            code_dir=(path.parent / props["CodeUri"]).resolve(),
            handler=props["Handler"],
            runtime=props["Runtime"],
            memory_mb=int(_number(props.get("MemorySize"), parameters, DEFAULT_MEMORY_MB)),
            timeout_s=_number(props.get("Timeout"), parameters, DEFAULT_TIMEOUT_S),
            environment=_environment(logical_id, props, parameters, notes),
            declared_env=frozenset(((props.get("Environment") or {}).get("Variables")) or {}),
            routes=_routes(logical_id, props, notes),
        )
    return Template(path=path, functions=functions, skipped=skipped, notes=tuple(notes))


def merge_globals(global_props: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """SAM's rule: maps merge (the resource wins), lists add up, anything else the resource overrides."""
    merged = dict(global_props)
    for key, value in props.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict) and not is_intrinsic(value):
            merged[key] = merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = base + value
        else:
            merged[key] = value
    return merged


def _why_not_runnable(props: dict[str, Any]) -> str | None:
    if props.get("PackageType") == "Image":
        return "image functions need docker (use `sam local invoke`)"
    if not isinstance(props.get("CodeUri"), str):
        return "CodeUri is not a local folder"
    if not isinstance(props.get("Handler"), str) or "." not in props["Handler"]:
        return "Handler is not of the form module.function"
    if not str(props.get("Runtime", "")).startswith("python"):
        return f"runtime {props.get('Runtime')!r} is not Python"
    return None


def _environment(
    logical_id: str, props: dict[str, Any], parameters: dict[str, str], notes: list[str]
) -> dict[str, str]:
    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    environment: dict[str, str] = {}
    for name, value in variables.items():
        resolved = resolve_value(value, parameters)
        if resolved is None:
            notes.append(f"{logical_id}: env {name} = {value} cannot be resolved locally; left unset")
        else:
            environment[name] = resolved
    return environment


def _routes(logical_id: str, props: dict[str, Any], notes: list[str]) -> tuple[Route, ...]:
    routes = []
    for event_id, event in (props.get("Events") or {}).items():
        kind = event.get("Type")
        if kind not in ("HttpApi", "Api"):
            continue
        event_props = event.get("Properties") or {}
        default_path, default_method = ("$default", "ANY") if kind == "HttpApi" else (None, None)
        path, method = event_props.get("Path", default_path), event_props.get("Method", default_method)
        if not isinstance(path, str) or not isinstance(method, str):
            notes.append(f"{logical_id}: event {event_id} has no literal Path/Method; not served")
            continue
        method = "ANY" if method.lower() in ("any", "*", "x-amazon-apigateway-any-method") else method.upper()
        version = str(event_props.get("PayloadFormatVersion", "2.0")) if kind == "HttpApi" else "1.0"
        routes.append(Route(function_id=logical_id, method=method, path=path, api=kind, payload_version=version))
    return tuple(routes)


def _number(value: Any, parameters: dict[str, str], default: float) -> float:
    """A number property, literal or a !Ref to a parameter's default; Lambda's default otherwise."""
    text = resolve_value(value, parameters) if value is not None else None
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default
