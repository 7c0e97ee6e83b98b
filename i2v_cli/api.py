"""Talking to the gateway: the HTTP client, exit codes, and the API's problems told in the user's words."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

import httpx


class Exit(IntEnum):
    """What the command's exit status means; `i2v --help` lists them, scripts rely on them."""

    OK = 0
    TASK_FAILED = 1  # the task failed, was cancelled or timed out, or its video could not be saved
    USAGE = 2  # bad flags, files or --out: nothing was sent (argparse's own errors are 2 as well)
    REFUSED = 3  # the API refused the request (a 4xx: invalid field, bad key, no such task, over budget)
    UNREACHABLE = 4  # no answer from the API, or it failed (a 5xx)
    INTERRUPTED = 130  # Ctrl-C


EXIT_CODES_HELP = """exit status:
  0    done (generate/wait: the video succeeded and was saved)
  1    the task failed, was cancelled or timed out (or its video could not be saved)
  2    usage error: bad flags, unreadable or unaccepted input files, unusable --out; nothing was sent
  3    the API refused the request (invalid field, bad API key, no such task, over budget)
  4    the API could not be reached, or it failed (HTTP 5xx)
  130  interrupted (Ctrl-C); the task goes on: `i2v wait <id>` picks it up again
"""


class CliError(Exception):
    """A message for the user, and the exit status that goes with it."""

    def __init__(self, message: str, code: Exit = Exit.USAGE) -> None:
        super().__init__(message)
        self.code = code


def connect(url: str, key: str) -> httpx.Client:
    key = key.strip()  # pasted keys come with a newline
    if not key:
        raise CliError("set I2V_API_KEY (or pass --api-key); `make local` prints a working one")
    if not key.isprintable() or " " in key:
        raise CliError("the API key (I2V_API_KEY or --api-key) has spaces or control characters in it")
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        transport=httpx.HTTPTransport(retries=2),  # a refused connection is retried; a sent request is not
    )


def flag_for(field: str) -> str:
    """The flag a user types for an API field or query parameter (`negative_prompt` -> --negative-prompt)."""
    return "--" + field.replace("_", "-")


def in_user_words(text: str, labels: Mapping[str, str]) -> str:
    """`text` with every API field name the user did not type replaced by what they did."""
    for field, label in labels.items():
        text = re.sub(rf"\b{re.escape(field)}\b", label, text)
    return text


def problem_message(resp: httpx.Response, labels: Mapping[str, str]) -> str:
    """An RFC 9457 problem as one message: its title, then each field error under the flag it came from
    (`labels`; others as --<field>), or the detail when it says more than the title."""
    try:
        problem: Any = resp.json()
        title = str(problem.get("title") or f"HTTP {resp.status_code}")
        detail = str(problem.get("detail") or "")
        errors = [(str(e["field"]), str(e["message"])) for e in problem.get("errors") or []]
    except (ValueError, AttributeError, KeyError, TypeError):
        return f"HTTP {resp.status_code}: {resp.text[:300]}"
    if errors:
        lines = []
        for field, message in errors:
            head = field.split(".", 1)[0]
            where = labels.get(head) or ("the request" if head == "body" else flag_for(head))
            lines.append(f"  {where}: {in_user_words(message, labels)}")
        return "\n".join([title, *lines])
    if not detail or detail.lower() in title.lower():
        return title
    return f"{title}: {in_user_words(detail, labels)}"


def checked(resp: httpx.Response, labels: Mapping[str, str] | None = None) -> Any:
    """The JSON body of a success; otherwise a CliError in the user's words, its exit code by who failed."""
    if resp.status_code < 400:
        return resp.json()
    message = problem_message(resp, labels or {})
    if resp.status_code >= 500:
        raise CliError(f"the API failed (HTTP {resp.status_code}): {message}", Exit.UNREACHABLE)
    raise CliError(message, Exit.REFUSED)
