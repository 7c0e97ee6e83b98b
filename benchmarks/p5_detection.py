"""P5 detection: from the provider finishing a job to the task being terminal (its MP4 stored), per host kind.

The local stack (`i2v_local.LocalStack`: moto, the simulators, every function wired from template.yaml) with
the sweeper on its deployed period (60 s), so a poll-only task is found by its timed turns (the poll queue),
as deployed, not by a sweep that locally runs every 2 s. Poll interval 5 s (deployed: 15 s; the goal is a
ratio to it).
- callback host: `local` (its callback goes out as the job ends); poll-only host: `oxen`;
- finished: the simulator's own time for the job; terminal: the first GET /v1/videos/{id} (asked every 50 ms)
  that shows `succeeded`, so the figure includes the ingest into S3 and up to 50 ms of asking;
- each job runs for a different time (the simulator holds it at 50 % for 7-14 s, then renders), so the
  moments it finishes fall anywhere between two polls;
- status queries per task: the simulator's count for the job, against duration / interval + 2, where
  duration is submit to finish.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx

from benchmarks.report import Goal, line, note, progress, section

ROOT = Path(__file__).resolve().parents[1]
TASKS = 4
INTERVAL = 5
HOLD_SECONDS = (7.0, 9.3, 11.6, 13.9)  # how long each job runs before it renders
CALLBACK_GOAL = 2.0


def run() -> None:
    from i2v_local.stack import LocalStack

    section(f"P5 detection: provider finished -> task terminal (local stack, poll interval {INTERVAL} s)")
    with LocalStack(sweep_every=60, poll_interval=INTERVAL, render_scale=0.25) as stack:
        api = httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30
        )
        ticket = api.post("/v1/uploads", json={"filename": "p5.png", "content_type": "image/png"}).json()
        image = (ROOT / "assets" / "sample.png").read_bytes()
        httpx.put(ticket["put_url"], content=image, headers={"Content-Type": "image/png"}).raise_for_status()
        body = {"image_url": ticket["url"], "duration": 2, "resolution": "720p"}
        for provider, goal in (("local", Goal(at_most=CALLBACK_GOAL)), ("oxen", Goal(at_most=1.0))):
            sim = stack.simulators[provider]
            lags, polls, bounds = [], [], []
            for n in range(TASKS):
                progress(n, TASKS, f"{provider} tasks")
                sim.faults.hold_progress = 50
                threading.Timer(HOLD_SECONDS[n % len(HOLD_SECONDS)], release, args=(sim,)).start()
                created = api.post("/v1/videos", json={**body, "provider": provider})
                created.raise_for_status()
                task_id, submitted = created.json()["id"], time.time()
                seen = until_terminal(api, task_id)
                job = stack.runtime().tasks.require(task_id).provider_task_id
                finished = sim.tasks[job].finished_at if job else None
                if job is None or finished is None:
                    raise RuntimeError(f"task {task_id}: no finished job at {provider}")
                lags.append(seen - finished)
                polls.append(sim.status_queries[job])
                bounds.append((finished - submitted) / INTERVAL + 2)
            progress(TASKS, TASKS, f"{provider} tasks")
            kind = "callback" if provider == "local" else "poll-only"
            worst = max(lags)
            ratio = worst / INTERVAL if provider == "oxen" else None
            line(f"{kind} ({provider}): median of {TASKS}", statistics.median(lags), "s")
            line(f"{kind} ({provider}): worst", worst, "s", ratio=ratio, goal=goal)
            over = [p for p, bound in zip(polls, bounds, strict=True) if p > bound]
            line(f"{kind} ({provider}): status queries per task", statistics.mean(polls), "")
            if provider == "local":
                note("  (a callback host is polled on the same interval as a safety net, plus one query that")
                note("  confirms its callback)")
            else:
                note(f"  bound duration/interval + 2: {min(bounds):.1f}-{max(bounds):.1f}; over: {len(over)}")
        api.close()
    note(f"(the poll-only worst is also shown as a ratio to the poll interval, {INTERVAL} s)")


def release(sim: object) -> None:
    sim.faults.hold_progress = None  # type: ignore[attr-defined]


def until_terminal(api: httpx.Client, task_id: str, seconds: float = 120) -> float:
    """The time the task was first seen terminal (it must succeed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = api.get(f"/v1/videos/{task_id}").json()["status"]
        if status == "succeeded":
            return time.time()
        if status in ("failed", "cancelled", "timed_out"):
            raise RuntimeError(f"task {task_id} ended {status}")
        time.sleep(0.05)
    raise RuntimeError(f"task {task_id} not terminal in {seconds:.0f} s")
