"""Make moto's DynamoDB as atomic as DynamoDB, for tests that race conditional writes.

moto's server handles requests on threads and checks a ConditionExpression, then applies the update, with
no lock between the two: two writers racing on one item can both pass the check. Measured on moto 5.2.5,
four threads racing `SET o = :o IF attribute_not_exists(o)` on one item: 12 rounds in 1000 had two
winners. DynamoDB serialises writes to an item, and the gateway's leases rely on that, so tests that race
them serialise moto's item reads and writes (moto runs in this process) to test the gateway, not moto.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

_ITEM_CALLS = ("get_item", "query", "put_item", "update_item", "delete_item", "transact_write_items")


@contextmanager
def atomic_dynamodb() -> Iterator[None]:
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def locked(call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return call(self, *args, **kwargs)

        return run

    with pytest.MonkeyPatch.context() as patch:
        for name in _ITEM_CALLS:
            patch.setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))
        yield
