"""bench/virtual.py and bench/backlog.py (issue #14): the virtual clock runs events in order, the queued
provider models wan2.7-i2v's queue and limits, a small scenario is deterministic and keeps its invariants,
and a broken invariant becomes a FAIL figure."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import inbetween.observability  # noqa: F401 - the pipeline's logger made first, at the session's level
import pytest
from inbetween.domain.models import JobSpec
from inbetween.errors import ProviderThrottled
from inbetween.provider.models import CreateTaskRequest, TaskStatus

# bench/__init__ quiets Powertools through the environment (log level ERROR...): that must not reach the
# other tests of the session (they read warnings with caplog), so the pipeline's logger exists before it
# runs, and what it adds to the environment is taken back at once
_ENV_BEFORE = dict(os.environ)
from bench import backlog  # noqa: E402
from bench.virtual import QueuedProvider, Scenario, VirtualClock, run_scenario  # noqa: E402

for _name in set(os.environ) - set(_ENV_BEFORE):
    del os.environ[_name]

MODEL = "wan2.7-i2v"
T0 = 1_800_000_000.0


def request() -> CreateTaskRequest:
    spec = JobSpec(model=MODEL, resolution="720P", prompt="p", duration=5)
    return CreateTaskRequest.for_spec(spec, region="cn-beijing", media={"first": "https://in.test/f.png"})


def fixed(seconds: float):
    return lambda rng: seconds


def in_process(clock: VirtualClock, fn, at: float | None = None) -> list:
    """Run ``fn`` as a process of ``clock`` (so its sleeps yield) and return what it returned."""
    out: list = []
    clock.at(clock.now() if at is None else at, lambda: out.append(fn()))
    clock.run_until_idle()
    return out


# ---------------------------------------------------------------------------------------------- the clock
def test_sleep_runs_the_events_due_before_the_wake_up_in_time_then_sequence_order():
    clock = VirtualClock(T0)
    seen: list[tuple[str, float]] = []
    for name, at in (("c", 3.0), ("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("late", 5.0)):
        clock.at(T0 + at, lambda name=name: seen.append((name, clock.now() - T0)), name)
    clock.sleep(4.0)  # on the driver's thread: run_until(now + 4)
    assert seen == [("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("c", 3.0)]
    assert clock.now() == T0 + 4.0
    clock.run_until_idle()
    assert seen[-1] == ("late", 5.0)


def test_a_process_sleeps_while_others_run_and_resumes_exactly_at_its_wake_up():
    clock = VirtualClock(T0)
    log: list[tuple[str, float]] = []

    def note(what: str) -> None:
        log.append((what, round(clock.now() - T0, 6)))

    def short() -> None:  # a create's round trip
        note("short starts")
        clock.sleep(0.2)
        note("short resumes")

    def long() -> None:  # a poller tick waiting for its next due check
        note("long starts")
        clock.sleep(55.0)
        note("long resumes")

    def nested() -> None:  # an event that sleeps, during another's sleep
        note("nested starts")
        clock.sleep(1.0)
        note("nested resumes")

    clock.at(T0 + 1.0, short)
    clock.at(T0 + 1.1, long)  # starts while short sleeps, sleeps far past short's wake-up
    clock.at(T0 + 2.0, nested)
    clock.run_until_idle()
    assert log == [
        ("short starts", 1.0),
        ("long starts", 1.1),
        ("short resumes", 1.2),  # not frozen until the long sleeper wakes
        ("nested starts", 2.0),
        ("nested resumes", 3.0),
        ("long resumes", 56.1),
    ]
    assert clock.events_run == 3 and clock.late_max_s == 0.0


def test_each_event_runs_once_and_an_events_exception_is_recorded_not_raised():
    clock = VirtualClock(T0)
    runs: list[str] = []
    clock.at(T0 + 1, lambda: runs.append("once"))

    def boom() -> None:
        raise ValueError("broken handler")

    clock.at(T0 + 2, boom, "boom")
    clock.at(T0 + 3, lambda: clock.sleep(10))  # a sleeper left behind at the end
    clock.run_until(T0 + 5)
    clock.run_until(T0 + 6)
    assert runs == ["once"]
    assert [(at - T0, name) for at, name, _ in clock.errors] == [(2.0, "boom")]
    assert "broken handler" in clock.errors[0][2]
    clock.close()  # the sleeper unwinds; nothing is left running
    assert clock.next_at() is None


def test_a_worker_thread_of_a_process_sleeps_for_it():
    """The poller's ThreadPoolExecutor (poll_concurrency 1): its worker's sleeps are the tick's."""
    clock = VirtualClock(T0)
    log: list[tuple[str, float]] = []
    clock.at(T0 + 0.5, lambda: log.append(("event", clock.now() - T0)))

    def work(n: int) -> int:
        clock.sleep(1.0)
        log.append((f"item {n}", clock.now() - T0))
        return n

    def tick() -> list[int]:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return list(pool.map(work, (1, 2)))

    assert in_process(clock, tick, at=T0) == [[1, 2]]
    assert log == [("event", 0.5), ("item 1", 1.0), ("item 2", 2.0)]


