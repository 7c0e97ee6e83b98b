"""The `i2v` command against the local stack, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import av
import httpx
import pytest

from i2v_cli import main
from i2v_local.simulator import Simulator
from i2v_local.stack import LocalStack
from tests.e2e.flows import create
from tests.support import ROOT

pytestmark = pytest.mark.e2e


def cli(stack: LocalStack, *args: str) -> int:
    return main(["--api-url", stack.url, "--api-key", stack.api_key, *args])


def test_generate_uploads_a_local_image_and_downloads_the_mp4(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hills.mp4"
    image = str(ROOT / "assets" / "sample.png")
    code = cli(
        stack,
        "generate",
        image,
        "--prompt",
        "dusk",
        "--duration",
        "2",
        "--resolution",
        "720p",
        "--out",
        str(out),
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out)
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert min(container.streams.video[0].width, container.streams.video[0].height) == 720


def test_a_refused_request_prints_the_field_and_exits_1(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    image = str(ROOT / "assets" / "sample.png")
    assert cli(stack, "generate", image, "--duration", "16") == 1
    assert "duration: Input should be less than or equal to 15" in capsys.readouterr().err


def test_status_list_cancel_and_providers_print_json(
    stack: LocalStack,
    sims: dict[str, Simulator],
    api: httpx.Client,
    image_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sims["local"].faults.stall = True  # the tasks stay in flight, so one can be cancelled
    older = create(api, {"image_url": image_url, "duration": 2})["id"]
    newer = create(api, {"image_url": image_url, "duration": 2})["id"]

    assert cli(stack, "providers") == 0
    assert {p["name"] for p in json.loads(capsys.readouterr().out)} >= {"local", "evolink"}
    assert cli(stack, "list", "--limit", "1") == 0
    assert [t["id"] for t in json.loads(capsys.readouterr().out)["items"]] == [newer]  # newest first
    assert cli(stack, "status", older) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["status"]) == (older, "submitted")
    assert cli(stack, "cancel", older) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"
    assert api.get(f"/v1/videos/{older}").json()["status"] == "cancelled"
    assert api.get(f"/v1/videos/{newer}").json()["status"] == "submitted"
    assert cli(stack, "cancel", "vid_nope") == 1
    assert "404" in capsys.readouterr().err


def test_missing_key_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api-key", "", "list"]) == 1
    assert "I2V_API_KEY" in capsys.readouterr().err


def test_usage_prints_a_table_per_status_and_the_same_figures_as_json(
    stack: LocalStack,
    sims: dict[str, Simulator],
    api: httpx.Client,
    image_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sims["local"].faults.stall = True
    task = create(api, {"image_url": image_url, "duration": 2})["id"]
    assert cli(stack, "cancel", task) == 0
    capsys.readouterr()
    expected = api.get("/v1/usage", params={"group_by": "status"}).json()
    assert cli(stack, "usage", "--group-by", "status", "--json") == 0
    assert json.loads(capsys.readouterr().out) == expected
    assert cli(stack, "usage", "--group-by", "status") == 0
    table = capsys.readouterr().out
    cancelled = next(row for row in expected["groups"] if row["key"] == "cancelled")
    line = next(text for text in table.splitlines() if "cancelled" in text)
    assert [cell.strip() for cell in line.strip("│ ").split("│")][:2] == [
        "cancelled",
        str(cancelled["tasks"]),
    ]
    assert "total" in table
    assert cli(stack, "usage", "--from", "soon") == 1
    assert "from" in capsys.readouterr().err
