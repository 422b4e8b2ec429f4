"""`sml serve`: the template's API on 127.0.0.1, like `sam local start-api` (no docker)."""

import argparse
import logging

from sml.aws import default_region
from sml.errors import UserError
from sml.local.invoke import add_template_arguments, function_environment
from sml.local.server import LocalApi, serve
from sml.local.template import load_template
from sml.local.worker import FunctionWorker

logger = logging.getLogger("sml")


def configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--port", type=int, default=3000, help="0 picks a free port (default: 3000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    add_template_arguments(parser)


def run_serve(args: argparse.Namespace) -> int:
    """Like `sam local start-api`, without docker: each function is loaded once and stays warm."""
    region = default_region(args.region)
    template = load_template(args.template, region)
    served = [function for function in template.functions.values() if function.routes]
    if not served:
        raise UserError(f"{args.template} has no function with HttpApi or Api events to serve")
    workers = {
        f.logical_id: FunctionWorker(f, function_environment(template, f, args.env_vars, region)) for f in served
    }
    for logical_id, reason in template.skipped.items():
        logger.warning("note: %s is not served: %s", logical_id, reason)
    serve(LocalApi([route for function in served for route in function.routes], workers), args.host, args.port)
    return 0
