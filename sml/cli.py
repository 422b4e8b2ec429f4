"""The `sml` command: the table of subcommands (COMMANDS) and main; each subcommand lives in its own module.

sml --help
sml invoke PredictFunction -e events/predict.json
sml serve --port 3000
sml submit --backend sagemaker --data s3://BUCKET/data/digits.csv --target label --set epochs=40 --wait
sml status JOB --wait
sml promote s3://BUCKET/bundles/JOB/
sml endpoint predict --file rows.csv --out predictions.csv
"""

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import NoReturn

from sml.endpoint.command import ENDPOINT_EXAMPLES, configure_endpoint, run_endpoint
from sml.errors import UserError
from sml.jobs.logs import configure_logs, run_logs
from sml.jobs.status import configure_status, run_status
from sml.jobs.submit import configure_submit, run_submit
from sml.local.invoke import configure_invoke, run_invoke
from sml.local.serve import configure_serve, run_serve
from sml.promote_command import configure_promote, run_promote

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl+C

logger = logging.getLogger("sml")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`sml: error: ...`) rather than the usage block."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("sml").strip()
        hint = f"sml {command} --help" if command else "sml --help"
        print(f"sml: error: {message} (see `{hint}`)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


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
        "  sml submit --backend batch --data s3://BUCKET/data/x.csv --target y --set model=cnn --set input_shape=1,8,8"
        "\n  sml submit --backend batch --data ./local.csv --target y   # uploads it to s3://BUCKET/data/ first",
    ),
    "status": Command(
        configure_status,
        run_status,
        "show a training job's state, attempts, reason, timings and latest metrics",
        "sml status 3f1c6a8e-0b7e-4a51-9a4e-8d2b1c0e9f11\n"
        "  sml status digits-20261129-153000-a1b2 --wait\n"
        "  sml status digits-20261129-153000-a1b2 --region eu-west-1 --profile ml\n"
        "  sml status digits-20261129-153000-a1b2 --output json --config-env prod",
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
        ENDPOINT_EXAMPLES,
    ),
}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="sml",
        description="Train, serve and ship ONNX models on AWS Lambda.",
        epilog="examples:\n" + "\n".join(f"  {c.examples.splitlines()[0]}" for c in COMMANDS.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sml {package_version()}")
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


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's, as `pip install -e .` recorded it)."""
    try:
        return metadata.version("serverless-ml")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: run `pip install -e .`)"


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
