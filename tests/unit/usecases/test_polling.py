"""The poller's tick against the in-memory world: every safety net runs, each on its own; due tasks are
checked with as few provider calls as possible; running tasks keep to the poll grid; the tick ends at
its budget (virtual time: ManualClock.sleep advances it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from inbetween.domain.models import (
    DueKind,
    EarlyEvent,
    ErrorInfo,
    InputObject,
    Job,
    JobSpec,
    JobStatus,
    Transition,
    WebhookDelivery,
)
from inbetween.errors import ProviderUnavailable
from inbetween.provider.models import TaskState, TaskStatus
from inbetween.usecases import admission, polling
from inbetween.usecases.check_schedule import on_poll_grid
from inbetween.usecases.webhook_delivery import HANDOFF_LEASE_S
from inbetween_local.memory import MemoryWorld, memory_world
from inbetween_local.memory import test_settings as settings_for

MODEL = "wan2.2-kf2v-flash"


# ---------------------------------------------------------------------------------------------- givens
def world_of(**settings: Any) -> MemoryWorld:
    return memory_world(settings_for(**{"provider_concurrency": 5, **settings}))


def a_job(world: MemoryWorld, name: str, status: JobStatus = JobStatus.WAITING, **fields: Any) -> Job:
    now = world.clock.now()
    inputs = {
        role: InputObject(f"inbox/{name}/{role}.png", f"etag-{role}", 1000) for role in ("first", "last")
    }
    spec = JobSpec(model=MODEL, resolution="720P", prompt="a slow zoom")
    return Job(
        f"{name}/run1", name, "run1", status, spec, inputs, now, now, expected_size=(1280, 720), **fields
    )


def waiting(world: MemoryWorld, name: str, *, due_at: float | None = None) -> Job:
    job = a_job(world, name)
    assert world.store.add_job(job, due=(DueKind.ADMIT, job.created_at if due_at is None else due_at))
    return job


def submitted(world: MemoryWorld, *names: str) -> list[Job]:
    """Jobs submitted the way admission submits them (slot taken, task recorded, first check scheduled)."""
    for name in names:
        waiting(world, name)
        world.clock.advance(1)
    # start just after a grid instant: the tasks' first checks then fall on one grid instant together
    interval = world.deps.settings.poll_interval_s
    world.clock.advance(on_poll_grid(world.clock.now(), interval) + 1 - world.clock.now())
    assert admission.admit(world.deps, MODEL) == len(names)
    jobs = [world.store.get_job(f"{name}/run1") for name in names]
    assert all(j is not None and j.status is JobStatus.SUBMITTED for j in jobs)
    return jobs  # type: ignore[return-value]


def until_poll_due(world: MemoryWorld) -> float:
    """Advance the clock to the first due task check; returns that instant."""
    at = world.store.next_due_at(DueKind.POLL)
    assert at is not None
    world.clock.advance(at - world.clock.now())
    return at


def succeeded(task_id: str) -> TaskState:
    return TaskState(
        task_id=task_id, status=TaskStatus.SUCCEEDED, video_url=f"https://videos.test/{task_id}.mp4"
    )


class ProviderSpy:
    """Wraps the scripted provider to run a hook before a call (slow calls, a task finishing meanwhile)."""

    def __init__(self, inner: Any, **hooks: Callable[..., None]) -> None:
        self._inner = inner
        self._hooks = hooks

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        hook = self._hooks.get(name)
        if hook is None:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            hook(*args, **kwargs)
            return attr(*args, **kwargs)

        return call


class FailingStore:
    """The store, with one method (for one due kind, if given) failing as an unreachable table would."""

    def __init__(self, inner: Any, method: str, kind: DueKind | None = None) -> None:
        self._inner = inner
        self._method = method
        self._kind = kind
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._kind is None or (args and args[0] is self._kind):
                self.failures += 1
                raise ConnectionError("the table is unreachable (injected)")
            return attr(*args, **kwargs)

        return call


# ---------------------------------------------------------------------------------------------- the safety nets
def one_item_for_every_safety_net(world: MemoryWorld) -> dict[str, Callable[[], bool]]:
    """One due item for each step of the tick; returns, per step, whether that step did its work."""
    store, now = world.store, world.clock.now()
    settings = world.deps.settings
    # reconcile: a submitter died holding a job in SUBMITTING; its lease ran out and no task was created
    crashed = waiting(world, "crashed")
    assert store.apply(
        Transition.of(crashed.job_id, JobStatus.WAITING, JobStatus.SUBMITTING)
        .set(submit_started_at=now - 200, lease_holder="dead-worker")
        .schedule(DueKind.LEASE, now - 1)
        .take_slot(MODEL, settings.concurrency_for(MODEL))
    )
    # settle: a folder with only its first frame, past the incomplete-drop timeout
    world.blobs.put(settings.inbox_bucket, "inbox/half/first.png", b"not even a png")
    assert store.note_incomplete_drop("half", first_seen=now - 1000, settle_by=now - 1)
    # notify: a failed job whose notification was never confirmed
    error = ErrorInfo(code="TaskFailed", message="the provider gave no reason")
    failed = a_job(world, "failed", JobStatus.FAILED, error=error, finished_at=now - 200)
    assert store.add_job(failed, due=(DueKind.NOTIFY, now - 1))
    # complete: a completion that never finished
    stalled = a_job(world, "stalled", JobStatus.COMPLETING, task_id="t-stalled", video_url="https://v.test/x")
    assert store.add_job(stalled, due=(DueKind.COMPLETE, now - 1))
    # webhook: a retry that is due
    assert store.add_webhook_delivery(
        WebhookDelivery(
            "msg_due", "failed/run1", "https://hooks.test/x", "{}", now - 10, next_attempt_at=now - 1
        )
    )
    # admit: a job waiting for a slot
    queued = waiting(world, "queued", due_at=now - 5)
    # early events: an old hint for a task that never became ours
    assert store.note_early_event(EarlyEvent("foreign-task", now - 1000, now - 1, now + 800))

    def status(job: Job) -> JobStatus:
        found = store.get_job(job.job_id)
        assert found is not None
        return found.status

    return {
        "reconcile": lambda: status(crashed) is not JobStatus.SUBMITTING,
        "settle": lambda: (
            [j.status for j in store.recent_jobs() if j.job_name == "half"] == [JobStatus.REJECTED]
            and not store.drops
        ),
        "notify": lambda: (
            store.get_job(failed.job_id).notified_at is not None  # type: ignore[union-attr]
            and [n.job_name for n in world.notifier.published].count("failed") == 1
        ),
        "complete": lambda: world.queues.completions == [stalled.job_id],
        "webhook": lambda: world.queues.webhooks == ["msg_due"],
        "admit": lambda: status(queued) is JobStatus.SUBMITTED,
        "early-events": lambda: not store.early,
    }


# (step, the store method it starts with, for which due kind)
STEPS = [
    ("reconcile", "due_jobs", DueKind.LEASE),
    ("settle", "overdue_drops", None),
    ("notify", "due_jobs", DueKind.NOTIFY),
    ("complete", "due_jobs", DueKind.COMPLETE),
    ("webhook", "due_webhook_deliveries", None),
    ("admit", "due_jobs", DueKind.ADMIT),
    ("early-events", "due_early_events", None),
]


def test_a_tick_runs_every_safety_net():
    # Given one due item for every safety net, with provider push on
    world = world_of(push_enabled=True)
    done = one_item_for_every_safety_net(world)
    # When the poller ticks
    report = polling.tick(world.deps, budget_s=0)
    # Then every net did its work
    assert {step: check() for step, check in done.items()} == dict.fromkeys(done, True)
    assert report.reconciled == 1
    assert report.handed_over == 2  # the stalled completion and the webhook retry
    assert report.admitted == 2  # the queued job, and the crashed one put back in line by reconciliation


def test_without_push_early_event_hints_are_left_alone():
    world = world_of(push_enabled=False)
    done = one_item_for_every_safety_net(world)
    polling.tick(world.deps, budget_s=0)
    assert not done["early-events"]()
    assert all(check() for step, check in done.items() if step != "early-events")


@pytest.mark.parametrize(("failing", "method", "kind"), STEPS, ids=[s[0] for s in STEPS])
def test_one_failing_safety_net_does_not_stop_the_others(failing, method, kind):
    # Given one due item for every safety net, and the table failing the first read of one of them
    world = world_of(push_enabled=True)
    done = one_item_for_every_safety_net(world)
    store = FailingStore(world.store, method, kind)
    deps = replace(world.deps, store=store)
    # When the poller ticks
    polling.tick(deps, budget_s=0)
    # Then that net did nothing this time, and every other net did its work
    assert store.failures >= 1
    assert {step: check() for step, check in done.items()} == {step: step != failing for step in done}


def test_a_failing_safety_net_does_not_stop_the_task_checks():
    world = world_of()
    (job,) = submitted(world, "shot")
    until_poll_due(world)
    deps = replace(world.deps, store=FailingStore(world.store, "overdue_drops"))
    report = polling.tick(deps, budget_s=0)
    assert report.checked == 1
    assert world.provider.queries == [job.task_id]


# ---------------------------------------------------------------------------------------------- task checks
def test_several_due_tasks_of_a_model_are_answered_by_one_list_call():
    # Given three submitted tasks, still running, due together (they share the poll grid)
    world = world_of()
    jobs = submitted(world, "a", "b", "c")
    until_poll_due(world)
    assert len(world.store.due_jobs(DueKind.POLL, world.clock.now())) == 3
    # When the poller ticks
    report = polling.tick(world.deps, budget_s=0)
    # Then one task-list call answered for all of them, and no task was queried
    assert world.provider.list_calls == 1
    assert world.provider.queries == []
    assert report.checked == 3
    for job in jobs:
        now_job = world.store.get_job(job.job_id)
        assert (now_job.status, now_job.polls, now_job.provider_status) == (JobStatus.SUBMITTED, 1, "PENDING")


def test_tasks_due_together_are_checked_as_one_batch_and_the_ended_ones_first():
    # Given 250 running tasks due at one grid instant (quota 200 and its backlog), the last one ended
    world = world_of(provider_concurrency=250)
    jobs = submitted(world, *(f"shot{i:03}" for i in range(250)))
    last = jobs[-1]
    world.provider.set_state(last.task_id, succeeded(last.task_id))
    world.clock.advance(until_poll_due(world) + 150 - world.clock.now())  # 250 creates at 2 a second
    assert len(world.store.due_jobs(DueKind.POLL, world.clock.now(), limit=1000)) == 250
    recorded_before_its_query: list[int] = []

    def count_recorded(task_id: str) -> None:
        if task_id == last.task_id:
            recorded_before_its_query.append(sum(1 for j in jobs if world.store.get_job(j.job_id).polls))

    spy = ProviderSpy(world.provider, get_task=count_recorded)
    # When the poller ticks
    polling.tick(replace(world.deps, provider=spy), budget_s=0)
    # Then one window's pages answered for all 250, and the ended task was queried before any running
    # one was recorded (its video does not wait for 249 other jobs' bookkeeping)
    assert world.provider.list_calls == 3  # one window: 250 tasks, 100 a page
    assert world.provider.queries == [last.task_id]
    assert recorded_before_its_query == [0]
    assert world.store.get_job(last.job_id).status is JobStatus.COMPLETING
    assert all(world.store.get_job(j.job_id).polls == 1 for j in jobs[:-1])


def test_only_the_tasks_the_list_shows_ended_are_queried():
    world = world_of()
    a, b, c = submitted(world, "a", "b", "c")
    world.provider.set_state(b.task_id, succeeded(b.task_id))
    until_poll_due(world)
    report = polling.tick(world.deps, budget_s=0)
    assert world.provider.list_calls == 1
    assert world.provider.queries == [b.task_id]
    assert report.finished == 1
    assert world.store.get_job(b.job_id).status is JobStatus.COMPLETING
    assert world.queues.completions == [b.job_id]
    assert {world.store.get_job(j.job_id).status for j in (a, c)} == {JobStatus.SUBMITTED}
    assert world.store.slots_in_use(MODEL) == 2


def test_when_the_list_fails_every_due_task_is_queried_one_by_one():
    world = world_of()
    jobs = submitted(world, "a", "b", "c")
    world.provider.list_errors.append(ProviderUnavailable("list is down", status_code=503))
    until_poll_due(world)
    report = polling.tick(world.deps, budget_s=0)
    assert world.provider.list_calls == 1
    assert sorted(world.provider.queries) == sorted(j.task_id for j in jobs)
    assert report.checked == 3
    assert all(world.store.get_job(j.job_id).polls == 1 for j in jobs)


def test_a_task_the_list_does_not_show_is_queried():
    world = world_of()
    a, b = submitted(world, "a", "b")
    del world.provider.created_at[a.task_id]  # the provider's list does not (yet) show it
    until_poll_due(world)
    polling.tick(world.deps, budget_s=0)
    assert world.provider.list_calls == 1
    assert world.provider.queries == [a.task_id]


def test_a_single_due_task_is_queried_without_a_list_call():
    world = world_of()
    (job,) = submitted(world, "solo")
    until_poll_due(world)
    polling.tick(world.deps, budget_s=0)
    assert world.provider.list_calls == 0
    assert world.provider.queries == [job.task_id]


def test_a_failed_query_is_retried_two_intervals_later():
    world = world_of()
    (job,) = submitted(world, "solo")
    at = until_poll_due(world)
    world.provider.get_errors.append(ProviderUnavailable("timeout"))
    polling.tick(world.deps, budget_s=0)
    assert world.store.get_job(job.job_id).status is JobStatus.SUBMITTED
    assert world.store.next_due_at(DueKind.POLL) == at + 2 * world.deps.settings.poll_interval_s


def test_a_running_task_is_checked_next_on_the_grid_counted_from_when_its_check_began():
    # Given three running tasks due at a grid instant, and a task list that takes 10 s to answer
    world = world_of()
    jobs = submitted(world, "a", "b", "c")
    at = until_poll_due(world)
    interval = world.deps.settings.poll_interval_s
    assert at == on_poll_grid(at, interval)
    slow = ProviderSpy(world.provider, list_tasks=lambda **_: world.clock.advance(10))
    # When the poller ticks
    polling.tick(replace(world.deps, provider=slow), budget_s=0)
    # Then each task's next check is the next grid instant after the check began, not after it ended
    assert world.clock.now() >= at + 10
    for job in jobs:
        assert world.store.due[f"job#{job.job_id}"].at == at + interval
    assert world.store.next_due_at(DueKind.POLL) == on_poll_grid(at + interval, interval)


# ---------------------------------------------------------------------------------------------- the budget
def test_a_tick_keeps_checking_what_comes_due_until_its_budget_ends():
    # Given one running task, checked every poll interval
    world = world_of()
    (job,) = submitted(world, "long")
    start = until_poll_due(world)
    interval = world.deps.settings.poll_interval_s
    # When the poller ticks with a 55 s budget
    report = polling.tick(world.deps, budget_s=55)
    # Then it checked at every grid instant within the budget, sleeping (virtually) in between, and
    # stopped before the first check beyond it
    checks = [start + n * interval for n in range(5) if start + n * interval <= start + 55]
    assert report.checked == len(checks) == 5
    assert world.provider.queries == [job.task_id] * 5
    assert world.clock.now() == checks[-1] <= start + 55
    assert world.store.next_due_at(DueKind.POLL) > start + 55
    assert world.clock.slept[-4:] == [interval] * 4


def test_a_task_that_ends_during_the_tick_is_noticed_at_its_next_check_and_the_tick_ends():
    world = world_of()
    (job,) = submitted(world, "quick")
    start = until_poll_due(world)

    def finishes_after_30_s(task_id: str) -> None:
        if world.clock.now() >= start + 30:
            world.provider.set_state(task_id, succeeded(task_id))

    spy = ProviderSpy(world.provider, get_task=finishes_after_30_s)
    report = polling.tick(replace(world.deps, provider=spy), budget_s=55)
    assert report.finished == 1
    assert world.store.get_job(job.job_id).status is JobStatus.COMPLETING
    assert world.clock.now() == start + 36  # the first grid instant after it ended; nothing due after
    assert world.store.next_due_at(DueKind.POLL) is None


def test_a_tick_with_nothing_due_returns_at_once():
    world = world_of()
    before = world.clock.now()
    report = polling.tick(world.deps)
    assert report == polling.PollReport()
    assert world.clock.now() == before


def test_rehanded_completions_and_webhooks_are_postponed_so_the_next_tick_does_not_hand_them_again():
    world = world_of()
    now = world.clock.now()
    stalled = a_job(world, "stalled", JobStatus.COMPLETING, task_id="t", video_url="https://v.test/x")
    world.store.add_job(stalled, due=(DueKind.COMPLETE, now - 1))
    world.store.add_webhook_delivery(
        WebhookDelivery("msg_1", stalled.job_id, "https://hooks.test/x", "{}", now, next_attempt_at=now - 1)
    )
    polling.tick(world.deps, budget_s=0)
    polling.tick(world.deps, budget_s=0)
    assert world.queues.completions == [stalled.job_id]
    assert world.queues.webhooks == ["msg_1"]
    assert world.store.due[f"job#{stalled.job_id}"].at == now + world.deps.timing.completion_grace_s
    assert world.store.get_webhook_delivery("msg_1").next_attempt_at == now + HANDOFF_LEASE_S


def test_due_items_of_jobs_that_moved_on_are_cleared_not_acted_on():
    world = world_of()
    now = world.clock.now()
    # a notify item on a job already notified, and a complete item on a job that is final already
    notified = a_job(world, "notified", JobStatus.STORED, notified_at=now - 5, finished_at=now - 10)
    done = a_job(world, "done", JobStatus.FAILED, finished_at=now - 10, notified_at=now - 5)
    world.store.add_job(notified, due=(DueKind.NOTIFY, now - 1))
    world.store.add_job(done, due=(DueKind.COMPLETE, now - 1))
    polling.tick(world.deps, budget_s=0)
    assert world.notifier.published == []
    assert world.queues.completions == []
    assert world.store.due == {}


def test_a_task_list_longer_than_worth_reading_is_read_in_part_and_the_rest_queried():
    # Given two due tasks of ours behind more foreign tasks of the model than three list pages hold
    world = world_of()
    for _ in range(3 * polling.LIST_PAGE_SIZE):
        world.provider.foreign_task(MODEL)
    jobs = submitted(world, "a", "b")
    until_poll_due(world)
    # When the poller ticks
    polling.tick(world.deps, budget_s=0)
    # Then it stopped listing once the pages left (three) cost more than querying its own tasks (two)
    assert world.provider.list_calls == 1
    assert sorted(world.provider.queries) == sorted(j.task_id for j in jobs)


def test_a_task_list_that_breaks_unexpectedly_falls_back_to_queries():
    world = world_of()
    jobs = submitted(world, "a", "b")
    world.provider.list_errors.append(ValueError("task list 'data' is not a list of objects"))
    until_poll_due(world)
    report = polling.tick(world.deps, budget_s=0)
    assert sorted(world.provider.queries) == sorted(j.task_id for j in jobs)
    assert report.checked == 2


def test_a_check_that_breaks_unexpectedly_is_retried_two_intervals_later():
    world = world_of()
    (job,) = submitted(world, "solo")
    at = until_poll_due(world)
    world.provider.get_errors.append(RuntimeError("a bug"))
    polling.tick(world.deps, budget_s=0)
    after = world.store.get_job(job.job_id)
    assert (after.status, after.polls) == (JobStatus.SUBMITTED, 0)
    assert world.store.next_due_at(DueKind.POLL) == at + 2 * world.deps.settings.poll_interval_s


def test_running_tasks_whose_record_fails_are_checked_later_and_the_tick_ends():
    # Given two running tasks due together, and a table that refuses every write
    world = world_of()
    jobs = submitted(world, "a", "b")
    at = until_poll_due(world)
    deps = replace(world.deps, store=FailingStore(world.store, "apply"))
    # When the poller ticks with a 55 s budget
    report = polling.tick(deps, budget_s=55)
    # Then each round's checks are retried two intervals later, and the tick ends at its budget
    retry = 2 * world.deps.settings.poll_interval_s
    assert report.checked == 2 * 3  # at, at + 24, at + 48
    assert world.provider.list_calls == 3
    assert world.clock.now() == at + 2 * retry
    for job in jobs:
        assert world.store.due[f"job#{job.job_id}"].at == at + 3 * retry
        assert world.store.get_job(job.job_id).polls == 0


def test_a_job_moved_on_during_the_list_call_is_left_as_it_is():
    # Given two running tasks, and a push event that hands one of them to completion while the poller
    # is reading the task list
    world = world_of()
    a, b = submitted(world, "a", "b")
    at = until_poll_due(world)

    def push_event_meanwhile(**_: Any) -> None:
        if world.store.get_job(a.job_id).status is JobStatus.SUBMITTED:
            assert world.store.apply(
                Transition.of(a.job_id, JobStatus.SUBMITTED, JobStatus.COMPLETING)
                .schedule(DueKind.COMPLETE, at + 900)
                .release_slot(MODEL)
            )

    spy = ProviderSpy(world.provider, list_tasks=push_event_meanwhile)
    polling.tick(replace(world.deps, provider=spy), budget_s=0)
    # Then the moved job keeps its new state and due item; the other was recorded as running
    moved = world.store.get_job(a.job_id)
    assert (moved.status, moved.polls) == (JobStatus.COMPLETING, 0)
    assert world.store.due[f"job#{a.job_id}"].key == DueKind.COMPLETE.key()
    assert world.store.due[f"job#{a.job_id}"].at == at + 900
    assert world.store.get_job(b.job_id).polls == 1
