"""The `i2v` command against the local stack, as a user runs it: in-process through main(), and as a real
process where what matters is a pipe (plain output) or a signal (Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from i2v_cli import main, parser
from i2v_cli.api import CliError, Exit, checked
from i2v_cli.inputs import request_body
from i2v_local.simulator import Simulator
from i2v_local.stack import LocalStack
from tests.e2e.flows import create, finished
from tests.support import ROOT

pytestmark = pytest.mark.e2e

SAMPLE = str(ROOT / "assets" / "sample.png")


def cli(stack: LocalStack, *args: str) -> int:
    return main(["--api-url", stack.url, "--api-key", stack.api_key, *args])


def cli_process(stack: LocalStack, *args: str) -> subprocess.Popen[str]:
    """`i2v …` as its own process, its output going to pipes (not a terminal)."""
    env = {**os.environ, "I2V_API_URL": stack.url, "I2V_API_KEY": stack.api_key, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "i2v_cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def newest_task(api: httpx.Client) -> str | None:
    items: list[dict[str, Any]] = api.get("/v1/videos", params={"limit": 1}).json()["items"]
    return items[0]["id"] if items else None


def test_generate_uploads_a_local_image_and_downloads_the_mp4(
    stack: LocalStack, api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Names as people have them: spaces, accents, brackets, in folders named the same way.
    photo = tmp_path / "mes photos" / "Café au lait (1).png"
    photo.parent.mkdir()
    photo.write_bytes(Path(SAMPLE).read_bytes())
    (tmp_path / "vidéos").mkdir()
    out = tmp_path / "vidéos" / "collines à l'aube.mp4"
    code = cli(
        stack,
        "generate",
        str(photo),
        "--prompt",
        "dusk",
        "--duration",
        "2",
        "--resolution",
        "720p",
        "--out",
        str(out),
    )
    assert code == Exit.OK
    assert capsys.readouterr().out.strip() == str(out)
    assert not list(out.parent.glob("*.part"))
    # The upload's key is made from the name, key-safe.
    assert (
        api.get(f"/v1/videos/{newest_task(api)}")
        .json()["request"]["image_url"]
        .endswith("-Cafe_au_lait_1_.png")
    )
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert min(container.streams.video[0].width, container.streams.video[0].height) == 720


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--out", "/nonexistent/dir/x.mp4"],
            "/nonexistent/dir/x.mp4 (--out): the folder /nonexistent/dir does not exist",
        ),
        (["--out", "/nonexistent/dir/"], "/nonexistent/dir/ (--out): no such folder"),
        (["--last-frame", "nowhere.png"], "nowhere.png (--last-frame): no such file"),
        (["--audio", "{tmp}/drums.ogg"], "drums.ogg (--audio): OGG is not accepted; use WAV or MP3"),
        (["--metadata", "novalue"], "--metadata: expected KEY=VALUE or a JSON object"),
    ],
)
def test_bad_flags_and_paths_are_refused_before_anything_is_submitted(
    stack: LocalStack,
    api: httpx.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "drums.ogg").write_bytes(b"OggS")
    before = newest_task(api)
    assert cli(stack, "generate", SAMPLE, *(a.replace("{tmp}", str(tmp_path)) for a in args)) == Exit.USAGE
    assert message in capsys.readouterr().err
    assert newest_task(api) == before  # nothing was submitted


def test_a_gif_is_refused_naming_the_file_and_the_formats_accepted(
    stack: LocalStack, api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.new("RGB", (480, 480)).save(tmp_path / "cat.gif")
    before = newest_task(api)
    assert cli(stack, "generate", str(tmp_path / "cat.gif"), "--out", str(tmp_path)) == Exit.USAGE
    err = capsys.readouterr().err
    assert f"{tmp_path / 'cat.gif'} (image): GIF is not accepted; use JPEG, PNG, BMP or WEBP" in err
    assert "content_type" not in err
    assert newest_task(api) == before


def test_every_request_flag_reaches_the_task(
    stack: LocalStack, sims: dict[str, Simulator], api: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    sims["local"].faults.stall = True  # the task stays in flight; it is cancelled at the end
    code = cli(
        stack,
        "generate",
        SAMPLE,
        "--prompt",
        "a slow pan",
        "--negative-prompt",
        "blur",
        "--mode",
        "first_frame",
        "--resolution",
        "720P",
        "--duration",
        "3",
        "--no-prompt-extend",
        "--watermark",
        "--seed",
        "42",
        "--provider",
        "local",
        "--routing",
        "cheapest",
        "--webhook-url",
        "http://127.0.0.1:9/hook",
        "--metadata",
        "order=17",
        "--metadata",
        '{"team": "blue", "size": 2}',
        "--no-wait",
    )
    assert code == Exit.OK
    task_id = capsys.readouterr().out.strip()
    request = api.get(f"/v1/videos/{task_id}").json()["request"]
    assert request["image_url"].startswith("s3://")
    assert {k: v for k, v in request.items() if k != "image_url"} == {
        "prompt": "a slow pan",
        "negative_prompt": "blur",
        "last_frame_url": None,
        "video_url": None,
        "audio_url": None,
        "mode": "first_frame",
        "resolution": "720p",
        "duration": 3,
        "prompt_extend": False,
        "watermark": True,
        "seed": 42,
        "provider": "local",
        "routing": "cheapest",
        "webhook_url": "http://127.0.0.1:9/hook",
        "metadata": {"order": "17", "team": "blue", "size": "2"},
    }
    assert cli(stack, "cancel", task_id) == Exit.OK
    assert capsys.readouterr().out.strip() == f"{task_id} cancelled"


def test_flags_left_out_are_not_sent_so_the_api_defaults_apply() -> None:
    args = parser().parse_args(["generate", "https://example.com/cat.png"])
    assert request_body(args, {}) == {"image_url": "https://example.com/cat.png"}
    args = parser().parse_args(["generate", "cat.png", "--provider", "evolink,local", "--prompt-extend"])
    assert request_body(args, {"image_url": "s3://b/k"}) == {
        "image_url": "s3://b/k",
        "prompt_extend": True,
        "provider": ["evolink", "local"],
    }


def test_providers_list_and_status_print_tables_or_the_apis_json(
    stack: LocalStack,
    sims: dict[str, Simulator],
    api: httpx.Client,
    image_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sims["local"].faults.stall = True
    older = create(api, {"image_url": image_url, "duration": 2, "prompt": "[bold]not markup[/]"})["id"]
    newer = create(api, {"image_url": image_url, "duration": 2})["id"]

    assert cli(stack, "providers", "--json") == Exit.OK
    hosts = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in hosts} >= {"local", "evolink"}
    assert cli(stack, "providers") == Exit.OK
    table = capsys.readouterr().out.splitlines()
    local = next(line for line in table if line.startswith("│ local "))
    assert "2\u201315" in local  # durations as a range, on the provider's one row
    assert len(table) < len(hosts) + 10  # a row per provider, not a line per duration

    assert cli(stack, "list", "--limit", "2", "--json") == Exit.OK
    assert [t["id"] for t in json.loads(capsys.readouterr().out)["items"]] == [newer, older]
    assert cli(stack, "list", "--limit", "2") == Exit.OK
    shown = capsys.readouterr()
    rows = [line for line in shown.out.splitlines() if "vid_" in line]
    assert [row.split("│")[1].strip() for row in rows] == [newer, older]
    assert "submitted" in rows[0]
    assert "i2v list --cursor " in shown.err

    assert cli(stack, "status", older, "--json") == Exit.OK
    assert json.loads(capsys.readouterr().out)["status"] == "submitted"
    assert cli(stack, "status", older) == Exit.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", older]
    assert "status    submitted" in lines
    assert "prompt    [bold]not markup[/]" in lines
    assert cli(stack, "cancel", older, "--json") == Exit.OK
    assert json.loads(capsys.readouterr().out)["status"] == "cancelled"


def test_status_off_a_terminal_is_plain_with_the_output_url_whole_on_one_line(
    stack: LocalStack, api: httpx.Client, image_url: str
) -> None:
    task = finished(api, create(api, {"image_url": image_url, "duration": 2, "resolution": "720p"})["id"])
    assert task["status"] == "succeeded"
    run = cli_process(stack, "status", task["id"])
    out, err = run.communicate(timeout=60)
    assert run.returncode == Exit.OK, err
    assert "\x1b[" not in out
    url = api.get(f"/v1/videos/{task['id']}").json()["output_url"].split("?")[0]
    output = next(line for line in out.splitlines() if line.startswith("output "))
    assert len(output) > 200  # longer than any terminal would show unwrapped
    assert output.split()[1].startswith(url)


def test_wait_follows_a_task_in_plain_lines_and_saves_into_a_folder(
    stack: LocalStack, api: httpx.Client, image_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task_id = create(api, {"image_url": image_url, "duration": 2, "resolution": "720p"})["id"]
    assert cli(stack, "wait", task_id, "--out", str(tmp_path)) == Exit.OK
    shown = capsys.readouterr()
    assert shown.out.strip() == str(tmp_path / f"{task_id}.mp4")
    assert (tmp_path / f"{task_id}.mp4").stat().st_size > 0
    # The stack runs in this process and logs to stderr too: only the CLI's lines are about the task.
    lines = [line for line in shown.err.splitlines() if task_id in line]
    assert lines[-1] == f"task {task_id} succeeded 100%"
    assert len(set(lines)) == len(lines) > 1  # a line per change, not per poll
    assert "\x1b[" not in shown.err


def test_exit_codes_tell_what_went_wrong(
    stack: LocalStack,
    sims: dict[str, Simulator],
    api: httpx.Client,
    image_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--help"]) == Exit.OK
    assert "130  interrupted" in capsys.readouterr().out
    assert cli(stack, "generate", SAMPLE, "--duration", "two") == Exit.USAGE
    assert cli(stack, "status", "vid_nope") == Exit.REFUSED
    assert "no task vid_nope" in capsys.readouterr().err
    assert main(["--api-url", "http://127.0.0.1:9", "--api-key", "k", "list"]) == Exit.UNREACHABLE
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err
    assert main(["--api-url", stack.url, "--api-key", "i2v_wrong", "list"]) == Exit.REFUSED
    err = capsys.readouterr().err
    assert err.count("Invalid API key") == 1
    sims["local"].faults.fail_render = "the GPU caught fire"
    task_id = create(api, {"image_url": image_url, "duration": 2})["id"]
    assert cli(stack, "wait", task_id) == Exit.TASK_FAILED
    assert "the GPU caught fire" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (401, {"title": "Invalid API key", "detail": "Invalid API key"}, Exit.REFUSED, "Invalid API key"),
        (
            409,
            {"title": "Task finished", "detail": "vid_1 succeeded"},
            Exit.REFUSED,
            "Task finished: vid_1 succeeded",
        ),
        (
            502,
            {"title": "Bad gateway", "detail": "Bad gateway"},
            Exit.UNREACHABLE,
            "the API failed (HTTP 502): Bad gateway",
        ),
    ],
)
def test_a_problem_reads_as_one_message_and_its_status_picks_the_exit_code(
    status: int, body: dict[str, str], code: Exit, message: str
) -> None:
    with pytest.raises(CliError) as refused:
        checked(httpx.Response(status, json={"type": "about:blank", "status": status, **body}))
    assert (str(refused.value), refused.value.code) == (message, code)


def test_a_refused_request_names_the_flag_and_the_file_not_the_api_field(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(stack, "generate", SAMPLE, "--duration", "16", "--out", str(tmp_path)) == Exit.REFUSED
    assert "--duration: Input should be less than or equal to 15" in capsys.readouterr().err
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (100, 100)).save(tiny)
    assert cli(stack, "generate", SAMPLE, "--last-frame", str(tiny), "--out", str(tmp_path)) == Exit.REFUSED
    err = capsys.readouterr().err
    assert f"{tiny} (--last-frame): " in err
    assert "_url" not in err
    assert cli(stack, "generate", SAMPLE, "--provider", "nope", "--out", str(tmp_path)) == Exit.REFUSED
    assert "--provider: unknown provider 'nope'; see `i2v providers`" in capsys.readouterr().err


def test_missing_key_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--api-key", "", "list"]) == Exit.USAGE
    assert "I2V_API_KEY" in capsys.readouterr().err


def test_a_pasted_key_is_trimmed_and_a_mangled_one_explained(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--api-url", stack.url, "--api-key", f"{stack.api_key}\n", "list", "--json"]) == Exit.OK
    capsys.readouterr()
    assert main(["--api-url", stack.url, "--api-key", f"(paste\n{stack.api_key}", "list"]) == Exit.USAGE
    assert "the API key (I2V_API_KEY or --api-key) has spaces" in capsys.readouterr().err


def test_webhooks_secret_prints_the_tenants_secret(
    stack: LocalStack, api: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(stack, "webhooks", "secret") == Exit.OK
    assert capsys.readouterr().out.strip() == api.get("/v1/webhooks/secret").json()["secret"]


def test_ctrl_c_while_waiting_says_how_to_resume_and_exits_130(
    stack: LocalStack, sims: dict[str, Simulator], api: httpx.Client, image_url: str
) -> None:
    sims["local"].faults.stall = True
    task_id = create(api, {"image_url": image_url, "duration": 2})["id"]
    run = cli_process(stack, "wait", task_id)
    assert run.stderr is not None
    assert run.stderr.readline().startswith(f"task {task_id} ")  # it is polling
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=30)
    assert run.returncode == Exit.INTERRUPTED
    assert f"`i2v wait {task_id}` picks it up again" in err
    assert "Traceback" not in err
    assert api.get(f"/v1/videos/{task_id}").json()["status"] == "submitted"  # the task goes on


def test_usage_prints_a_table_per_status_and_the_same_figures_as_json(
    stack: LocalStack,
    sims: dict[str, Simulator],
    api: httpx.Client,
    image_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sims["local"].faults.stall = True
    task = create(api, {"image_url": image_url, "duration": 2})["id"]
    assert cli(stack, "cancel", task) == Exit.OK
    capsys.readouterr()
    expected = api.get("/v1/usage", params={"group_by": "status"}).json()
    assert cli(stack, "usage", "--group-by", "status", "--json") == Exit.OK
    assert json.loads(capsys.readouterr().out) == expected
    assert cli(stack, "usage", "--group-by", "status") == Exit.OK
    table = capsys.readouterr().out
    cancelled = next(row for row in expected["groups"] if row["key"] == "cancelled")
    line = next(text for text in table.splitlines() if "cancelled" in text)
    assert [cell.strip() for cell in line.strip("│ ").split("│")][:2] == [
        "cancelled",
        str(cancelled["tasks"]),
    ]
    assert "total" in table
    assert cli(stack, "usage", "--from", "soon") == Exit.REFUSED
    assert "--from" in capsys.readouterr().err


def test_a_create_that_gets_no_answer_is_not_sent_again_and_says_it_may_exist(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A gateway that reads each request and hangs up without answering: the task may have been made.
    requests: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))

    def hang_up() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                requests.append(conn.recv(65536))

    threading.Thread(target=hang_up, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        code = main(["--api-url", url, "--api-key", "k", "generate", "https://a.example/b.png", "--no-wait"])
    finally:
        server.close()
    assert code == Exit.UNREACHABLE
    assert "it may have been accepted: `i2v list` shows your newest tasks" in capsys.readouterr().err
    assert [r.split(b" ", 2)[:2] for r in requests] == [[b"POST", b"/v1/videos"]]  # once, never again
