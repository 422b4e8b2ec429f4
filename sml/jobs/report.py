"""How a job reads in the terminal: `sml status`'s view, the line `--wait` repeats, and why a job failed."""

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sml.jobs.job import JobView

if TYPE_CHECKING:  # follow.py imports this module; Progress is only an annotation here
    from sml.jobs.follow import Progress

METRIC_KEYS = ("train_loss", "val_loss", "val_accuracy", "val_r2", "lr")


def render(view: JobView, progress: "Progress") -> str:
    """The status view: one `label  value` line per known fact."""
    rows = [
        ("job", f"{view.name} ({view.backend}{'' if view.job_id == view.name else ' ' + view.job_id})"),
        ("state", view.state),
        ("attempts", view.attempts),
        ("reason", view.reason),
        ("created", timestamp(view.created)),
        ("started", timestamp(view.started)),
        ("running", duration(datetime.now(UTC) - view.started) if view.started and not view.stopped else None),
        ("stopped", stopped_text(view)),
        ("bundle", view.bundle),
        ("logs", f"{view.logs.group} {' '.join(view.logs.streams) or view.logs.prefix or '(none yet)'}"),
        ("metrics", describe_metrics(progress.metrics) if progress.metrics else None),
        ("failure", progress.failure),
        ("exit", view.exit),
        *(("note", note) for note in view.notes),
    ]
    return "\n".join(f"{label:<9} {value}" for label, value in rows if value)


def progress_line(view: JobView, progress: "Progress") -> str:
    parts = [view.state]
    if view.attempts:
        parts.append(f"attempt {view.attempts}")
    if progress.metrics:
        parts.append(describe_metrics(progress.metrics))
    return "  ".join(parts)


def failure_reason(view: JobView, progress: "Progress") -> str:
    """Why the job failed, from the service, the training job's own last words, and its exit codes."""
    reasons = [reason for reason in (view.reason, progress.failure, view.exit) if reason]
    return "; ".join(reasons) or "no reason recorded; see `sml logs`"


def describe_metrics(metrics: dict[str, Any]) -> str:
    """`epoch 3: train_loss=0.1234 val_accuracy=0.95`, or at the end `test: accuracy=0.981 ...`."""
    if "epoch" in metrics:
        figures = {key: metrics[key] for key in METRIC_KEYS if isinstance(metrics.get(key), int | float)}
        head = f"epoch {metrics['epoch']}"
    else:
        test = metrics.get("test")
        figures = {k: v for k, v in (test if isinstance(test, dict) else {}).items() if isinstance(v, int | float)}
        head = "test"
    return f"{head}: " + " ".join(f"{key}={value:.4g}" for key, value in figures.items())


def timestamp(value: datetime | None) -> str | None:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else None


def stopped_text(view: JobView) -> str | None:
    if view.stopped is None:
        return None
    ran = f" (ran {duration(view.stopped - view.started)})" if view.started else ""
    return f"{timestamp(view.stopped)}{ran}"


def duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m {rest % 60:02d}s" if hours else f"{rest // 60}m {rest % 60:02d}s"