# ---------------------------------------------------------------------------------------------- the provider
def test_the_sixth_task_on_five_slots_waits_pending_and_starts_exactly_when_the_first_ends():
    clock = VirtualClock(T0)
    durations = iter([100.0, 200.0, 150.0, 120.0, 180.0, 60.0])
    provider = QueuedProvider(clock, generation=lambda rng: next(durations), concurrency=5, queue=500)
    refs = in_process(clock, lambda: [provider.create_task(request()) for _ in range(6)])[0]
    tasks = [provider.tasks[r.task_id] for r in refs]
    first, sixth = tasks[0], tasks[5]
    assert all(t.start == t.created for t in tasks[:5])
    assert sixth.start == first.end and sixth.slot_free_at == first.end
    assert sixth.end == first.end + 60.0
    assert provider.state_of(sixth.task_id, first.end - 0.001).status is TaskStatus.PENDING
    assert provider.state_of(first.task_id, first.end - 0.001).status is TaskStatus.RUNNING
    assert provider.state_of(sixth.task_id, first.end).status is TaskStatus.RUNNING
    done = provider.state_of(first.task_id, first.end)
    assert done.status is TaskStatus.SUCCEEDED and done.video_url and done.usage.billed_seconds == 5
    assert provider.state_of("task-nope", first.end).status is TaskStatus.UNKNOWN


def test_a_create_beyond_concurrency_plus_queue_in_flight_is_throttled():
    clock = VirtualClock(T0)
    provider = QueuedProvider(clock, generation=fixed(100.0), concurrency=2, queue=1, submit_per_s=50)

    def creates() -> list[str]:
        out = []
        for _ in range(4):
            try:
                provider.create_task(request())
                out.append("ok")
            except ProviderThrottled as exc:
                out.append(exc.code or "")
        clock.sleep(100.0)  # the first two end: two places free
        out.append("ok" if provider.create_task(request()) else "")
        return out

    assert in_process(clock, creates) == [["ok", "ok", "ok", "Throttling.AllocationQuota", "ok"]]
    assert provider.throttled == {"Throttling.AllocationQuota": 1} and provider.creates == 4


def test_more_creates_than_the_rate_in_a_sliding_second_are_throttled():
    clock = VirtualClock(T0)
    provider = QueuedProvider(clock, generation=fixed(100.0), submit_per_s=2.0)
    provider.latency = replace(provider.latency, create_s=(0.0, 0.0))

    def creates() -> list[str]:
        out = []
        # at 0, 0.4, 0.8 (a 3rd in a second: refused, not counted), 1.1 (0 has left), 1.3 (0.4, 1.1 in it)
        for gap in (0.0, 0.4, 0.4, 0.3, 0.2):
            clock.sleep(gap)
            try:
                provider.create_task(request())
                out.append("ok")
            except ProviderThrottled as exc:
                out.append(exc.code or "")
        return out

    assert in_process(clock, creates) == [["ok", "ok", "Throttling.RateQuota", "ok", "Throttling.RateQuota"]]
    assert provider.throttled == {"Throttling.RateQuota": 2}


def test_generation_times_follow_the_seed_not_the_latency_draws():
    def durations(seed: int, create_s: tuple[float, float]) -> list[float]:
        clock = VirtualClock(T0)
        provider = QueuedProvider(clock, seed=seed, generation=lambda rng: rng.uniform(60, 300))
        provider.latency = replace(provider.latency, create_s=create_s)
        in_process(clock, lambda: [provider.create_task(request()) for _ in range(3)])
        return [t.end - t.start for t in provider.tasks.values()]

    rng = random.Random("7/generation")
    expected = [rng.uniform(60, 300) for _ in range(3)]
    assert durations(7, (0.25, 0.55)) == pytest.approx(expected, abs=1e-6)
    assert durations(7, (0.1, 0.9)) == pytest.approx(expected, abs=1e-6)
    assert durations(8, (0.25, 0.55)) != pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------------------------------------- scenarios
