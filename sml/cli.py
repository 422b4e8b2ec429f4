"""The `sml` command: one function per subcommand, listed in COMMANDS.

sml --help
sml invoke PredictFunction -e events/predict.json
sml serve --port 3000
sml submit --backend sagemaker --data s3://BUCKET/data/digits.csv --target label --set epochs=40 --wait
sml status JOB --wait
sml promote s3://BUCKET/bundles/JOB/
sml endpoint predict --file rows.csv --out predictions.json
"""

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from sml.aws import aws_errors
from sml.endpoint.command import ENDPOINT_EXAMPLES, configure_endpoint, run_endpoint
from sml.errors import UserError
from sml.jobs.status import add_aws_arguments, aws_session, configure_logs, configure_status, run_logs, run_status
from sml.jobs.submit import configure_submit, run_submit
from sml.local.events import read_event
from sml.local.server import LocalApi, serve
from sml.local.template import Function, Template, load_template
from sml.local.worker import FunctionWorker, lambda_environment, read_env_vars_file

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl+C
DEFAULT_REGION = "us-east-1"

logger = logging.getLogger("sml")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`sml: error: ...`) rather than the usage block."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("sml").strip()
        hint = f"sml {command} --help" if command else "sml --help"
        print(f"sml: error: {message} (see `{hint}`)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def add_template_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-t", "--template", type=Path, default=Path("template.yaml"), help="SAM template (default: template.yaml)"
    )
    parser.add_argument("-n", "--env-vars", type=Path, help='JSON: {"FunctionId": {"VAR": "value"}, "Parameters": {}}')
    parser.add_argument("--region", default=None, help="AWS_REGION the function sees (default: yours, or us-east-1)")


def configure_invoke(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("function_id", nargs="?", metavar="FUNCTION_LOGICAL_ID", help="optional with one function")
    parser.add_argument("-e", "--event", help="event JSON file, or - for stdin (default: {})")
    add_template_arguments(parser)


def run_invoke(args: argparse.Namespace) -> int:
    """Like `sam local invoke`: the handler's reply as JSON on stdout, the function's logs on stderr."""
    region = resolve_region(args.region)
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


def configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--port", type=int, default=3000, help="0 picks a free port (default: 3000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    add_template_arguments(parser)


def run_serve(args: argparse.Namespace) -> int:
    """Like `sam local start-api`, without docker: each function is loaded once and stays warm."""
    region = resolve_region(args.region)
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


def configure_promote(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="a bundle folder, or the s3:// prefix a training job wrote")
    parser.add_argument(
        "--function-dir", type=Path, default=Path("functions/predict"), help="default: functions/predict"
    )
    add_aws_arguments(parser, stack=False)


def run_promote(args: argparse.Namespace) -> int:
    """Fetch and verify a bundle (S3 checksums, card, sha256, sample outputs), then swap it into model/."""
    from sml.promote import describe, promote  # onnxruntime takes most of a second to import; only promote needs it

    with aws_errors():
        session = aws_session(args, region_required=False) if args.source.startswith("s3://") else None
        print(describe(promote(args.source, args.function_dir, session)))
    return 0


@dataclass(frozen=True)
class Command:
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    summary: str
    examples: str


COMMANDS: dict[str, Command] = {
    "invoke": Command(
        configure_invoke,
        run_invoke,
        "run a function once on an event, like `sam local invoke` (no docker)",
        "sml invoke PredictFunction -e events/predict.json\n"
        "  echo '{}' | sml invoke PredictFunction -e -\n"
        "  sml invoke PredictFunction -e events/predict.json --env-vars env.json",
    ),
    "serve": Command(
        configure_serve,
        run_serve,
        "serve the template's API on 127.0.0.1, like `sam local start-api` (no docker)",
        "sml serve --port 3000\n"
        "  sml serve --template template.yaml --env-vars env.json\n"
        "  curl -s localhost:3000/predict -H 'content-type: application/json' -d @request.json",
    ),
    "submit": Command(
        configure_submit,
        run_submit,
        "start a training job on AWS Batch or SageMaker, with locations from the stack's outputs",
        "sml submit --backend sagemaker --data s3://BUCKET/data/digits.csv --target label --set epochs=40\n"
        "  sml submit --backend batch --data s3://BUCKET/data/digits.csv --target label --config train.yaml --wait\n"
        "  sml submit --backend sagemaker --data s3://BUCKET/data/ --target y --no-spot --instance-type ml.g6.xlarge\n"
        "  sml submit --backend batch --data s3://BUCKET/data/x.csv --target y --set model=cnn --set input_shape=1,8,8",
    ),
    "status": Command(
        configure_status,
        run_status,
        "show a training job's state, attempts, reason, timings and latest metrics",
        "sml status 3f1c6a8e-0b7e-4a51-9a4e-8d2b1c0e9f11\n"
        "  sml status digits-20261129-153000-a1b2 --wait\n"
        "  sml status digits-20261129-153000-a1b2 --region eu-west-1 --profile ml",
    ),
    "logs": Command(
        configure_logs,
        run_logs,
        "print a training job's CloudWatch logs",
        "sml logs digits-20261129-153000-a1b2\n  sml logs 3f1c6a8e-0b7e-4a51-9a4e-8d2b1c0e9f11 --follow",
    ),
    "promote": Command(
        configure_promote,
        run_promote,
        "verify a model bundle and place it into the function, ready for `sam deploy`",
        "sml promote build/bundle\n"
        "  sml promote s3://BUCKET/bundles/digits-20261129-153000-a1b2/\n"
        "  sml promote build/bundle --function-dir functions/predict",
    ),
    "endpoint": Command(
        configure_endpoint,
        run_endpoint,
        "call the deployed API: `sml endpoint predict --file rows.csv`",
        "sml endpoint predict --file rows.csv\n  " + ENDPOINT_EXAMPLES,
    ),
}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="sml",
        description="Train, serve and ship ONNX models on AWS Lambda.",
        epilog="examples:\n" + "\n".join(f"  {c.examples.splitlines()[0]}" for c in COMMANDS.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        subparser = subcommands.add_parser(
            name,
            help=command.summary,
            description=command.summary,
            epilog=f"examples:\n  {command.examples}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def function_environment(template: Template, function: Function, env_vars: Path | None, region: str) -> dict[str, str]:
    """The function's environment, after printing what could not be honoured (unresolved intrinsics and such)."""
    overrides, notes = read_env_vars_file(env_vars, function) if env_vars else ({}, [])
    for note in [*template.notes, *notes]:
        if note.startswith(f"{function.logical_id}:") or note.startswith("--env-vars"):
            logger.warning("note: %s", note)
    return lambda_environment(function, region, overrides)


def resolve_region(flag: str | None) -> str:
    return flag or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def main(argv: Sequence[str] | None = None) -> int:
    # Our own progress at INFO; botocore's chatter (credential lookups, endpoints) only when it is a warning.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    logger.setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except UserError as error:
        print(f"sml: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code
