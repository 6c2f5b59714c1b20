"""Submit lanes (inbetween.domain.submit_lanes, inbetween.usecases.admission): one per API key, so that
creates overlap at a raised quota while every create stays reconcilable, and money is still spent once.

A single submit lease serializes creates to one per round trip (~2 a second at 0.4 s, where wan2.7
allows 5). With several keys of the account, each key's creates go through a lane of its own, and a
lane's reconciliation lists that key's tasks alone (the task list's ``api_key_id``)."""

from __future__ import annotations

from dataclasses import replace

from inbetween.domain.models import JobSpec, JobStatus
from inbetween.errors import ProviderUnavailable
from inbetween.usecases.admission import ReconcileOutcome, admit, reconcile, reconcile_expired_leases
from inbetween_local.memory import MemoryWorld, ScriptedProvider, memory_world
from usecase_kit import Wrapped, waiting_job

WAN27 = "wan2.7-i2v"
SPEC = JobSpec(model=WAN27, resolution="720P", duration=5)


def keyed_world(keys: int) -> MemoryWorld:
    world = memory_world()
    provider = ScriptedProvider(world.clock, api_keys=keys)
    return replace(world, provider=provider, deps=replace(world.deps, provider=provider))


def _job(world, job):
    stored = world.store.get_job(job.job_id)
    assert stored is not None
    return stored


# --- creates overlap, one lane per key -------------------------------------------------------------------


class AnotherInvocationDuringTheCreate(Wrapped):
    """While the first create is on the wire, the next lane's invocation admits (the one a holder with
    a burst before it wakes)."""

    def __init__(self, inner, deps_of, *, lose_answers=0, lose_only_the_outer=False):
        super().__init__(inner)
        self.deps_of = deps_of
        self.nested = []
        self.calls = 0
        self.in_flight = 0
        self.overlapped = False
        self.lose_answers = lose_answers
        self.lose_only_the_outer = lose_only_the_outer

    def create_task(self, request, *, key_ref=None):
        self.in_flight += 1
        self.overlapped |= self.in_flight > 1
        try:
            self.calls += 1
            first = self.calls == 1
            if first:
                self.nested.append(admit(self.deps_of(), WAN27, lane=1))
            ref = self.inner.create_task(request, key_ref=key_ref)
            if self.lose_answers and (first or not self.lose_only_the_outer):
                self.lose_answers -= 1
                raise ProviderUnavailable("read timeout", maybe_created=True)
            return ref
        finally:
            self.in_flight -= 1


def test_with_two_keys_a_second_holder_creates_through_the_other_lane_while_the_first_waits_on_its_create():
    world = keyed_world(2)
    jobs = [
        waiting_job(world, f"shot-{i}", spec=SPEC, created_at=world.clock.now() - 2 + i) for i in range(2)
    ]
    provider = AnotherInvocationDuringTheCreate(world.provider, lambda: deps)
    deps = replace(world.deps, provider=provider)
    # When admission creates the first task and, meanwhile, another invocation admits
    admit(deps, WAN27)
    # Then the second create ran while the first was on the wire, each with a key of its own
    assert provider.overlapped
    assert sorted(world.provider.created_with) == ["key0", "key1"]
    # and every job has exactly one task, created with its lane's key
    stored = [_job(world, j) for j in jobs]
    assert all(j.status is JobStatus.SUBMITTED for j in stored)
    assert len(world.provider.created) == 2
    for job in stored:
        assert job.submit_lane in ("key0", "key1")
        assert world.provider.key_of[job.task_id] == ScriptedProvider.api_key_id_of(job.submit_lane)
    # and both lanes' leases are free again
    assert all(lease.get("holder") is None for lease in world.store.leases.values())


