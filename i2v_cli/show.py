"""How the CLI (and `make demo` / `make local`) show things: tables, a task's key/value view, progress.

On a terminal: rich's colours, spinners and progress bars. Anywhere else (a pipe, a file, CI): plain lines,
no ANSI escapes, no spinner, nothing wrapped, so a long URL stays whole on one line for grep and copy.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

# Wide enough that a table off a terminal is never squeezed into wrapped cells.
PLAIN_WIDTH = 1000


def console(file: TextIO | None = None) -> Console:
    """A console on `file` (stdout by default): rich's own on a terminal, plain and unwrapped elsewhere."""
    stream = file or sys.stdout
    if stream.isatty():
        return Console(file=stream)
    # force_terminal=False: FORCE_COLOR or TTY_COMPATIBLE in the environment must not bring escapes back.
    return Console(file=stream, force_terminal=False, soft_wrap=True, width=PLAIN_WIDTH, highlight=False)


@contextmanager
def working(out: Console, text: str) -> Iterator[None]:
    """A spinner with `text` on a terminal; elsewhere the text once, as a plain line."""
    if out.is_terminal:
        with out.status(text):
            yield
    else:
        out.print(text, markup=False)
        yield


class TaskProgress:
    """Tasks' progress: a bar each on a terminal; elsewhere a plain line whenever a task's status or
    progress changes ("task vid_… processing 40%")."""

    def __init__(self, out: Console, quiet: bool = False) -> None:
        self._out = out
        self._quiet = quiet
        self._bars = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=out,
            )
            if out.is_terminal and not quiet
            else None
        )
        self._ids: dict[str, TaskID] = {}
        self._labels: dict[str, str] = {}
        self._last: dict[str, tuple[str, int]] = {}

    def __enter__(self) -> TaskProgress:
        if self._bars:
            self._bars.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bars:
            self._bars.stop()

    def add(self, key: str, label: str) -> None:
        self._labels[key] = label
        if self._bars:
            self._ids[key] = self._bars.add_task(label, total=100, status="")

    def update(self, key: str, status: str, progress: int) -> None:
        if self._bars:
            self._bars.update(self._ids[key], completed=progress, status=status)
        elif not self._quiet and self._last.get(key) != (status, progress):
            self._last[key] = (status, progress)
            self._out.print(f"{self._labels[key]} {status} {progress}%", markup=False)