SMALL = Scenario(jobs=12, seed=3, backlog=1)


@pytest.mark.parametrize("push", [False, True])
def test_a_small_scenario_keeps_its_invariants_and_uses_the_backlog(push):
    run = run_scenario(replace(SMALL, push=push))
    assert backlog.invariants(run) == []
    assert run.finished and set(run.statuses.values()) == {"STORED"}
    assert len(run.tasks) == 12 and run.throttled == {}
    m = backlog.measure(run)
    assert m["max_in_flight"] == 6 and m["max_pending"] == 1  # 5 running + the backlog of 1
    assert m["pending_tasks"] > 0 and m["gap_mean_s"] < 1.0
    if push:
        assert run.list_calls == 0 and run.queries == 12  # one query per event, nothing overdue


def test_the_same_seed_gives_the_same_figures():
    plan = backlog.Plan(jobs=10, seeds=(5,), workloads=(backlog.UNIFORM,))
    first = [f.to_dict() for f in backlog.run_plan(plan)]
    again = [f.to_dict() for f in backlog.run_plan(plan)]
    assert first == again
    assert first[-1]["key"] == "backlog.invariants" and first[-1]["passed"] is True
    other = [f.to_dict() for f in backlog.run_plan(replace(plan, seeds=(6,)))]
    assert other != first


def test_backlog_zero_keeps_exactly_the_concurrency_at_the_provider():
    m = backlog.measure(run_scenario(replace(SMALL, backlog=0)))
    assert m["max_in_flight"] == 5 and m["max_pending"] == 0 and m["pending_max_s"] == 0
    assert m["gap_mean_s"] > 1.0  # detection on the poller's 12 s grid, then the create


class DuplicatingProvider(QueuedProvider):
    """A provider that makes two tasks of every create (the second one orphaned)."""

    def create_task(self, request):
        ref = super().create_task(request)
        self._accept(request)
        return ref


def test_a_provider_that_duplicates_tasks_turns_into_a_fail_figure():
    m = backlog.run_one(
        SMALL, lambda sc: run_scenario(sc, lambda clock, sc: DuplicatingProvider(clock, seed=sc.seed))
    )
    assert any(b.endswith("provider tasks for 12 jobs") for b in m["broken"]), m["broken"]
    figures = backlog.invariant_figures({("uniform", False, 1): {3: m}})
    assert [f.passed for f in figures] == [False]
    assert "provider tasks" in figures[0].note


def test_throttling_from_a_provider_with_a_smaller_queue_than_listed_turns_into_a_fail_figure():
    # list-quotas says 500 queued, the provider holds none: backlog 2 creates beyond its limit
    m = backlog.run_one(replace(SMALL, backlog=2, provider_queue=0))
    assert any("Throttling.AllocationQuota" in b for b in m["broken"]), m["broken"]
    (figure,) = backlog.invariant_figures({("uniform", False, 2): {3: m}})
    assert figure.passed is False and "Throttling" in figure.note


def test_a_crashing_scenario_is_a_fail_figure_not_an_exception():
    def crash(sc):
        raise RuntimeError("the world fell over")

    m = backlog.run_one(SMALL, crash)
    (figure,) = backlog.invariant_figures({("uniform", False, 1): {3: m}})
    assert figure.passed is False and "the world fell over" in figure.note


class FailingQueries(QueuedProvider):
    def get_task(self, task_id):
        if task_id == "task-00003":
            raise KeyError("lost")  # not a ProviderError: no use case expects it
        return super().get_task(task_id)


def test_a_handler_that_raises_during_a_scenario_is_a_broken_invariant():
    sc = replace(SMALL, push=True, horizon_s=2 * 3600.0)
    m = backlog.run_one(
        sc, lambda sc: run_scenario(sc, lambda clock, sc: FailingQueries(clock, seed=sc.seed))
    )
    assert any(b.startswith("crash in push_event") and "KeyError" in b for b in m["broken"]), m["broken"]
    assert any("not STORED" in b for b in m["broken"])
