"""The create rate against a provider that enforces it (limits_kit.LimitedProvider), in virtual time.

Creates are spaced by when they can reach the provider (inside their round trips), so the provider's
sliding second never holds more than it allows, whatever the jitter; and what one submit-lease holder
sustains is measured, creates per second, at the raised quotas where it matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pytest
from inbetween.domain.models import JobSpec, JobStatus
from inbetween.usecases import polling
from inbetween.usecases.admission import admit
from inbetween_local.memory import MemoryWorld, memory_world
from inbetween_local.memory import test_settings as settings_with
from limits_kit import LimitedProvider, max_in_a_second
from usecase_kit import waiting_job

WAN27 = "wan2.7-i2v"
SPEC = JobSpec(model=WAN27, resolution="720P", duration=5)
SEEDS = range(1, 6)
# create round trips: the bench's modelled 0.4 s +- 0.15 s, and a worse network (0.1-1 s)
BENCH_RTT = (0.25, 0.55)
WIDE_RTT = (0.1, 1.0)


def limited_world(
    rate: float, *, concurrency: int = 100, rtt: tuple[float, float] = BENCH_RTT, seed: int = 1
) -> tuple[MemoryWorld, LimitedProvider]:
    world = memory_world(settings_with(provider_backlog=0))
    provider = LimitedProvider(
        world.clock, seed=seed, submit_per_s=rate, concurrency=concurrency, create_rtt_s=rtt
    )
    world.quotas.set(WAN27, concurrency=concurrency, submit_per_s=rate, queue=0)
    world.deps = replace(world.deps, provider=provider)
    return world, provider


def waiting(world: MemoryWorld, n: int) -> None:
    t = world.clock.now()
    for i in range(n):
        waiting_job(world, f"job-{i:04d}", spec=SPEC, created_at=t - n + i, frames={"first.png": b"png"})


def creates_per_s(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


@pytest.mark.parametrize("rtt", [BENCH_RTT, WIDE_RTT], ids=["bench-jitter", "wide-jitter"])
@pytest.mark.parametrize("rate", [1.0, 2.0, 5.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_burst_is_created_without_a_single_rate_refusal_whatever_the_jitter(rate, rtt, seed):
    # Given 40 waiting jobs, slots for all, and a provider that counts creates in a sliding second
    world, provider = limited_world(rate, rtt=rtt, seed=seed)
    waiting(world, 40)
    # When one admission fills the slots
    assert admit(world.deps, WAN27) == 40
    # Then the provider never refused a create, nor saw more than its rate in any second
    assert provider.throttled == {}
    assert max_in_a_second(provider.create_times()) <= rate


@pytest.mark.parametrize("rate", [2.0, 5.0])
def test_one_invocation_after_another_keeps_to_the_rate(rate):
    # Given jobs admitted one invocation at a time (each a new lease holder), back to back
    world, provider = limited_world(rate, rtt=WIDE_RTT, seed=3)
    waiting(world, 30)
    for _ in range(30):
        world.store.slots[WAN27] = 99  # one slot free: each invocation creates once
        assert admit(world.deps, WAN27) == 1
        world.clock.advance(0.01)
    # Then every job was created once, and no second held more than the rate
    assert len(provider.tasks) == 30
    assert provider.throttled == {}
    assert max_in_a_second(provider.create_times()) <= rate
    assert all(j.status is JobStatus.SUBMITTED for j in world.store.recent_jobs(limit=100))


# --- the single submit lease at raised quotas ---------------------------------------------------------
SUBMIT_FUNCTION_TIMEOUT_S = 60.0  # template.yaml's SubmitFunction
HANDOVER_S = 0.3  # an SQS message to the submit function, and its invocation


@dataclass
class Fill:
    """A burst filling every slot, admission run invocation after invocation as the cloud runs it."""

    creates: list[float]  # when each create reached the provider
    invocations: list[tuple[float, float, float]]  # (began, ended, deadline)
    throttled: dict[str, int]

    @property
    def creates_per_s(self) -> float:
        return creates_per_s(self.creates)

    @property
    def overran(self) -> int:
        """Invocations still creating when Lambda would have stopped them (a create cut off: a crash)."""
        return sum(1 for _, ended, deadline in self.invocations if ended > deadline)


def fill_a_burst(quota: int, rate: float, *, seed: int = 1) -> Fill:
    # Given a burst of as many jobs as the raised quota has slots (and a few more)
    world, provider = limited_world(rate, concurrency=quota, seed=seed)
    waiting(world, quota + 20)
    deadline = [math.inf]
    deps = replace(world.deps, time_left_s=lambda: deadline[0] - world.clock.now())
    invocations = []
    # When the submit function admits, and each invocation that runs short hands over to the next
    while world.store.slots_in_use(WAN27) < quota and len(invocations) < 200:
        began = world.clock.now()
        deadline[0] = began + SUBMIT_FUNCTION_TIMEOUT_S
        world.queues.admissions.clear()
        admit(deps, WAN27)
        invocations.append((began, world.clock.now(), deadline[0]))
        if not world.queues.admissions:
            break
        world.clock.advance(HANDOVER_S)
    return Fill(provider.create_times(), invocations, dict(provider.throttled))


@pytest.mark.parametrize("quota", [100, 200])
@pytest.mark.parametrize("rate", [5.0, 10.0])
def test_one_lease_holder_sustains_a_create_per_round_trip_and_never_outlives_its_invocation(quota, rate):
    fill = fill_a_burst(quota, rate)
    # Then every slot filled, no invocation ran past its timeout (its last create would have been cut
    # off), and nothing was refused
    assert len(fill.creates) == quota
    assert fill.overran == 0
    assert fill.throttled == {}
    # and the holders kept the pace of one create per round trip (0.4 s on average), hand-overs
    # included: 2.4/s, short of the 5 or 10 the provider allows (see the module docstring of admission)
    mean_rtt = sum(BENCH_RTT) / 2
    assert fill.creates_per_s >= 0.95 / mean_rtt
    # which is twice what the quota sustains once full (quota / mean generation time, 180 s)
    assert fill.creates_per_s >= 2 * quota / 180.0


class LeaseWatchingQueues:
    """The queues, noting whether the submit lease was free when each admission was handed over."""

    def __init__(self, world: MemoryWorld) -> None:
        self.world = world
        self.lease_free_at_handover: list[bool] = []

    def __getattr__(self, name: str):
        return getattr(self.world.queues, name)

    def admit_waiting(self, model: str, *, lane: int = 0) -> None:
        self.lease_free_at_handover.append(self.world.store.lease.get("holder") is None)
        self.world.queues.admit_waiting(model, lane=lane)


def test_a_holder_running_out_of_time_stops_before_a_create_and_hands_over_with_the_lease_free():
    # Given ten waiting jobs and an invocation with time for the round trips of only a few creates
    world, provider = limited_world(5.0)
    waiting(world, 10)
    budget = world.deps.timing.submit_call_budget_s
    deadline = world.clock.now() + budget + 1.0
    queues = LeaseWatchingQueues(world)
    deps = replace(world.deps, queues=queues, time_left_s=lambda: deadline - world.clock.now())
    # When it admits
    made = admit(deps, WAN27)
    # Then it created while a whole create call still fitted, and no later: the rest wait, with the
    # next invocation asked for, once the lease was free for it
    assert 0 < made < 10
    assert deadline - world.clock.now() < budget  # it stopped only once a create no longer fitted
    assert queues.lease_free_at_handover == [True]
    assert world.queues.admissions == [WAN27]
    # And the next invocation admits the rest
    assert admit(world.deps, WAN27) == 10 - made
    assert provider.throttled == {}


def test_an_invocation_too_short_for_any_create_does_not_hand_over_again():
    # Given an invocation that has less time left than one create call can take
    world, provider = limited_world(5.0)
    waiting(world, 3)
    deps = replace(world.deps, time_left_s=lambda: world.deps.timing.submit_call_budget_s - 1.0)
    # When it admits, nothing is created and no message bounces back and forth: the poller admits
    assert admit(deps, WAN27) == 0
    assert provider.tasks == {} and world.queues.admissions == []
    assert all(j.status is JobStatus.WAITING for j in world.store.recent_jobs())


def test_the_poller_late_in_its_invocation_hands_admission_to_the_submit_function():
    # Given a waiting job and a poller tick whose invocation has less time left than a create can take
    world, provider = limited_world(5.0)
    waiting(world, 1)
    deps = replace(world.deps, time_left_s=lambda: world.deps.timing.submit_call_budget_s - 5.0)
    # When the tick admits
    report = polling.tick(deps, budget_s=0)
    # Then it creates nothing itself and asks the submit function (a fresh invocation) to admit
    assert report.admitted == 0 and provider.tasks == {}
    assert world.queues.admissions == [WAN27]
    assert admit(world.deps, WAN27) == 1
