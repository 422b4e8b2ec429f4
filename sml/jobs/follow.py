"""`sml status` and `sml logs`: one view of a Batch or SageMaker job, its CloudWatch logs, and waiting for its end."""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import boto3
from botocore.exceptions import ClientError

from sml.jobs import batch, sagemaker
from sml.jobs.job import JobView, LogLocation, backend_of, sagemaker_name
from sml.jobs.report import progress_line
from training.cloud.contract import FAILURE_PREFIXES

TAIL_EVENTS = 200  # how far back `sml status` looks for the latest metrics line


def describe(session: boto3.Session, job_id: str, backend: str | None = None) -> JobView:
    """The job, from Batch when its id is a UUID (or --backend batch), else from SageMaker."""
    if (backend or backend_of(job_id)) == "batch":
        return batch.describe(session, job_id)
    return sagemaker.describe(session, sagemaker_name(job_id))


@dataclass
class Progress:
    """What the log lines seen so far say: the latest metrics line and the training job's own failure line."""

    metrics: dict[str, Any] | None = None
    failure: str | None = None

    def consume(self, messages: list[str]) -> None:
        for message in messages:
            text = message.strip()
            if text.startswith(FAILURE_PREFIXES):
                self.failure = text
            elif (metrics := parse_metrics(text)) is not None:
                self.metrics = metrics


class LogReader:
    """Reads a job's log streams forward, each from where the previous read stopped (CloudWatch forward tokens)."""

    def __init__(self, session: boto3.Session) -> None:
        self.logs = session.client("logs")
        self.tokens: dict[str, str] = {}

    def streams(self, location: LogLocation) -> list[str]:
        if location.prefix is None:
            return list(location.streams)
        pages = self.logs.get_paginator("describe_log_streams").paginate(
            logGroupName=location.group, logStreamNamePrefix=location.prefix
        )
        try:  # 50 streams a page: a job of many instances, or one retried often, has more
            return sorted(stream["logStreamName"] for page in pages for stream in page["logStreams"])
        except ClientError as error:
            if is_not_found(error):  # no instance has started logging yet
                return []
            raise

    def read_new(self, location: LogLocation) -> list[tuple[str, str]]:
        """(stream, message) for every event not read before, stream by stream."""
        return [
            (stream, message) for stream in self.streams(location) for message in self.read_stream(location, stream)
        ]

    def read_stream(self, location: LogLocation, stream: str) -> list[str]:
        messages: list[str] = []
        while True:
            request = {"logGroupName": location.group, "logStreamName": stream, "startFromHead": True}
            if stream in self.tokens:
                request["nextToken"] = self.tokens[stream]
            try:
                page = self.logs.get_log_events(**request)
            except ClientError as error:
                if is_not_found(error):  # the stream appears when the container first writes
                    return messages
                raise
            self.tokens[stream] = page["nextForwardToken"]
            if not page["events"]:
                return messages
            messages.extend(event["message"] for event in page["events"])

    def tail(self, location: LogLocation, stream: str) -> list[str]:
        try:
            page = self.logs.get_log_events(
                logGroupName=location.group, logStreamName=stream, startFromHead=False, limit=TAIL_EVENTS
            )
        except ClientError as error:
            if is_not_found(error):
                return []
            raise
        return [event["message"] for event in page["events"]]


def status(session: boto3.Session, job_id: str, backend: str | None) -> tuple[JobView, Progress]:
    """The job now, with the metrics and failure line at the end of its logs."""
    view = describe(session, job_id, backend)
    reader = LogReader(session)
    progress = Progress()
    for stream in reader.streams(view.logs):
        progress.consume(reader.tail(view.logs, stream))
    return view, progress


def wait(
    session: boto3.Session,
    job_id: str,
    backend: str | None,
    interval_s: float,
    progress_out: TextIO,
) -> tuple[JobView, Progress]:
    """Poll until the job ends, printing a line whenever its state or latest metrics change."""
    reader = LogReader(session)
    progress = Progress()
    last_line = ""
    while True:
        view = describe(session, job_id, backend)
        progress.consume([message for _, message in reader.read_new(view.logs)])
        line = progress_line(view, progress)
        if line != last_line:
            print(f"{datetime.now(UTC):%H:%M:%S} {line}", file=progress_out, flush=True)
            last_line = line
        if view.outcome is not None:
            return view, progress
        time.sleep(interval_s)


def print_logs(
    session: boto3.Session,
    job_id: str,
    backend: str | None,
    follow: bool,
    interval_s: float,
    out: TextIO,
) -> tuple[JobView, Progress]:
    """Print the job's log lines; with `follow`, keep printing new ones until the job ends."""
    reader = LogReader(session)
    progress = Progress()
    while True:
        view = describe(session, job_id, backend)  # before reading, so a finished job's lines are all there
        streams = reader.streams(view.logs)
        for stream in streams:
            messages = reader.read_stream(view.logs, stream)
            prefix = f"[{stream_label(view, stream)}] " if len(streams) > 1 else ""
            for message in messages:
                print(f"{prefix}{message.rstrip()}", file=out, flush=True)
            progress.consume(messages)
        if not follow or view.outcome is not None:
            return view, progress
        time.sleep(interval_s)


def stream_label(view: JobView, stream: str) -> str:
    """Batch: the attempt a stream belongs to; SageMaker: the instance (algo-1, algo-2, ...)."""
    if stream in view.logs.streams:
        return f"attempt {view.logs.streams.index(stream) + 1}"
    return stream.removeprefix(view.logs.prefix or "").rsplit("-", 1)[0] or stream


def parse_metrics(text: str) -> dict[str, Any] | None:
    """A metrics line of the training log: {"epoch": 3, ...} per epoch, {"bundle": ..., "test": {...}} at the end."""
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and ("epoch" in value or "test" in value) else None


def is_not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
