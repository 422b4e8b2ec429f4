"""The v2 routes in the OpenAPI document, with the served model's name, version, tensors and shapes.

v2.py answers these routes without powertools' resolver, so api.py adds their paths to the document
the resolver writes. The tensors come from v2.py's own specs, so the document and the answers agree.
"""

from typing import Any

from model import Model
from v2 import SERVER, input_specs, metadata, output_specs
from v2_tensors import TensorSpec

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
ERRORS = {
    400: "The body is not JSON, a tensor disagrees with the model, or the binary sizes do not fit the body",
    404: "A model name or version other than the one served",
    413: "More rows than MAX_BATCH, or an answer beyond Lambda's 6 MB",
    503: "The model bundle is missing or breaks the bundle contract",
}
STRING, BOOLEAN, INTEGERS = {"type": "string"}, {"type": "boolean"}, {"type": "array", "items": {"type": "integer"}}
TENSOR_PROPERTIES: dict[str, Any] = {"name": STRING, "datatype": STRING, "shape": INTEGERS}
TENSOR_METADATA = {"type": "object", "required": ["name", "datatype", "shape"], "properties": TENSOR_PROPERTIES}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    return {str(status): json_content(ERROR, ERRORS[status]) for status in statuses}


def get(summary: str, schema: dict[str, Any], *statuses: int) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": json_content(schema, summary), **errors(*statuses)}}}


def obj(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def input_schema(spec: TensorSpec, max_batch: int) -> dict[str, Any]:
    rows = f"[rows, {', '.join(map(str, spec.shape[1:]))}]" if len(spec.shape) > 1 else "[rows]"
    return obj(
        name={"type": "string", "enum": [spec.name]},
        datatype={"type": "string", "enum": [spec.datatype]},
        shape=INTEGERS
        | {
            "minItems": len(spec.shape),
            "maxItems": len(spec.shape),
            "description": f"{rows}, 1 to {max_batch} rows",
        },
        data={"type": "array", "description": "The values, nested or flat in row-major order: finite numbers"},
    )


def infer_operation(model: Model, max_batch: int) -> dict[str, Any]:
    names = [spec.name for spec in output_specs(model)]
    requested = obj(name={"type": "string", "enum": names})
    requested["properties"]["parameters"] = {"type": "object", "properties": {"binary_data": BOOLEAN}}
    request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": STRING,
            "parameters": {"type": "object", "properties": {"binary_data_output": BOOLEAN}},
            "inputs": {
                "type": "array",
                "items": {"anyOf": [input_schema(s, max_batch) for s in input_specs(model)]},
                "minItems": 1,
            },
            "outputs": {"type": "array", "items": requested},
        },
    }
    sample = model.card["sample"]["instances"][:1]
    example = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, *model.row_shape], "data": sample}]}
    output = TENSOR_METADATA | {"properties": TENSOR_PROPERTIES | {"data": {"type": "array"}}}
    answer = obj(model_name=STRING, model_version=STRING, outputs={"type": "array", "items": output})
    answer["properties"]["id"] = STRING
    binary = {"schema": {"type": "string", "format": "binary"}}
    header = {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
              "description": "The binary tensor data extension: the length of the JSON that starts the body",
              "schema": {"type": "integer", "minimum": 1}}  # fmt: skip
    ok = json_content(answer, "The outputs, JSON, or binary after the JSON header when binary_data is asked for")
    ok["content"]["application/octet-stream"] = binary
    return {
        "post": {
            "summary": f"Score a batch with {model.name}: the Open Inference Protocol's infer",
            "parameters": [header],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": request, "example": example},
                    "application/octet-stream": binary,
                },
            },
            "responses": {"200": ok, **errors(400, 404, 413, 503)},
        }
    }


def v2_paths(model: Model, max_batch: int) -> dict[str, Any]:
    """The v2 routes' OpenAPI path items for the served model."""
    described = metadata(model)
    model_metadata = obj(name={"type": "string", "enum": [model.name]}, versions={"type": "array", "items": STRING},
                         platform={"type": "string", "enum": [described["platform"]]},
                         inputs={"type": "array", "items": TENSOR_METADATA},
                         outputs={"type": "array", "items": TENSOR_METADATA})  # fmt: skip
    model_metadata["example"] = described
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": [model.name]}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string", "enum": [model.version]}}
    paths: dict[str, Any] = {
        "/v2": get("The server's name, version and protocol extensions", obj(
            name=STRING, version=STRING, extensions={"type": "array", "items": STRING}) | {"example": SERVER}),
        "/v2/health/live": get("Whether the server is live", obj(live=BOOLEAN)),
        "/v2/health/ready": get("Whether the model is loaded", obj(ready=BOOLEAN)),
    }  # fmt: skip
    paths["/v2/health/ready"]["get"]["responses"]["503"] = json_content(
        obj(ready=BOOLEAN, error=STRING), "The model is not loaded"
    )
    for prefix, parameters in (
        ("/v2/models/{name}", [name]),
        ("/v2/models/{name}/versions/{version}", [name, version]),
    ):
        described_by = "The model's metadata: platform, versions, input and output tensors"
        for path, item in (
            (prefix, get(described_by, model_metadata, 404, 503)),
            (f"{prefix}/ready", get("Whether the model is ready", obj(name=STRING, ready=BOOLEAN), 404, 503)),
            (f"{prefix}/infer", infer_operation(model, max_batch)),
        ):  # fmt: skip
            paths[path] = {"parameters": parameters, **item}
    return paths
