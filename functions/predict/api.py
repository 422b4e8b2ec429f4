"""Every route behind powertools' APIGatewayHttpResolver, which also writes the OpenAPI document.

app.py builds this resolver on the first request that is not POST /predict: importing powertools'
event handler costs ~120 ms of cold start and routing ~0.1 ms per request, more than a small model
takes (benchmarks/serving.py). POST /predict is registered here too, so the document describes it
and a request that reaches the resolver gets the same answer as one app.py sends straight through.
"""

import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from card_view import public_card
from model import Model
from openapi_doc import error_responses, predict_request_body, predict_response
from predict import ApiError, model_unavailable, serialize

PredictHandler = Callable[[Mapping[str, Any]], tuple[int, str]]  # event -> status, JSON body


def json_response(status: int, document: Any) -> Response[str]:
    return Response(status, content_types.APPLICATION_JSON, serialize(document))


def build(
    model: Model | None, load_error: str | None, max_batch: int, predict: PredictHandler
) -> APIGatewayHttpResolver:
    """The resolver for this container's model (None when it failed to load, with load_error saying why)."""
    resolver = APIGatewayHttpResolver()

    def ready_model() -> Model:
        if model is None:
            raise model_unavailable(load_error)
        return model

    @resolver.exception_handler(ApiError)  # type: ignore[untyped-decorator]  # powertools leaves it unannotated
    def handle_api_error(error: ApiError) -> Response[str]:
        return json_response(error.status, error.document())

    @resolver.not_found
    def handle_not_found(_: Exception) -> Response[str]:
        event = resolver.current_event
        return json_response(404, ApiError(404, "not_found", f"no route {event.http_method} {event.path}").document())

    @resolver.post(
        "/predict",
        summary="Score a batch of instances",
        responses={200: predict_response(model), **error_responses(413, 415, 422, 503)},
        # Powertools documents a request body only for pydantic-validated parameters; ours is checked with numpy.
        openapi_extensions={"requestBody": predict_request_body(model, max_batch)},
    )
    def predict_route() -> Response[str]:
        status, body = predict(resolver.current_event.raw_event)
        return Response(status, content_types.APPLICATION_JSON, body)

    @resolver.get("/model", summary="The model card's public view", responses=error_responses(503))
    def model_card() -> Response[str]:
        return json_response(200, public_card(ready_model().card))

    @resolver.get("/health", summary="Whether the model is loaded, and its version", responses=error_responses(503))
    def health() -> Response[str]:
        if model is None:
            return json_response(503, {"status": "unavailable", **model_unavailable(load_error).document()})
        return json_response(
            200, {"status": "ready", "model": {"name": model.name, "version": model.version, "task": model.task}}
        )

    @resolver.get("/openapi.json", summary="This API's OpenAPI document", responses=error_responses(503))
    def openapi_document() -> Response[str]:
        return Response(200, content_types.APPLICATION_JSON, openapi_json(ready_model().version))

    @cache
    def openapi_json(version: str) -> str:
        # Generated on the first request for it: it imports pydantic, which no other route needs.
        description = (
            "Scores instances with the model promoted into this function; errors are {error: {code, message}}, "
            "except on the Open Inference Protocol's /v2 routes, whose errors are {error: message}."
        )
        document = json.loads(
            resolver.get_openapi_json_schema(
                title="serverless-ml prediction API", version=version, description=description
            )
        )
        from openapi_v2 import v2_paths  # v2.py answers these routes itself, without the resolver

        document["paths"] |= v2_paths(ready_model(), max_batch)
        return serialize(document)

    return resolver