def test_one_key_keeps_the_one_lease_and_wakes_no_other_lane():
    world = keyed_world(1)
    for i in range(3):
        waiting_job(world, f"shot-{i}", spec=SPEC, created_at=world.clock.now() - 3 + i)
    provider = AnotherInvocationDuringTheCreate(world.provider, lambda: deps)
    deps = replace(world.deps, provider=provider)
    admit(deps, WAN27)
    # the other invocation found the one lease held and created nothing: creates never overlapped
    assert provider.nested == [0]
    assert not provider.overlapped
    assert world.provider.created_with == [None] * 3
    assert set(world.store.leases) == {""}
    assert world.queues.admissions == []


def test_a_holder_with_a_burst_before_it_wakes_the_next_lane_but_one_freed_slot_wakes_none():
    world = keyed_world(3)
    for i in range(4):
        waiting_job(world, f"burst-{i}", spec=SPEC, created_at=world.clock.now() - 4 + i)
    admit(world.deps, WAN27)
    # with work for more than one create and slots for it, the next lane's holder is started
    assert world.queues.lanes_woken == [1]
    # which wakes the one after it, and the last lane wakes nobody
    for i in range(4):
        waiting_job(world, f"more-{i}", spec=SPEC, created_at=world.clock.now() - 1 + i / 10)
    admit(world.deps, WAN27, lane=1)
    assert world.queues.lanes_woken == [1, 2]
    for i in range(2):
        waiting_job(world, f"last-{i}", spec=SPEC, created_at=world.clock.now() - 0.5 + i / 10)
    admit(world.deps, WAN27, lane=2)
    assert world.queues.lanes_woken == [1, 2]
    # once the slots are full, a freed slot's admission (through the first lane) wakes nobody
    world.queues.lanes_woken.clear()
    waiting_job(world, "late", spec=SPEC, created_at=world.clock.now() - 0.2)
    waiting_job(world, "later", spec=SPEC, created_at=world.clock.now() - 0.1)
    assert admit(world.deps, WAN27) == 0
    assert world.queues.lanes_woken == []


def test_admissions_go_through_the_first_lane_so_a_second_one_meanwhile_creates_nothing():
    # Given two keys and a holder of the first lane busy on its create
    world = keyed_world(2)
    for i in range(2):
        waiting_job(world, f"shot-{i}", spec=SPEC, created_at=world.clock.now() - 2 + i)

    class PlainAdmissionMeanwhile(Wrapped):
        nested: list[int] = []

        def create_task(self, request, *, key_ref=None):
            if not self.nested:
                self.nested.append(admit(deps, WAN27))  # a freed slot's admission, say
            return self.inner.create_task(request, key_ref=key_ref)

    provider = PlainAdmissionMeanwhile(world.provider)
    deps = replace(world.deps, provider=provider)
    admit(deps, WAN27)
    # Then the other admission found the first lane held and did nothing (the holder's loop takes the
    # next job): the other lanes are for bursts, and cost nothing in the steady state
    assert provider.nested == [0]
    assert world.provider.created_with == ["key0", "key0"]


def test_a_lanes_key_is_identified_from_its_first_task_once():
    world = keyed_world(2)
    job = waiting_job(world, "first", spec=SPEC)
    admit(world.deps, WAN27)
    lane = _job(world, job).submit_lane
    assert lane is not None
    assert world.store.leases[lane]["api_key_id"] == ScriptedProvider.api_key_id_of(lane)
    assert world.provider.list_calls == 1
    # later holders know the keys they used: one list call per key, ever
    jobs = [waiting_job(world, f"later-{i}", spec=SPEC) for i in range(3)]
    for _ in jobs:
        admit(world.deps, WAN27)
    lanes = {_job(world, j).submit_lane for j in [job, *jobs]}
    assert world.provider.list_calls == len(lanes)


# --- reconciliation: each lane lists its own key's tasks -------------------------------------------------


