"""`sml invoke`: run a function of the template once on an event, like `sam local invoke` (no docker).

The template arguments and the function's environment are shared with `sml serve`.
"""

import argparse
import json
import logging
from pathlib import Path

from sml.aws import default_region
from sml.local.events import read_event
from sml.local.template import Function, Template, load_template
from sml.local.worker import FunctionWorker, lambda_environment, read_env_vars_file

logger = logging.getLogger("sml")


def add_template_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-t", "--template", type=Path, default=Path("template.yaml"), help="SAM template (default: template.yaml)"
    )
    parser.add_argument("-n", "--env-vars", type=Path, help='JSON: {"FunctionId": {"VAR": "value"}, "Parameters": {}}')
    parser.add_argument("--region", default=None, help="AWS_REGION the function sees (default: yours, or us-east-1)")


def function_environment(template: Template, function: Function, env_vars: Path | None, region: str) -> dict[str, str]:
    """The function's environment, after printing what could not be honoured (unresolved intrinsics and such)."""
    overrides, notes = read_env_vars_file(env_vars, function) if env_vars else ({}, [])
    for note in [*template.notes, *notes]:
        if note.startswith(f"{function.logical_id}:") or note.startswith("--env-vars"):
            logger.warning("note: %s", note)
    return lambda_environment(function, region, overrides)


def configure_invoke(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("function_id", nargs="?", metavar="FUNCTION_LOGICAL_ID", help="optional with one function")
    parser.add_argument("-e", "--event", help="event JSON file, or - for stdin (default: {})")
    add_template_arguments(parser)


def run_invoke(args: argparse.Namespace) -> int:
    """Like `sam local invoke`: the handler's reply as JSON on stdout, the function's logs on stderr."""
    region = default_region(args.region)
    template = load_template(args.template, region)
    function = template.function(args.function_id)
    event = read_event(args.event) if args.event else {}
    worker = FunctionWorker(function, function_environment(template, function, args.env_vars, region))
    try:
        invocation = worker.invoke(event)
    finally:
        worker.close()
    print(json.dumps(invocation.result if invocation.error is None else invocation.error), flush=True)
    logger.info("REPORT RequestId: %s Duration: %.2f ms", invocation.request_id, invocation.duration_ms)
    return 0 if invocation.error is None else 1
