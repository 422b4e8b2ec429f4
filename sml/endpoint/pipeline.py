"""Rows to predictions: batches sent by a bounded pool of workers, retried on 429 and 5xx with backoff and jitter,
answers written in input order as they arrive.

At most 2 x concurrency batches are in memory at once (those in flight and those waiting for an earlier batch to
be written), so the input file may be larger than memory. A batch the API refuses as too large (a function
deployed with a smaller MAX_BATCH) is split in half and sent again.
"""

import email.utils
import json
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from sml.endpoint.client import Api, EndpointError, Response, error_message
from sml.endpoint.output import Writer
from sml.endpoint.rows import batches

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})  # throttled, or the service failed: worth another try
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 20.0
PROGRESS_EVERY_S = 0.2


@dataclass
class Tally:
    """What the run did, for the summary: counted by the workers under one lock."""

    rows: int = 0
    requests: int = 0
    retries: int = 0
    models: list[Any] = field(default_factory=list)  # each model identity that answered, in order of first answer
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def rate(self) -> float:
        return self.rows / max(time.monotonic() - self.started, 1e-9)


class Progress:
    """One line on stderr, rewritten in place, when stderr is a terminal; nothing otherwise."""

    def __init__(self, tally: Tally, stream: TextIO = sys.stderr) -> None:
        self.tally, self.stream = tally, stream
        self.enabled = stream.isatty()
        self.shown_at = 0.0

    def update(self, force: bool = False) -> None:
        if not self.enabled or (not force and time.monotonic() - self.shown_at < PROGRESS_EVERY_S):
            return
        self.shown_at = time.monotonic()
        tally = self.tally
        line = (
            f"{tally.rows:,} rows  {tally.requests:,} requests  {tally.retries:,} retries  {tally.rate():,.0f} rows/s"
        )
        self.stream.write(f"\r{line}\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.update(force=True)
            self.stream.write("\n")  # log lines that follow start on a line of their own


@dataclass
class Sender:
    """POST /predict for one batch: retried on 429/5xx and dropped connections, halved on 413."""

    api: Api
    max_retries: int
    tally: Tally
    stopped: threading.Event = field(default_factory=threading.Event)  # set when the run fails: no more waiting
    failure: EndpointError | None = None  # the first request that failed, whichever batch the writer waits on

    def predict(self, batch: list[Any], first_row: int) -> dict[str, Any]:
        """The answer to `batch`; the first failure stops every other worker's retries."""
        try:
            return self.predict_rows(batch, first_row)
        except EndpointError as error:
            with self.tally.lock:
                self.failure = self.failure or error
            self.stopped.set()
            raise

    def predict_rows(self, batch: list[Any], first_row: int) -> dict[str, Any]:
        response = self.post(batch)
        if response.status == 413 and len(batch) > 1:  # the function's MAX_BATCH is below ours, or the event too large
            half = len(batch) // 2
            return join(self.predict_rows(batch[:half], first_row), self.predict_rows(batch[half:], first_row + half))
        rows = f"rows {first_row}-{first_row + len(batch) - 1}"
        if response.status == 403 and self.api.auth == "iam":
            raise EndpointError(
                f"POST /predict answered 403 for {rows}: {error_message(response.body)} "
                "(your principal needs execute-api:Invoke on the API)"
            )
        body = response.body
        if response.status != 200 or not isinstance(body, dict) or len(body.get("predictions", [])) != len(batch):
            raise EndpointError(f"POST /predict answered {response.status} for {rows}: {error_message(body)}")
        return body

    def post(self, batch: list[Any]) -> Response:
        payload = json.dumps({"instances": batch}).encode()
        for attempt in range(self.max_retries + 1):
            if self.stopped.is_set():
                raise EndpointError("stopped: another request failed")
            with self.tally.lock:
                self.tally.requests += 1
                self.tally.retries += attempt > 0
            try:
                response = self.api.call("POST", "/predict", payload)
            except EndpointError as error:
                if not error.transient or attempt == self.max_retries:
                    raise
                self.stopped.wait(backoff(attempt))
                continue
            if response.status not in RETRY_STATUSES or attempt == self.max_retries:
                return response
            self.stopped.wait(retry_delay(attempt, response.headers.get("retry-after")))
        raise AssertionError("unreachable: the last attempt returns or raises")


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
    return random.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


def retry_delay(attempt: int, retry_after: str | None) -> float:
    """Retry-After (seconds, or an HTTP date) when the API sends one, else the backoff."""
    if retry_after:
        if retry_after.strip().isdigit():
            return float(retry_after)
        try:
            when = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            return backoff(attempt)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return backoff(attempt)


def join(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two answers as one, rows in order."""
    joined = {**first, "predictions": [*first["predictions"], *second["predictions"]]}
    if "probabilities" in first and "probabilities" in second:
        joined["probabilities"] = [*first["probabilities"], *second["probabilities"]]
    return joined


def run(
    sender: Sender, rows: Iterable[Any], writer: Writer, concurrency: int, max_rows: int, progress: Progress
) -> Tally:
    """Send every row, `concurrency` requests at a time; write each batch's answer in input order."""
    tally = sender.tally
    pending: deque[tuple[Future[dict[str, Any]], int]] = deque()

    def write_oldest() -> None:
        future, size = pending.popleft()
        try:
            answer = future.result()
        except EndpointError as error:
            raise (sender.failure or error) from None  # the failure that stopped the others, not their "stopped"
        writer.write(answer)
        tally.rows += size
        if answer.get("model") not in tally.models:  # a canary deployment answers from two versions at once
            tally.models.append(answer.get("model"))
        progress.update()

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sml-predict")
    try:
        first_row = 0
        for batch in batches(rows, max_rows):
            pending.append((pool.submit(sender.predict, batch, first_row), len(batch)))
            first_row += len(batch)
            while len(pending) >= 2 * concurrency or (pending and pending[0][0].done()):
                write_oldest()
        while pending:
            write_oldest()
    finally:
        sender.stopped.set()  # workers waiting to retry give up at once rather than after their backoff
        pool.shutdown(wait=True, cancel_futures=True)
        progress.close()
    return tally
