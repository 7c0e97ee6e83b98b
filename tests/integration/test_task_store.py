"""TaskStore on DynamoDB (moto, table from template.yaml): the lifecycle's moves as conditional writes,
leases, the outbox, queries and idempotency."""

from __future__ import annotations

import pytest

from i2v import lifecycle
from i2v.dynamo import Table
from i2v.lifecycle import Step, Work
from i2v.models import TERMINAL, Mode, RequestProblem, Status, Task, VideoRequest
from i2v.providers.base import ProviderState
from i2v.records import Records
from i2v.store import Claim, Idempotency, IdempotencyConflict, TaskStore, new_task_id
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
    return TaskStore(Table(aws.refs["Table"]), clock=clock)


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


def at(store: TaskStore, clock: Clock, status: Status) -> Task:
    """A stored task in `status` (a terminal one reached the way the lifecycle allows)."""
    start = {Status.SUCCEEDED: Status.SUBMITTED}.get(status, Status.ACCEPTED if status.terminal else status)
    task, _ = store.create(make_task(clock, status=start))
    if status is Status.SUCCEEDED:
        claim = store.claim(task.id, Work.INGEST, 60)
        assert claim is not None
        assert store.transition(task.id, Status.SUCCEEDED, holding=claim) is not None
    elif status.terminal:
        assert store.transition(task.id, status) is not None
    return task


MOVES = [(frm, to) for frm in Status for to in Status if to is not Status.ACCEPTED]


@pytest.mark.parametrize(("frm", "to"), MOVES, ids=[f"{a.value}->{b.value}" for a, b in MOVES])
def test_every_move_in_the_table_succeeds_and_every_other_is_refused(
    store: TaskStore, clock: Clock, frm: Status, to: Status
) -> None:
    task = at(store, clock, frm)
    holding = None
    if to is Status.SUCCEEDED and frm in (Status.SUBMITTED, Status.PROCESSING):
        holding = store.claim(task.id, Work.INGEST, 60)
    elif to is Status.SUCCEEDED:  # no ingest can hold a lease on a task that is not at a provider
        assert store.claim(task.id, Work.INGEST, 60, {Status.SUBMITTED, Status.PROCESSING}) is None
        holding = Claim(task.id, Work.INGEST, "nobody", 0)
    moved = store.transition(task.id, to, holding=holding)
    stored = store.get(task.id)
    assert stored is not None
    if lifecycle.allowed(frm, to):
        assert moved is not None
        assert stored.status is to
    else:
        assert moved is None
        assert stored.status is frm


def test_the_table_has_no_backward_move_and_no_way_out_of_an_end() -> None:
    order = list(Status)[:3]  # accepted, submitted, processing
    for frm, to in MOVES:
        if lifecycle.allowed(frm, to):
            assert frm in order
            assert to.terminal or order.index(to) > order.index(frm)
    assert lifecycle.reported(Status.PROCESSING, ProviderState.QUEUED) is None
    assert lifecycle.reported(Status.SUBMITTED, ProviderState.PROCESSING) is Status.PROCESSING


