"""The model's limits held to what a probe found: one message per limit broken, each naming the limit."""

from __future__ import annotations

import math
from typing import Any

from i2v.models import MB, MEDIA_LIMITS, Kind, MediaLimits
from i2v.probe.common import MediaInfo


def limit_violations(info: MediaInfo, *, forbid_alpha: bool = False) -> list[str]:
    """Human messages for every limit the media breaks, each naming the limit, e.g.
    'image is 200x300 px; each side must be 240-8000 px', 'clip is 12.0 s; it must be 2-10 s'.
    Empty if fine."""
    limits = MEDIA_LIMITS[info.kind]
    noun = limits.noun
    problems: list[str] = []
    if info.format not in limits.formats:
        names = [name.upper() for name in limits.formats]
        allowed = f"{', '.join(names[:-1])} or {names[-1]}"
        problems.append(f"{noun} is {info.format.upper() or 'of unknown format'}; it must be {allowed}")
    if limits.sides is not None:
        problems += _side_violations(info, limits)
    if limits.seconds is not None:
        problems += _length_violations(info, limits.noun, limits.seconds)
    if info.size_bytes > limits.max_bytes:
        problems.append(too_large(info.kind, info.size_bytes))
    if forbid_alpha and info.has_alpha:
        problems.append(f"{noun} has transparency (an alpha channel); this provider needs it opaque")
    return problems


def _side_violations(info: MediaInfo, limits: MediaLimits) -> list[str]:
    noun = limits.noun
    low, high = limits.sides or (0, 0)
    if info.width is None or info.height is None:
        return [f"{noun} size is unknown; each side must be {low}-{high} px"]
    problems = []
    for field, width, height in info.sizes or (("", info.width, info.height),):
        size = f"{width}x{height} px" + (f" by its {field}" + _others(info.sizes, field) if field else "")
        if not (low <= width <= high and low <= height <= high):
            problems.append(f"{noun} is {size}; each side must be {low}-{high} px")
        short, long = sorted((width, height))
        if long > short * limits.max_aspect:
            factor = f"{long / short:.1f}" if short > 0 else "∞"
            ratio = f"{factor}:1" if width >= height else f"1:{factor}"
            problems.append(
                f"{noun} is {size} ({ratio}); its aspect ratio must be between "
                f"1:{limits.max_aspect} and {limits.max_aspect}:1"
            )
    return problems


def _length_violations(info: MediaInfo, noun: str, bounds: tuple[int, int]) -> list[str]:
    low, high = bounds
    if info.duration is None:
        return [f"{noun} duration is unknown; it must be {low}-{high} s"]
    said = info.durations or (("", info.duration),)
    # The stricter answer wins: the longest against the upper bound, the shortest against the lower.
    for field, seconds in (max(said, key=lambda f: f[1]), min(said, key=lambda f: f[1])):
        if not low <= seconds <= high:
            by = f" by its {field}" + _others(info.durations, field) if field else ""
            return [f"{noun} is {_seconds(seconds, bounds)} s{by}; it must be {low}-{high} s"]
    return []


def _others(said: tuple[tuple[Any, ...], ...], field: str) -> str:
    """What the file's other fields say, e.g. ' (mvhd says 5.0 s, tkhd 12.0 s)'."""
    rest = [
        (name, f"{values[0]:.1f} s" if len(values) == 1 else f"{values[0]}x{values[1]} px")
        for name, *values in said
        if name != field
    ]
    if not rest:
        return ""
    texts = [f"{name} says {value}" if n == 0 else f"{name} {value}" for n, (name, value) in enumerate(rest)]
    return f" ({', '.join(texts)})"


def too_large(kind: Kind, size: int) -> str:
    limits = MEDIA_LIMITS[kind]
    # Rounded up, so a file just over the limit never reads as exactly the limit.
    return f"{limits.noun} is {math.ceil(size / MB * 10) / 10:.1f} MB; it must be at most {limits.max_mb} MB"


def _seconds(value: float, bounds: tuple[int, int]) -> str:
    """One decimal, unless that would print a bound the value is outside of (10.02 s is not '10.0 s')."""
    text = f"{value:.1f}"
    return f"{value:.3f}" if float(text) in bounds else text