def _two_lost_answers(world, *, identified: bool, outer_task_made: bool = True):
    """Two creates in flight at once, through the two lanes, and both answers lost."""
    if identified:
        for ref in world.provider.api_keys:
            world.store.remember_api_key_id(ScriptedProvider.api_key_id_of(ref), lane=ref)
    jobs = [
        waiting_job(world, f"lost-{i}", spec=SPEC, created_at=world.clock.now() - 2 + i) for i in range(2)
    ]

    class Losing(AnotherInvocationDuringTheCreate):
        def create_task(self, request, *, key_ref=None):
            if self.calls == 0 and not outer_task_made:
                self.calls += 1
                self.nested.append(admit(self.deps_of(), WAN27, lane=1))
                raise ProviderUnavailable("read timeout", maybe_created=True)  # it never reached them
            return super().create_task(request, key_ref=key_ref)

    provider = Losing(world.provider, lambda: deps, lose_answers=2)
    deps = replace(world.deps, provider=provider)
    admit(deps, WAN27)
    assert all(_job(world, j).status is JobStatus.SUBMITTING for j in jobs)
    world.clock.advance(world.deps.timing.submit_lease_s + 1)
    return jobs


def test_two_lost_creates_in_flight_together_are_each_adopted_by_their_own_lane():
    world = keyed_world(2)
    jobs = _two_lost_answers(world, identified=True)
    assert len(world.provider.created) == 2
    assert reconcile_expired_leases(world.deps) == 2
    for job in jobs:
        stored = _job(world, job)
        assert stored.status is JobStatus.SUBMITTED
        assert world.provider.key_of[stored.task_id] == ScriptedProvider.api_key_id_of(stored.submit_lane)
    assert {_job(world, j).task_id for j in jobs} == set(world.provider.created_at)
    assert len(world.provider.created) == 2  # nothing submitted twice


def test_until_the_keys_are_identified_two_lost_creates_in_flight_together_fail_loudly_never_guessed():
    world = keyed_world(2)
    jobs = _two_lost_answers(world, identified=False)
    reconcile_expired_leases(world.deps)
    for job in jobs:
        stored = _job(world, job)
        assert stored.status is JobStatus.FAILED
        assert stored.error is not None and stored.error.code == "NeedsAttention"
        assert stored.task_id is None
    assert world.store.slots_in_use(WAN27) == 0


def test_one_orphan_inside_two_overlapping_windows_goes_to_neither_job_by_guess():
    # Given two creates in flight together through unidentified lanes: the first never reached the
    # provider, the second made its task; both answers were lost
    world = keyed_world(2)
    first, second = _two_lost_answers(world, identified=False, outer_task_made=False)
    [orphan] = world.provider.created_at
    # When the first job is reconciled, the one unknown task lies in the second job's window too
    assert reconcile(world.deps, _job(world, first)) is ReconcileOutcome.AMBIGUOUS
    # Then neither job takes it (either may have made it: the second, left alone, would adopt what may
    # be the first's video): both fail loudly, and say why
    for job in (first, second):
        stored = _job(world, job)
        assert stored.status is JobStatus.FAILED and stored.task_id is None
        assert stored.error is not None and stored.error.code == "NeedsAttention"
        assert "another of ours" in stored.error.message and orphan in (stored.error.hint or "")
    assert world.store.slots_in_use(WAN27) == 0
    assert world.store.job_for_task(orphan) is None
    assert len(world.provider.created) == 1  # and nothing was submitted again


def test_with_identified_keys_the_same_orphan_is_its_own_lanes_and_the_other_job_is_submitted_again():
    world = keyed_world(2)
    first, second = _two_lost_answers(world, identified=True, outer_task_made=False)
    [orphan] = world.provider.created_at
    owner_lane = next(
        r
        for r in world.provider.api_keys
        if ScriptedProvider.api_key_id_of(r) == world.provider.key_of[orphan]
    )
    reconcile_expired_leases(world.deps)
    stored = {j.job_id: _job(world, j) for j in (first, second)}
    adopted = [j for j in stored.values() if j.task_id == orphan]
    assert len(adopted) == 1 and adopted[0].submit_lane == owner_lane
    others = [j for j in stored.values() if j.task_id != orphan]
    assert [j.status for j in others] == [JobStatus.WAITING]  # nothing was made for it: it waits again