def test_nothing_moves_a_task_back_to_accepted(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    with pytest.raises(ValueError, match="nothing moves to accepted"):
        store.transition(task.id, Status.ACCEPTED)


def test_terminal_state_never_changes_nor_its_fields(store: TaskStore, clock: Clock) -> None:
    task = at(store, clock, Status.FAILED)
    assert store.update(task.id, progress=5) is None
    stored = store.get(task.id)
    assert stored is not None
    assert stored.status is Status.FAILED
    assert stored.progress == 0


def test_first_terminal_write_wins(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    first = store.transition(task.id, Status.CANCELLED)
    second = store.transition(task.id, Status.FAILED)
    assert first is not None
    assert first.status is Status.CANCELLED
    assert second is None


def test_while_an_ingest_holds_its_lease_only_it_can_end_the_task(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    ingest = store.claim(task.id, Work.INGEST, 60)
    assert ingest is not None
    assert store.transition(task.id, Status.CANCELLED) is None
    assert store.transition(task.id, Status.TIMED_OUT) is None
    impostor = Claim(task.id, Work.INGEST, "someone-else", ingest.until)
    assert store.transition(task.id, Status.SUCCEEDED, holding=impostor) is None
    done = store.transition(task.id, Status.SUCCEEDED, holding=ingest)
    assert done is not None
    assert done.status is Status.SUCCEEDED


def test_a_lapsed_ingest_lease_no_longer_blocks_a_cancel(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    ingest = store.claim(task.id, Work.INGEST, 60)
    clock.now += 61
    cancelled = store.transition(task.id, Status.CANCELLED)
    assert cancelled is not None
    assert cancelled.ingest_started  # its end checks for a stray output
    assert ingest is not None
    assert store.transition(task.id, Status.SUCCEEDED, holding=ingest) is None


def test_a_terminal_write_records_its_outbox_and_stays_due_until_it_is_done(
    store: TaskStore, clock: Clock
) -> None:
    task, _ = store.create(make_task(clock, next_poll_in=600))
    ended = store.transition(task.id, Status.CANCELLED)
    assert ended is not None
    assert ended.outbox == [s.value for s in lifecycle.steps_after(Status.CANCELLED)]
    assert set(store.due()) == {task.id}
    claim = store.claim(task.id, Work.FINISH, 60, TERMINAL)
    assert claim is not None
    assert store.claim(task.id, Work.FINISH, 60, TERMINAL) is None  # one finisher at a time
    assert store.finished_step(claim, [Step.NOTIFY]) is not None
    assert set(store.due()) == {task.id}
    assert store.finished_step(claim, []) is not None
    assert set(store.due()) == set()
    item = store.table.get(f"TASK#{task.id}")
    assert item is not None
    assert {"due_pk", "next_poll_at", "outbox"}.isdisjoint(item)
    assert item["finished_at"] == int(clock())


def test_a_due_claim_gives_each_sweep_a_different_share(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock, next_poll_in=-1))
    first = store.claim(task.id, Work.POLL, 150, due=True)
    assert first is not None
    assert store.claim(task.id, Work.POLL, 150, due=True) is None
    assert task.id not in set(store.due())
    assert store.release(first) is not None
    assert store.release(first) is None  # not ours any more


def test_a_write_that_schedules_the_next_turn_gives_the_poll_lease_back(
    store: TaskStore, clock: Clock
) -> None:
    task, _ = store.create(make_task(clock, next_poll_in=-1))
    assert store.claim(task.id, Work.POLL, 150, due=True) is not None
    assert store.update(task.id, next_poll_at=int(clock.now) - 1) is not None  # the turn's result: due now
    assert store.claim(task.id, Work.POLL, 150, due=True) is not None  # free at once, with no release


def test_a_live_poll_lease_keeps_a_due_task_from_a_second_turn(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock, next_poll_in=-1))
    assert store.claim(task.id, Work.POLL, 150, due=True) is not None
    store.table.resource.update_item(  # due again while the lease lives (as a raw write, not a turn's)
        Key={"pk": f"TASK#{task.id}"},
        UpdateExpression="SET next_poll_at = :p",
        ExpressionAttributeValues={":p": int(clock.now) - 1},
    )
    assert store.claim(task.id, Work.POLL, 150, due=True) is None


def test_due_query_returns_only_in_flight_tasks_whose_time_has_come(store: TaskStore, clock: Clock) -> None:
    due, _ = store.create(make_task(clock, next_poll_in=-5))
    later, _ = store.create(make_task(clock, next_poll_in=600))
    finished, _ = store.create(make_task(clock, next_poll_in=-5))
    ended = store.transition(finished.id, Status.FAILED)
    assert ended is not None
    store.update(finished.id, TERMINAL, outbox=[])  # its after-end steps are done
    store.table.resource.update_item(
        Key={"pk": f"TASK#{finished.id}"}, UpdateExpression="REMOVE due_pk, due_sk"
    )
    assert set(store.due()) == {due.id}
    clock.now += 601
    assert set(store.due()) == {due.id, later.id}


def test_every_in_flight_task_has_a_deadline_and_ttl(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    item = store.table.get(f"TASK#{task.id}")
    assert item is not None
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
    first, created = store.create(make_task(clock), Idempotency.client("acme", "key-1", "hash-a"))
    again, created_again = store.create(make_task(clock), Idempotency.client("acme", "key-1", "hash-a"))
    assert created
    assert not created_again
    assert again.id == first.id


def test_same_idempotency_key_with_another_body_conflicts(store: TaskStore, clock: Clock) -> None:
    store.create(make_task(clock), Idempotency.client("acme", "key-1", "hash-a"))
    with pytest.raises(IdempotencyConflict):
        store.create(make_task(clock), Idempotency.client("acme", "key-1", "hash-b"))


def test_ingest_claim_is_taken_once_until_its_lease_ends(store: TaskStore, clock: Clock) -> None:
    task, _ = store.create(make_task(clock))
    assert store.claim(task.id, Work.INGEST, 60)
    assert not store.claim(task.id, Work.INGEST, 60)
    clock.now += 61
    assert store.claim(task.id, Work.INGEST, 60)


def test_api_keys_are_stored_hashed(store: TaskStore) -> None:
    records = Records(store.table)
    records.put_api_key("secret-key-value", "acme")
    assert records.tenant_for_key("secret-key-value") == "acme"
    assert records.tenant_for_key("other") is None
    items = store.table.resource.scan()["Items"]
    assert all("secret-key-value" not in str(item) for item in items)
