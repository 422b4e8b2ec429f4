"""JSON schemas for the OpenAPI document, built from the model card: input shape, labels, errors."""

from typing import Any

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from model import Model

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
ERROR_DESCRIPTIONS = {
    400: "The body is not valid JSON, or the event is not an API Gateway HTTP API event",
    413: "More instances than MAX_BATCH, or than fit in Lambda's 6 MB answer (the message says how many)",
    415: "The Content-Type is not application/json",
    422: "The instances do not fit the model's input (a value of the wrong type, a missing or unknown feature, a "
    "category over 256 characters, an object naming a key twice), or hold values that are not finite numbers",
    503: "The model bundle is missing, corrupt or breaks the bundle contract",
}


def error_responses(*statuses: int) -> dict[int, OpenAPIResponse]:
    return {
        status: {"description": ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        for status in (400, *statuses)
        if status in ERROR_DESCRIPTIONS
    }


def array_of(items: dict[str, Any], size: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": items}
    if size is not None:
        schema |= {"minItems": size, "maxItems": size}
    return schema


def instance_schema(model: Model | None) -> dict[str, Any]:
    if model is None:
        return array_of({"type": "number"})
    features = model.card["input"].get("features")
    if features:
        return rows_by_position_or_name(features)
    schema: dict[str, Any] = {"type": "number"}
    for size in reversed(model.row_shape):
        schema = array_of(schema, size)
    names = model.card["input"].get("feature_names") or []
    schema["description"] = f"One instance of shape {list(model.row_shape)}, finite numbers" + (
        f"; features in order: {', '.join(names)}" if names else ""
    )
    if names and len(model.row_shape) == 1:
        return rows_by_position_or_name([{"name": name, "kind": "numeric"} for name in names], schema)
    return schema


def rows_by_position_or_name(
    features: list[dict[str, Any]], positional: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One instance: a list of values in card order, or an object keyed by feature name (records.py)."""
    values = {feature["name"]: value_schema(feature) for feature in features}
    by_name = {"type": "object", "required": list(values), "properties": values, "additionalProperties": False}
    if positional is None:
        positional = {"type": "array", "prefixItems": list(values.values()), "items": False} | {
            "minItems": len(values),
            "maxItems": len(values),
        }
    positional["description"] = f"values in this order: {', '.join(values)}"
    by_name["description"] = "every feature by name"
    return {"oneOf": [positional, by_name]}


def value_schema(feature: dict[str, Any]) -> dict[str, Any]:
    if feature["kind"] == "numeric":
        return {"type": "number", "description": "a finite number"}
    from records import MAX_CATEGORY_CHARS  # loaded already: the model has categorical inputs

    return {
        "anyOf": [
            {"type": "string", "enum": feature["values"], "description": "a value seen in training"},
            {"type": "string", "maxLength": MAX_CATEGORY_CHARS, "description": "any other value: served as unseen"},
            {"type": "null", "description": "missing (as is the empty string)"},
        ]
    }


def predict_request_body(model: Model | None, max_batch: int) -> dict[str, Any]:
    instances = array_of(instance_schema(model)) | {"minItems": 1, "maxItems": max_batch}
    content: dict[str, Any] = {
        "schema": {"type": "object", "required": ["instances"], "properties": {"instances": instances}}
    }
    if model is not None and model.card.get("sample", {}).get("instances"):
        content["example"] = {"instances": model.card["sample"]["instances"][:1]}
    return {"required": True, "content": {"application/json": content}}


def predict_response(model: Model | None) -> OpenAPIResponse:
    identity = {
        "type": "object",
        "required": ["name", "version"],
        "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
    }
    if model is not None and model.task == "regression":
        properties: dict[str, Any] = {"predictions": array_of({"type": "number"}), "model": identity}
    else:
        labels = model.labels if model is not None else None
        label = {"type": "string", "enum": labels} if labels else {"type": "string"}
        properties = {
            "predictions": array_of(label) | {"description": "The most probable label of each instance"},
            "probabilities": array_of(array_of({"type": "number"}, len(labels) if labels else None)),
            "labels": array_of(label) | {"description": "The order of each row of probabilities"},
            "model": identity,
        }
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {"description": "One prediction per instance", "content": {"application/json": {"schema": schema}}}
