"""How every benchmark prints: one line per figure, the ratio to its floor and the goal it is held to.

Benchmarks print figures; they never fail the build (tests assert behaviour only). A figure that misses its
goal is marked so a reader sees it at once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """`ratio <= at_most` or `ratio >= at_least`."""

    at_most: float | None = None
    at_least: float | None = None

    def met(self, value: float) -> bool:
        if self.at_most is not None and value > self.at_most:
            return False
        return not (self.at_least is not None and value < self.at_least)

    def __str__(self) -> str:
        return f"<= {self.at_most:g}" if self.at_most is not None else f">= {self.at_least:g}"


def section(title: str) -> None:
    print(f"\n{title}", flush=True)


def line(label: str, value: float, unit: str, ratio: float | None = None, goal: Goal | None = None) -> None:
    """`label  value unit  [= ratio x]  [goal <= g: ok|MISSED]`."""
    text = f"  {label:<46} {value:10.2f} {unit:<5}"
    if ratio is not None:
        text += f" = {ratio:6.2f}x"
    if goal is not None:
        checked = ratio if ratio is not None else value
        text += f"  goal {goal}: {'ok' if goal.met(checked) else 'MISSED'}"
    print(text, flush=True)


def note(text: str) -> None:
    print(f"  {text}", flush=True)


def progress(done: int, total: int, what: str) -> None:
    """A one-line progress count on a terminal; nothing when piped (logs stay clean)."""
    if sys.stderr.isatty():
        end = "\n" if done >= total else ""
        print(f"\r  {what}: {done}/{total}", end=end, file=sys.stderr, flush=True)
