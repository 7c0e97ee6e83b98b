"""JSON from outside (request bodies, callbacks, sidecars, provider answers): every way it can fail is one
error.

`json.loads` raises more than JSONDecodeError on text it did not write: UnicodeDecodeError for bytes that are
not UTF-8, ValueError for an integer past Python's 4,300-digit limit for int(str), and RecursionError (not
a ValueError at all) for nesting deeper than the interpreter's stack. Callers catching some of these turn
the others into a 500 or a poisoned queue message; `loads` raises `NotJson`, saying why in plain words.
"""

from __future__ import annotations

import json
from typing import Any


class NotJson(ValueError):
    """The text is not JSON this gateway can read; the message says why."""


def loads(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise NotJson(f"{exc.msg} at character {exc.pos}") from None
    except UnicodeDecodeError:
        raise NotJson("it is not UTF-8 text") from None
    except RecursionError:
        raise NotJson("it is nested too deeply") from None
    except ValueError:  # what is left: int(str) past its digit limit
        raise NotJson("a number in it has more digits than any value takes") from None
