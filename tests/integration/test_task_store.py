"""TaskStore on DynamoDB (moto, table from template.yaml): conditional transitions, queries, idempotency."""

from __future__ import annotations

import pytest

from i2v.models import IN_FLIGHT, TERMINAL, Mode, RequestProblem, Status, Task, VideoRequest
from i2v.store import IdempotencyConflict, TaskStore, new_task_id
from i2v_local.aws import LocalResources


class Clock:
    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(aws: LocalResources, clock: Clock) -> TaskStore:
    return TaskStore(aws.refs["Table"], clock=clock)


def make_task(clock: Clock, tenant: str = "acme", next_poll_in: int = 15, **changes: object) -> Task:
    now = int(clock())
    fields: dict[str, object] = {
        "id": new_task_id(clock.now),
        "tenant": tenant,
        "status": Status.SUBMITTED,
        "request": VideoRequest(image_url="https://media.example/a.png"),
        "mode": Mode.FIRST_FRAME,
        "created_at": now,
        "updated_at": now,
        "deadline_at": now + 3600,
        "next_poll_at": now + next_poll_in,
        **changes,
    }
    return Task.model_validate(fields)


def test_terminal_state_never_changes(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    assert store.transition(task.id, Status.SUCCEEDED, expect=IN_FLIGHT) is not None
    for other in TERMINAL | IN_FLIGHT:
        assert store.transition(task.id, other, expect=IN_FLIGHT) is None
    assert store.update(task.id, progress=5) is None
    stored = store.get(task.id)
    assert stored is not None
    assert stored.status is Status.SUCCEEDED


def test_first_terminal_write_wins(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    first = store.transition(task.id, Status.CANCELLED, expect=IN_FLIGHT)
    second = store.transition(task.id, Status.SUCCEEDED, expect=IN_FLIGHT)
    assert first is not None
    assert first.status is Status.CANCELLED
    assert second is None


def test_transition_from_a_terminal_expectation_is_refused(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    with pytest.raises(ValueError, match="terminal"):
        store.transition(task.id, Status.FAILED, expect=[Status.SUCCEEDED])


def test_due_query_returns_only_in_flight_tasks_whose_time_has_come(store: TaskStore, clock: Clock) -> None:
    due, _ = store.create(make_task(clock, next_poll_in=-5))
    later, _ = store.create(make_task(clock, next_poll_in=600))
    finished, _ = store.create(make_task(clock, next_poll_in=-5))
    store.transition(finished.id, Status.FAILED, expect=IN_FLIGHT)
    assert set(store.due()) == {due.id}
    clock.now += 601
    assert set(store.due()) == {due.id, later.id}


def test_terminal_task_leaves_the_due_index(store: TaskStore, clock: Clock, aws: LocalResources) -> None:
    task, _ = store.create(make_task(clock))
    store.transition(task.id, Status.TIMED_OUT, expect=IN_FLIGHT)
    item = store.table.get_item(Key={"pk": f"TASK#{task.id}"})["Item"]
    assert "due_pk" not in item
    assert "next_poll_at" not in item
    assert item["finished_at"] == int(clock())


def test_every_in_flight_task_has_a_deadline_and_ttl(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    item = store.table.get_item(Key={"pk": f"TASK#{task.id}"})["Item"]
    assert item["deadline_at"] == int(clock()) + 3600
    assert item["expires_at"] > item["deadline_at"]
    assert item["due_pk"].startswith("DUE#")


def test_listing_is_per_tenant_newest_first_with_a_cursor(store: TaskStore, clock: Clock) -> None:
    ids = []
    for _ in range(5):
        clock.now += 1
        ids.append(store.create(make_task(clock))[0].id)
    store.create(make_task(clock, tenant="other"))
    first, cursor = store.list_for_tenant("acme", 3, None)
    assert [t.id for t in first] == ids[::-1][:3]
    assert cursor is not None
    rest, _ = store.list_for_tenant("acme", 3, cursor)
    assert [t.id for t in rest] == ids[::-1][3:]


def test_a_cursor_cannot_reach_another_tenants_listing(store: TaskStore, clock: Clock) -> None:
    for _ in range(3):
        store.create(make_task(clock, tenant="victim"))
    _, cursor = store.list_for_tenant("victim", 1, None)
    assert cursor is not None
    with pytest.raises(RequestProblem) as caught:
        store.list_for_tenant("attacker", 10, cursor)
    assert caught.value.errors[0].field == "cursor"
    with pytest.raises(RequestProblem):
        store.list_for_tenant("attacker", 10, "not-base64-json")


def test_same_idempotency_key_and_body_returns_the_first_task(store: TaskStore, clock: Clock) -> None:
    first, created = store.create(make_task(clock), ("key-1", "hash-a"))
    again, created_again = store.create(make_task(clock), ("key-1", "hash-a"))
    assert created
    assert not created_again
    assert again.id == first.id


def test_same_idempotency_key_with_another_body_conflicts(store: TaskStore, clock: Clock) -> None:
    store.create(make_task(clock), ("key-1", "hash-a"))
    with pytest.raises(IdempotencyConflict):
        store.create(make_task(clock), ("key-1", "hash-b"))


def test_ingest_claim_is_taken_once_until_its_lease_ends(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    assert store.claim_ingest(task.id, 60)
    assert not store.claim_ingest(task.id, 60)
    clock.now += 61
    assert store.claim_ingest(task.id, 60)


def test_api_keys_are_stored_hashed(store: TaskStore) -> None:
    store.put_api_key("secret-key-value", "acme")
    assert store.tenant_for_key("secret-key-value") == "acme"
    assert store.tenant_for_key("other") is None
    items = store.table.scan()["Items"]
    assert all("secret-key-value" not in str(item) for item in items)
