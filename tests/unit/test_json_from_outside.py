"""JSON from outside fails one way: whatever a client, a callback or a provider sends, reading it raises
NotJson (or the adapter's ProviderError), never the ValueError or RecursionError json.loads lets out."""

from __future__ import annotations

import httpx
import pytest

from i2v import jsontext
from i2v.providers.base import ProviderError, callback_json, json_body
from i2v.providers.registry import PROVIDERS

UNREADABLE = {
    "a 5000-digit number": (b'{"id": ' + b"7" * 5000 + b"}", "more digits"),
    "nesting past the recursion limit": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "bytes that are not UTF-8": (b'{"id": "\xff\xfe"}', "not UTF-8"),
    "not JSON": (b"<html>502 Bad Gateway</html>", "Expecting value"),
}


@pytest.mark.parametrize("name", UNREADABLE)
def test_every_way_json_can_fail_is_not_json_saying_why(name: str) -> None:
    body, reason = UNREADABLE[name]
    with pytest.raises(jsontext.NotJson, match=reason):
        jsontext.loads(body)
    if name != "bytes that are not UTF-8":  # as text (a request body), too
        with pytest.raises(jsontext.NotJson, match=reason):
            jsontext.loads(body.decode())


@pytest.mark.parametrize("name", UNREADABLE)
def test_an_unreadable_callback_body_is_no_hint(name: str) -> None:
    assert callback_json(UNREADABLE[name][0]) == {}


@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize("name", UNREADABLE)
def test_an_unreadable_provider_answer_is_a_provider_error(name: str, status: int) -> None:
    answer = httpx.Response(status, content=UNREADABLE[name][0])
    with pytest.raises(ProviderError):
        json_body(answer)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [200, 400, 404])
@pytest.mark.parametrize("name", UNREADABLE)
def test_every_adapter_reads_an_unreadable_answer_as_a_provider_error(
    provider: str, name: str, status: int
) -> None:
    adapter = PROVIDERS[provider].build("https://host.example", "key")
    answer = httpx.Response(status, content=UNREADABLE[name][0])
    for parse in (adapter.parse_submit, adapter.parse_status):
        with pytest.raises(ProviderError):
            parse(answer)
    assert adapter.callback_task_id(UNREADABLE[name][0]) is None