def when(iso: str | None) -> str:
    """An API time (ISO 8601, UTC) as `2026-11-25 19:56:28`."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def usd(amount: float | None, digits: int = 4) -> str:
    return "" if amount is None else f"${amount:.{digits}f}"


def span(values: list[int]) -> str:
    """Durations as a range (2-15, with an en dash) when they run without gaps, else as a list."""
    if not values:
        return ""
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}\u2013{values[-1]}"
    return ", ".join(str(v) for v in values)


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def providers_table(rows: list[dict[str, Any]], asked: str) -> Table:
    """One row per provider; `asked` says what the price of a request is for (e.g. `5 s 1080p`)."""
    table = Table(title="providers")
    for heading in ("provider", "modes", "seconds", "resolutions", "audio", "callback", "status"):
        table.add_column(heading)
    table.add_column("USD/s", justify="right")
    table.add_column(f"USD for {asked}", justify="right")
    # Capacity: jobs there now / the cap in use (the configured one, if the host lowered it: `3/5 of 8`).
    table.add_column("in flight", justify="right")
    table.add_column("waiting", justify="right")
    table.add_column("p50 s", justify="right")
    for row in rows:
        table.add_row(
            row["name"],
            ", ".join(row["modes"]),
            span(row["durations"]),
            ", ".join(row["resolutions"]),
            yes(row["audio"]),
            yes(row["callback"]),
            row["status"],
            usd(row["price_per_second"]) or "no price",
            usd(row["price_for_request"]),
            in_flight(row),
            str(row["waiting"]),
            "" if row["p50_seconds"] is None else f"{row['p50_seconds']:.0f}",
        )
    return table


def in_flight(row: dict[str, Any]) -> str:
    text = f"{row['in_flight']}/{row['effective_max_in_flight']}"
    if row["effective_max_in_flight"] != row["max_in_flight"]:
        text += f" of {row['max_in_flight']}"
    return text


def tasks_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title="tasks, newest first")
    for heading in ("id", "status", "progress", "provider", "created (UTC)", "cost"):
        table.add_column(heading, justify="right" if heading in ("progress", "cost") else "left")
    for item in items:
        charge = (item.get("cost") or {}).get("client_charge")
        table.add_row(
            item["id"],
            item["status"],
            f"{item['progress']}%",
            item.get("provider") or "",
            when(item.get("created_at")),
            usd(charge),
        )
    return table


def charged(cost: dict[str, Any]) -> str:
    charge = usd(cost.get("client_charge")) or "no price"
    return f"{charge} for {cost['billed_seconds']} s ({cost['cost_source']})"


def queue_line(queue: dict[str, Any] | None) -> str:
    """Where a task waiting for a provider slot stands: `#12 (11 ahead), capacity at oxen, eta 16:02:10`."""
    if not queue:
        return ""
    return f"#{queue['position']} ({queue['ahead']} ahead), {queue['waiting_for']}, eta {when(queue['eta'])}"


def status_word(view: dict[str, Any]) -> str:
    """The status as a progress line shows it: with its place while it waits for a slot."""
    queue = view.get("queue")
    return f"{view['status']} #{queue['position']} in queue" if queue else str(view["status"])


def task_lines(view: dict[str, Any]) -> list[tuple[str, str]]:
    """A task as key/value pairs, in the order a reader wants them; empty values left out."""
    request = view["request"]
    cost = view.get("cost") or {}
    error = view.get("error") or {}
    output = view.get("output") or {}
    webhook = view.get("webhook")
    pairs = [
        ("id", view["id"]),
        ("status", view["status"]),
        ("progress", f"{view['progress']}%"),
        ("queue", queue_line(view.get("queue"))),
        ("queue wait", f"{view['queue_wait_seconds']} s" if view.get("queue_wait_seconds") else ""),
        ("provider", view.get("provider") or ""),
        ("mode", view.get("mode") or ""),
        ("prompt", request.get("prompt") or ""),
        ("negative", request.get("negative_prompt") or ""),
        ("image", request.get("image_url") or ""),
        ("last frame", request.get("last_frame_url") or ""),
        ("video", request.get("video_url") or ""),
        ("audio", request.get("audio_url") or ""),
        ("size", f"{request['resolution']}, {request['duration']} s"),
        ("source", view["source_key"] if view.get("source_key") else ""),
        ("error", f"{error.get('code')}: {error.get('message')}" if error else ""),
        ("created", when(view.get("created_at"))),
        ("updated", when(view.get("updated_at"))),
        ("cost", charged(cost) if cost else ""),
        ("video size", f"{output['size']} bytes" if output else ""),
        ("webhook", request.get("webhook_url") or ""),
        (
            "delivered",
            f"{yes(webhook['delivered'])} after {len(webhook['attempts'])} attempt(s)" if webhook else "",
        ),
        ("expires", when(view.get("expires_at"))),
        ("output", view.get("output_url") or ""),
    ]
    return [(key, str(value)) for key, value in pairs if value]


def print_task(out: Console, view: dict[str, Any]) -> None:
    """The key/value view. Values are printed as they are (no markup), and never wrapped: on a terminal the
    terminal folds a long output URL visually, but it stays one line to copy."""
    pairs = task_lines(view)
    width = max(len(key) for key, _ in pairs)
    for key, value in pairs:
        out.print(Text.assemble((key.ljust(width), "bold"), "  ", value), soft_wrap=True)


def usage_table(report: dict[str, Any]) -> Table:
    group_by = report["group_by"]
    table = Table(title=f"usage {report['from']} .. {report['to']} ({report['currency']})")
    for heading in (group_by, "tasks", "seconds", "provider cost", "charge", "unpriced"):
        table.add_column(heading, justify="left" if heading == group_by else "right")
    groups = report["groups"]
    for row in [*groups, {"key": "total", **report["total"]}]:
        table.add_row(
            row["key"],
            str(row["tasks"]),
            f"{row['billed_seconds']:.2f}",
            f"{row['provider_cost']:.4f}",
            f"{row['client_charge']:.4f}",
            str(row["unpriced_tasks"]),
            end_section=bool(groups) and row is groups[-1],
        )
    return table
