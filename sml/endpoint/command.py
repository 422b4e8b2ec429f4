"""`sml endpoint predict`: stream rows from a file to the deployed API and predictions to a file, in input order."""

import argparse
import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import boto3

from sml.aws import add_aws_arguments, aws_errors, aws_session, stack_for
from sml.endpoint import client, pipeline
from sml.endpoint.output import OUTPUT_FORMATS, Writer, output_format
from sml.endpoint.rows import input_format, read_rows
from sml.errors import UserError

DEFAULT_MAX_BATCH = 256  # MAX_BATCH in template.yaml
DEFAULT_CONCURRENCY = 4
DEFAULT_MAX_RETRIES = 5
ENDPOINT_EXAMPLES = (
    "sml endpoint predict --file rows.csv --out predictions.csv\n"
    "  sml endpoint predict --file rows.parquet --out predictions.jsonl --concurrency 8\n"
    "  sml endpoint predict --file rows.jsonl --url http://127.0.0.1:3000\n"
    "  sml endpoint predict --file rows.csv --stack-name serverless-ml-prod --profile prod"
)

logger = logging.getLogger("sml")


def configure_endpoint(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    predict = actions.add_parser(
        "predict",
        help="send rows to POST /predict",
        description="Stream rows from a CSV, JSONL, Parquet or JSON file to the deployed API, several requests at a "
        "time, and write one prediction per row, in input order, as JSONL or CSV.",
        epilog=f"examples:\n  {ENDPOINT_EXAMPLES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument(
        "--file",
        type=Path,
        required=True,
        help="rows: .csv/.tsv (a header row picks columns by the model's feature names), .jsonl (a JSON list per "
        "line), .parquet, or .json (read whole; use JSONL for large files)",
    )
    predict.add_argument(
        "--out",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the predictions here, .jsonl or .csv (default: JSONL on stdout)",
    )
    predict.add_argument(
        "--output-format", choices=OUTPUT_FORMATS, help="default: by the --out file's extension; JSONL on stdout"
    )
    predict.add_argument("--url", help="API base URL (default: the stack's ApiUrl)")
    predict.add_argument(
        "--auth",
        choices=client.AUTH_MODES,
        help="default: the stack's ApiAuth; with --url, iam for execute-api hosts, else none",
    )
    predict.add_argument("--token", help="JWT for --auth jwt (default: SML_API_TOKEN)")
    predict.add_argument(
        "--max-batch",
        type=positive,
        metavar="ROWS",
        default=DEFAULT_MAX_BATCH,
        help=f"rows per request (default: {DEFAULT_MAX_BATCH}, the function's MAX_BATCH)",
    )
    predict.add_argument(
        "--concurrency",
        type=positive,
        metavar="N",
        default=DEFAULT_CONCURRENCY,
        help=f"requests in flight at once, each on its own kept-alive connection (default: {DEFAULT_CONCURRENCY})",
    )
    predict.add_argument(
        "--max-retries",
        type=int,
        choices=range(11),
        default=DEFAULT_MAX_RETRIES,
        metavar="0-10",
        help="retries of a request answered 429 or 5xx, or dropped, with exponential backoff and jitter "
        f"(Retry-After when given) (default: {DEFAULT_MAX_RETRIES})",
    )
    add_aws_arguments(predict)


def positive(text: str) -> int:
    """argparse type: a whole number of at least 1 (argparse prints the message of an ArgumentTypeError only)."""
    if not text.strip().isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def run_endpoint(args: argparse.Namespace) -> int:
    """`sml endpoint predict`: rows in, predictions out, a summary on stderr."""
    kind = output_format(args.out, args.output_format)
    columns = input_format(args.file) in ("csv", "parquet")  # JSON rows are sent as they are
    with aws_errors(), ExitStack() as files:
        api = endpoint_api(args)
        rows = read_rows(args.file, client.model_card(api) if columns else {})
        stream = files.enter_context(args.out.open("w", encoding="utf-8", newline="")) if args.out else sys.stdout
        tally = pipeline.Tally()
        sender = pipeline.Sender(api, args.max_retries, tally)
        progress = pipeline.Progress(tally)
        pipeline.run(sender, rows, Writer(stream, kind), args.concurrency, args.max_batch, progress)
    model = tally.models[0] if tally.models and isinstance(tally.models[0], dict) else {}
    logger.info(
        "%d rows, %d requests, %d retries, %.0f rows/s, model %s %s%s",
        tally.rows,
        tally.requests,
        tally.retries,
        tally.rate(),
        model.get("name"),
        model.get("version"),
        f" -> {args.out}" if args.out else "",
    )
    if len(tally.models) > 1:
        logger.warning("note: answers came from %d model versions; a deployment is shifting traffic", len(tally.models))
    return 0


def endpoint_api(args: argparse.Namespace) -> client.Api:
    """The API's URL and auth mode from the flags, else from the stack's ApiUrl and ApiAuth outputs."""
    session: boto3.Session | None = None
    if args.url:
        url, auth = args.url, args.auth or client.default_auth(args.url)
    else:
        session = aws_session(args)
        stack = stack_for(args, session)
        url = stack.output("ApiUrl", "--url")
        auth = args.auth or client.STACK_AUTH.get(stack.output("ApiAuth", "--auth"), "iam")
    token = args.token or os.environ.get("SML_API_TOKEN")
    if auth == "jwt" and not token:
        raise UserError("the API takes JWT bearer tokens: pass --token or set SML_API_TOKEN")
    if auth == "iam" and session is None:
        session = aws_session(args)
    return client.Api(url=url, auth=auth, session=session, token=token)
