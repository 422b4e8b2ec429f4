"""The Lambda Python runtime, locally: `python -m sml.local.runtime module.function` inits once, then runs invocations.

sml/local/worker.py starts it with the function's code folder as the working directory (Lambda's /var/task, first
on sys.path) and the function's environment. One JSON line each way per message:
  parent -> {"event": ..., "request_id": "...", "deadline_ms": 1764428462000}
  child  -> {"ready": true} once init is done, or {"error": {...}} when init fails (then it exits)
  child  -> {"result": ...} or {"error": {"errorMessage", "errorType", "stackTrace"}} per invocation
The handler's own stdout (powertools writes its logs there) goes to stderr, where `sam local` shows logs.
"""

import decimal
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

Handler = Callable[[Any, "LambdaContext"], Any]


class LambdaContext:
    """The context object Lambda's Python runtime passes to a handler, with the same attribute types."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        # A string, as in the real runtime: code that does arithmetic on it must convert first.
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.invoked_function_arn = os.environ["SML_FUNCTION_ARN"]
        self.aws_request_id = request_id
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class InitError(Exception):
    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload["errorMessage"])
        self.payload = payload


def load_handler(spec: str) -> Handler:
    """Import `module.function` (a/b.handler and a.b.handler both work, as on Lambda)."""
    module_name, function_name = spec.rsplit(".", 1)
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InitError(
            error_payload(error, "Runtime.ImportModuleError", f"Unable to import module '{module_name}'")
        ) from error
    except SyntaxError as error:
        raise InitError(error_payload(error, "Runtime.UserCodeSyntaxError", "Syntax error in module")) from error
    except Exception as error:  # init code raised: Lambda reports it as the invocation's error
        raise InitError(error_payload(error)) from error
    handler = getattr(module, function_name, None)
    if not callable(handler):
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        raise InitError({"errorMessage": message, "errorType": "Runtime.HandlerNotFound", "stackTrace": []})
    return handler  # type: ignore[no-any-return]


def error_payload(error: BaseException, error_type: str | None = None, prefix: str | None = None) -> dict[str, Any]:
    """The JSON Lambda returns for an exception (what `sam local invoke` prints)."""
    message = f"{prefix}: {error}" if prefix else str(error)
    return {
        "errorMessage": message,
        "errorType": error_type or type(error).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def invoke(handler: Handler, request: dict[str, Any]) -> str:
    """Run one invocation; the reply line, serialised as the runtime serialises the handler's result."""
    context = LambdaContext(request["request_id"], request["deadline_ms"])
    try:
        result = handler(request["event"], context)
    except Exception as error:
        payload = error_payload(error) | {"requestId": request["request_id"]}
        log_error(payload)
        return json.dumps({"error": payload})
    try:
        return json.dumps({"result": result}, default=_decimal_to_number)
    except (TypeError, ValueError) as error:
        message = f"Unable to marshal response: {error}"
        payload = {"errorMessage": message, "errorType": "Runtime.MarshalError", "requestId": request["request_id"]}
        return json.dumps({"error": payload | {"stackTrace": []}})


def _decimal_to_number(value: object) -> float | int:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def log_error(payload: dict[str, Any]) -> None:
    """Log an error the way Lambda does, where the function's logs go."""
    trace = "".join(payload.get("stackTrace", []))
    print(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}\n{trace}", file=sys.stderr, flush=True)


def send(channel: TextIO, line: str) -> None:
    channel.write(line + "\n")
    channel.flush()


def main() -> int:
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        handler = load_handler(sys.argv[1])
    except InitError as error:
        log_error(error.payload)
        send(channel, json.dumps({"error": error.payload}))
        return 1
    send(channel, json.dumps({"ready": True}))
    for line in sys.stdin:
        send(channel, invoke(handler, json.loads(line)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
