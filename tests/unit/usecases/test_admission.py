"""Admission and submission (inbetween.usecases.admission), against the in-memory ports.

The promises of tests/integration/pipeline/test_admission_and_outcomes.py and test_delivery_semantics.py,
kept quickly: every slot busy and never more, creates spaced to the provider's rate, a throttled or
failed create waits with its place, a rejected one ends the job, and a create whose outcome is unknown
(or a crash around it) is reconciled with the provider's task list: exactly one task per job.
"""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from inbetween.domain.catalog import model_spec
from inbetween.domain.create_spacing import SPACING_MARGIN_S
from inbetween.domain.hints import provider_hint
from inbetween.domain.models import DueKind, JobSpec, JobStatus, Transition
from inbetween.errors import ConfigError, ProviderRejected, ProviderThrottled, ProviderUnavailable
from inbetween.usecases import admission
from inbetween.usecases.admission import (
    RECONCILE_DEFERRED_S,
    RECONCILE_RETRY_S,
    UNCERTAIN_RECHECK_S,
    ReconcileOutcome,
    admit,
    build_request,
    reconcile,
    reconcile_expired_leases,
)
from inbetween.usecases.check_schedule import first_check_at
from inbetween.usecases.notify import FAILED_EVENT
from inbetween_local.memory import memory_world
from inbetween_local.memory import test_settings as settings_with
from usecase_kit import FLASH, PLUS, Wrapped, frame_png, inbox_error, submitted_job, waiting_job


@pytest.fixture
def world():
    return memory_world()


def _status(world, job) -> JobStatus:
    stored = world.store.get_job(job.job_id)
    assert stored is not None
    return stored.status


def _waiting_in_order(world) -> list[str]:
    return [j.job_id for j in world.store.due_jobs(DueKind.ADMIT, world.clock.now(), model=FLASH)]


class AnswerLost(Wrapped):
    """A provider that creates the task, but whose answer never arrives (a read timeout after the body
    was sent): the create's outcome is unknown to the caller."""

    def create_task(self, request):
        self.inner.create_task(request)
        raise ProviderUnavailable("read timeout", maybe_created=True)


class CrashBeforeRecording(Wrapped):
    """The function dies between "task created" and "task recorded"."""

    def record_task(self, task_id, job_id):
        raise SystemExit("simulated crash between 'task created' and 'task recorded'")


class CrashHalfWay(Wrapped):
    """The function dies after writing the task's owner record, before the job's own state change."""

    def apply(self, transition):
        if transition.new_status is JobStatus.SUBMITTED:
            raise SystemExit("simulated crash half way through recording the task")
        return self.inner.apply(transition)


# --- slots and order --------------------------------------------------------------------------------


def test_a_backlog_fills_every_slot_of_the_model_and_no_more(world):
    # Given three waiting jobs and the model's published quota of two concurrent tasks
    jobs = [waiting_job(world, f"backlog-{i}", created_at=world.clock.now() - 3 + i) for i in range(3)]
    assert world.deps.settings.concurrency_for(FLASH) == 2
    # When admission runs
    assert admit(world.deps, FLASH) == 2
    # Then the two oldest hold the two slots, the third waits
    assert [_status(world, j) for j in jobs] == [JobStatus.SUBMITTED, JobStatus.SUBMITTED, JobStatus.WAITING]
    assert world.store.slots_in_use(FLASH) == 2
    assert len(world.provider.created) == 2
    assert _waiting_in_order(world) == [jobs[2].job_id]
    # and admission again changes nothing while the slots are busy
    assert admit(world.deps, FLASH) == 0
    assert len(world.provider.created) == 2


@pytest.mark.parametrize("limit", [1, 3])
def test_the_deployments_own_concurrency_replaces_the_published_quota(limit):
    world = memory_world(settings_with(provider_concurrency=limit))
    for i in range(4):
        waiting_job(world, f"job-{i}", created_at=world.clock.now() - 4 + i)
    assert admit(world.deps, FLASH) == limit
    assert world.store.slots_in_use(FLASH) == limit


# --- live quotas ------------------------------------------------------------------------------------------

WAN27 = "wan2.7-i2v"
WAN27_SPEC = JobSpec(model=WAN27, resolution="720P", duration=5)


@pytest.fixture
def exact():
    """A world without the provider-side backlog: the slots are exactly the concurrency."""
    return memory_world(settings_with(provider_backlog=0))


def _waiting(world, n, *, spec=WAN27_SPEC):
    t = world.clock.now()
    return [waiting_job(world, f"job-{i}", spec=spec, created_at=t - n + i) for i in range(n)]


def test_the_accounts_live_quota_sets_the_slots_when_no_concurrency_is_configured(exact):
    # Given an account whose quota was raised to 7 (list-quotas says so) and ten waiting wan2.7 jobs
    exact.quotas.set(WAN27, concurrency=7, submit_per_s=5.0, queue=500)
    _waiting(exact, 10)
    # When admission runs
    assert admission.admission_limits(exact.deps, WAN27).source == "live"
    # Then seven tasks are in flight, not the published five
    assert admit(exact.deps, WAN27) == 7
    assert exact.store.slots_in_use(WAN27) == 7
    # and the quota was asked by the model's name in the deployment's region
    assert set(exact.quotas.asked) == {WAN27}


def test_a_lowered_live_quota_admits_nothing_more_until_tasks_end(exact):
    exact.quotas.set(WAN27, concurrency=5)
    _waiting(exact, 8)
    assert admit(exact.deps, WAN27) == 5
    exact.quotas.set(WAN27, concurrency=3)  # a workspace override appeared
    assert admit(exact.deps, WAN27) == 0
    assert exact.store.slots_in_use(WAN27) == 5


def test_unknown_live_quotas_fall_back_to_the_published_figures(exact):
    # Given list-quotas that knows nothing of the model (or could not be read)
    _waiting(exact, 8)
    limits = admission.admission_limits(exact.deps, WAN27)
    assert (limits.concurrency, limits.submit_per_s, limits.source) == (5, 5.0, "published")
    assert admit(exact.deps, WAN27) == model_spec(WAN27).max_concurrent


def test_a_configured_concurrency_wins_over_the_live_quota():
    world = memory_world(settings_with(provider_concurrency=2, provider_backlog=0))
    world.quotas.set(WAN27, concurrency=7)
    _waiting(world, 4)
    assert admission.admission_limits(world.deps, WAN27).source == "configured"
    assert admit(world.deps, WAN27) == 2


def test_creates_are_spaced_to_the_live_submit_rate(exact):
    # Given an account allowed 2 creates per second (120 per minute in its row) for wan2.7
    exact.quotas.set(WAN27, concurrency=5, submit_per_s=2.0)
    _waiting(exact, 3)
    assert admit(exact.deps, WAN27) == 3
    # Then two go at once (the round trips take no time here) and the third waits for the second that
    # began when the first one's round trip ended
    first, second, third = sorted(exact.provider.created_at.values())
    assert second == first
    assert third - first == pytest.approx(1.0 + SPACING_MARGIN_S)


def test_by_default_one_task_waits_in_the_providers_queue_beyond_the_concurrency(world):
    # the measured default (make bench, "backlog"): one more wan2.7 task than slots, none for kf2v
    assert world.deps.settings.provider_backlog is None  # auto
    assert admission.admission_limits(world.deps, WAN27).concurrency == 6
    assert admission.admission_limits(world.deps, FLASH).concurrency == 2


@pytest.mark.parametrize(
    ("quota", "poll_interval_s", "backlog"),
    [(5, 12.0, 1), (20, 12.0, 4), (100, 12.0, 20), (200, 12.0, 40), (5, 1.0, 1), (100, 6.0, 10)],
)
def test_the_default_backlog_grows_with_the_quota(quota, poll_interval_s, backlog):
    # as many queued tasks as wan2.7's fastest tasks (60 s) can end inside one poll window: at a raised
    # quota one queued task would leave the other ends of a window idle until the next check
    world = memory_world(settings_with(poll_interval_s=poll_interval_s))
    world.quotas.set(WAN27, concurrency=quota, queue=500)
    assert admission.admission_limits(world.deps, WAN27).concurrency == quota + backlog
    # never beyond what the provider's queue holds, and never for a model without one
    world.quotas.set(WAN27, concurrency=quota, queue=3)
    assert admission.admission_limits(world.deps, WAN27).concurrency == quota + min(backlog, 3)
    world.quotas.set(FLASH, concurrency=quota)
    assert admission.admission_limits(world.deps, FLASH).concurrency == quota


def test_a_backlog_adds_slots_only_where_the_provider_queues_tasks():
    world = memory_world(settings_with(provider_backlog=2))
    world.quotas.set(WAN27, concurrency=5, queue=500)
    # wan2.7 holds tasks PENDING in its queue: two beyond the five
    assert admission.admission_limits(world.deps, WAN27).concurrency == 7
    # kf2v has no queue (a create over its quota is refused): no backlog
    assert admission.admission_limits(world.deps, FLASH).concurrency == 2
    # and never more than the provider's queue holds
    world.quotas.set(WAN27, concurrency=5, queue=1)
    assert admission.admission_limits(world.deps, WAN27).concurrency == 6


def _created_for(world) -> list[str]:
    """The job names of the provider's creates, in the order they were sent (from the frame links)."""
    return [r.first_frame_url.split("/")[4] for r in world.provider.created]


def test_jobs_are_submitted_in_arrival_order():
    # Given three slots, and jobs that arrived in one order and were recorded in another
    world = memory_world(settings_with(provider_concurrency=3))
    t = world.clock.now()
    for name, arrived in (("third", t - 1), ("first", t - 3), ("second", t - 2)):
        waiting_job(world, name, created_at=arrived)
    # When admission runs
    assert admit(world.deps, FLASH) == 3
    # Then the creates went out oldest first
    assert _created_for(world) == ["first", "second", "third"]


def test_a_submitted_task_is_owned_by_its_job_and_first_checked_when_the_schedule_says(world):
    job = waiting_job(world, "shot")
    assert admit(world.deps, FLASH) == 1
    stored = world.store.get_job(job.job_id)
    assert stored is not None and stored.task_id is not None
    assert (stored.status, stored.provider_status, stored.lease_holder) == (
        JobStatus.SUBMITTED,
        "PENDING",
        None,
    )
    assert stored.submitted_at == world.clock.now()
    assert world.store.job_for_task(stored.task_id) == job.job_id
    check_at = first_check_at(world.deps.settings, world.deps.timing, FLASH, stored.submitted_at)
    assert world.store.due_jobs(DueKind.POLL, check_at - 0.01) == []
    assert [j.job_id for j in world.store.due_jobs(DueKind.POLL, check_at)] == [job.job_id]


def test_two_admitters_racing_for_one_job_submit_it_once(world):
    # Given another admitter that moves the first job just before we do
    first = waiting_job(world, "first", created_at=world.clock.now() - 2)
    second = waiting_job(world, "second", created_at=world.clock.now() - 1)

    class OtherAdmitterFirst(Wrapped):
        raced = False

        def apply(self, transition):
            if not self.raced and transition.new_status is JobStatus.SUBMITTING:
                self.raced = True
                theirs = (
                    Transition.of(transition.job_id, JobStatus.WAITING, JobStatus.SUBMITTING)
                    .set(lease_holder="the-other-admitter")
                    .schedule(DueKind.LEASE, world.clock.now() + 90)
                    .take_slot(FLASH, 2)
                )
                assert self.inner.apply(theirs)
            return self.inner.apply(transition)

    # When we admit
    assert admit(replace(world.deps, store=OtherAdmitterFirst(world.store)), FLASH) == 1
    # Then the first job is left to the other admitter, and we submitted only the second
    assert world.store.get_job(first.job_id).lease_holder == "the-other-admitter"
    assert _status(world, second) is JobStatus.SUBMITTED
    assert _created_for(world) == ["second"]
    assert world.store.slots_in_use(FLASH) == 2


def test_nothing_is_admitted_while_another_worker_holds_the_submit_lease(world):
    waiting_job(world, "shot")
    assert world.store.acquire_submit_lease("another-worker", 60.0) is not None
    assert admit(world.deps, FLASH) == 0
    assert world.provider.created == [] and world.store.slots_in_use(FLASH) == 0


def test_a_job_that_arrives_while_the_lease_holder_finishes_is_not_left_waiting():
    # Given a holder of the submit lease that sees the queue empty just as another intake accepts a job
    # (whose own admission finds the lease taken), every time it looks
    world = memory_world(settings_with(provider_concurrency=10))
    waiting_job(world, "a")
    arrivals = ["b", "c", "d"]

    class ArrivalWhileLooking(Wrapped):
        def due_jobs(self, kind, now, **kw):
            jobs = self.inner.due_jobs(kind, now, **kw)
            if kind is DueKind.ADMIT and not jobs and arrivals:
                waiting_job(world, arrivals.pop(0))
                assert admit(world.deps, FLASH) == 0  # the lease is taken
            return jobs

    # When it admits
    submitted = admit(replace(world.deps, store=ArrivalWhileLooking(world.store)), FLASH)
    # Then it looks again after giving the lease back, a bounded number of times; what arrives after
    # that is the poller's on its next tick
    assert submitted == admission.ADMIT_ROUNDS == 3
    assert _created_for(world) == ["a", "b", "c"]
    assert _waiting_in_order(world) == ["d/run1"]
    assert world.store.acquire_submit_lease("the-poller", 30.0) is not None


# --- spacing ----------------------------------------------------------------------------------------


def test_creates_are_spaced_to_the_providers_rate():
    # Given more waiting jobs than a second's creates (a model that takes two creates a second)
    world = memory_world(settings_with(provider_concurrency=5))
    for n in range(5):
        waiting_job(world, f"job-{n}", created_at=world.clock.now() - 5 + n)
    # When they are admitted, three in one go and two by the next invocation
    world.store.slots[FLASH] = 2
    assert admit(world.deps, FLASH) == 3
    world.store.slots[FLASH] = 0
    assert admit(world.deps, FLASH) == 2
    # Then no second holds more than two creates, the next invocation's included
    rps = model_spec(FLASH).submit_rps
    created = sorted(world.provider.created_at.values())
    assert all(later - earlier > 1.0 for earlier, later in zip(created, created[int(rps) :], strict=False))


def test_the_gap_holds_across_invocations(world):
    # Given a create a moment ago, by another invocation
    waiting_job(world, "a")
    assert admit(world.deps, FLASH) == 1
    world.clock.advance(0.2)
    # When the next job is admitted
    waiting_job(world, "b")
    assert admit(world.deps, FLASH) == 1
    # Then it waited only what was left of the last holder's step (1/rate past that create's end)
    step = 1 / model_spec(FLASH).submit_rps
    assert world.clock.slept == [pytest.approx(step + SPACING_MARGIN_S - 0.2)]


# --- the provider says no, or nothing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ProviderThrottled("Requests rate limit exceeded", code="Throttling.RateQuota", status_code=429),
        ProviderUnavailable("HTTP 503", status_code=503),
        ConfigError("the API key secret is still empty"),
    ],
    ids=["throttled", "unavailable", "config-error"],
)
def test_a_create_that_did_not_happen_puts_the_job_back_in_line_with_its_place(world, error):
    # Given two waiting jobs and a create that fails without reaching a task
    first = waiting_job(world, "first", created_at=world.clock.now() - 2)
    second = waiting_job(world, "second", created_at=world.clock.now() - 1)
    world.provider.create_errors = [error]
    # When admission runs
    assert admit(world.deps, FLASH) == 0
    # Then the job waits again, in front of the later one, its slot given back; admission stopped
    stored = world.store.get_job(first.job_id)
    assert stored is not None and stored.status is JobStatus.WAITING
    assert (stored.submit_started_at, stored.lease_holder, stored.error) == (None, None, None)
    assert _status(world, second) is JobStatus.WAITING
    assert world.store.slots_in_use(FLASH) == 0
    assert world.provider.created == []
    assert _waiting_in_order(world) == [first.job_id, second.job_id]
    assert world.notifier.published == []
    # and the next admission sends both, oldest first
    assert admit(world.deps, FLASH) == 2
    assert _created_for(world) == ["first", "second"]


def test_a_create_the_provider_rejects_ends_the_job_and_admission_goes_on(world):
    first = waiting_job(world, "refused", created_at=world.clock.now() - 2)
    second = waiting_job(world, "fine", created_at=world.clock.now() - 1)
    world.provider.create_errors = [
        ProviderRejected(
            "Input data may contain inappropriate content.", code="DataInspectionFailed", request_id="req-9"
        )
    ]
    assert admit(world.deps, FLASH) == 1
    # the rejected job is final, with the provider's reason and what to do about it
    stored = world.store.get_job(first.job_id)
    assert stored is not None and stored.status is JobStatus.REJECTED
    assert stored.error is not None
    assert (stored.error.code, stored.error.provider_request_id) == ("DataInspectionFailed", "req-9")
    assert stored.error.hint == provider_hint("DataInspectionFailed") and stored.error.hint
    report = inbox_error(world, "refused")
    assert report is not None and report["error"]["code"] == "DataInspectionFailed" and report["what_to_do"]
    assert [(n.event_type, n.job_name) for n in world.notifier.published] == [(FAILED_EVENT, "refused")]
    # its slot went back, and the next job took one
    assert _status(world, second) is JobStatus.SUBMITTED
    assert world.store.slots_in_use(FLASH) == 1


# --- unknown outcomes and crashes: reconciliation ---------------------------------------------------


def test_a_create_with_an_unknown_outcome_keeps_the_job_and_its_slot_until_reconciled(world):
    job = waiting_job(world, "unsure", created_at=world.clock.now() - 2)
    later = waiting_job(world, "later", created_at=world.clock.now() - 1)
    world.provider.create_errors = [ProviderUnavailable("HTTP 500", status_code=500, maybe_created=True)]
    assert admit(world.deps, FLASH) == 0
    stored = world.store.get_job(job.job_id)
    assert stored is not None and stored.status is JobStatus.SUBMITTING
    assert stored.uncertain_at == world.clock.now()
    assert world.store.slots_in_use(FLASH) == 1
    # admission stopped (no create may fall inside this job's window before it is reconciled)
    assert _status(world, later) is JobStatus.WAITING
    # it is due for reconciliation shortly
    assert world.store.due_jobs(DueKind.LEASE, world.clock.now()) == []
    due = world.store.due_jobs(DueKind.LEASE, world.clock.now() + UNCERTAIN_RECHECK_S)
    assert [j.job_id for j in due] == [job.job_id]


def test_an_unknown_outcome_whose_task_exists_adopts_that_task(world):
    # Given a create whose answer was lost, though the task was created
    job = waiting_job(world, "orphan")
    assert admit(replace(world.deps, provider=AnswerLost(world.provider)), FLASH) == 0
    [task_id] = world.provider.created_at
    # When the poller reconciles
    world.clock.advance(UNCERTAIN_RECHECK_S)
    assert reconcile_expired_leases(world.deps) == 1
    # Then the task is the job's: no second create
    stored = world.store.get_job(job.job_id)
    assert stored is not None and (stored.status, stored.task_id) == (JobStatus.SUBMITTED, task_id)
    assert (stored.uncertain_at, stored.lease_holder) == (None, None)
    assert world.store.job_for_task(task_id) == job.job_id
    assert len(world.provider.created) == 1
    assert world.store.slots_in_use(FLASH) == 1


def test_an_unknown_outcome_that_created_nothing_is_submitted_again(world):
    job = waiting_job(world, "unsure")
    world.provider.create_errors = [ProviderUnavailable("HTTP 500", status_code=500, maybe_created=True)]
    assert admit(world.deps, FLASH) == 0
    world.clock.advance(UNCERTAIN_RECHECK_S)
    assert reconcile_expired_leases(world.deps) == 1
    # back in line, its slot given back
    assert _status(world, job) is JobStatus.WAITING
    assert world.store.slots_in_use(FLASH) == 0
    assert _waiting_in_order(world) == [job.job_id]
    # and the next admission creates its one task
    assert admit(world.deps, FLASH) == 1
    assert len(world.provider.created) == 1 and _status(world, job) is JobStatus.SUBMITTED


def test_two_unknown_tasks_in_the_window_fail_the_job_loudly_instead_of_guessing(world):
    # Given a lost answer, and another program on the same key creating a task at the same moment
    job = waiting_job(world, "crowded")
    assert admit(replace(world.deps, provider=AnswerLost(world.provider)), FLASH) == 0
    foreign = world.provider.foreign_task(FLASH)
    # When the poller reconciles
    world.clock.advance(UNCERTAIN_RECHECK_S)
    assert reconcile_expired_leases(world.deps) == 1
    # Then the job fails with NeedsAttention naming the tasks, is notified, and gives its slot back
    stored = world.store.get_job(job.job_id)
    assert stored is not None and stored.status is JobStatus.FAILED
    assert stored.error is not None and stored.error.code == "NeedsAttention"
    assert foreign in stored.error.hint
    assert all(task_id in stored.error.hint for task_id in world.provider.created_at)
    assert [n.status for n in world.notifier.published] == [JobStatus.FAILED]
    assert world.store.slots_in_use(FLASH) == 0
    assert stored.task_id is None


def test_a_crash_after_the_provider_accepted_the_task_is_reconciled_not_resubmitted(world):
    # Given the function dies right after the provider accepted the task, before the table recorded it
    job = waiting_job(world, "orphan")
    with pytest.raises(SystemExit):
        admit(replace(world.deps, store=CrashBeforeRecording(world.store)), FLASH)
    assert _status(world, job) is JobStatus.SUBMITTING
    [task_id] = world.provider.created_at
    # When the dead worker's lease has run out and the poller reconciles
    world.clock.advance(world.deps.timing.submit_lease_s + 1)
    assert reconcile_expired_leases(world.deps) == 1
    # Then the orphan task was adopted: one task
    stored = world.store.get_job(job.job_id)
    assert stored is not None and (stored.status, stored.task_id) == (JobStatus.SUBMITTED, task_id)
    assert len(world.provider.created) == 1


def test_a_task_recorded_as_ours_whose_job_did_not_move_is_adopted_before_any_unknown_one(world):
    # Given a crash between the task's owner record and the job's move, and a foreign task in the window
    job = waiting_job(world, "half-way")
    with pytest.raises(SystemExit):
        admit(replace(world.deps, store=CrashHalfWay(world.store)), FLASH)
    [mine] = world.provider.created_at
    assert world.store.job_for_task(mine) == job.job_id
    world.provider.foreign_task(FLASH)
    # When the poller reconciles
    world.clock.advance(world.deps.timing.submit_lease_s + 1)
    assert reconcile_expired_leases(world.deps) == 1
    # Then the recorded task is the one adopted (the foreign one is not ambiguity)
    stored = world.store.get_job(job.job_id)
    assert stored is not None and (stored.status, stored.task_id) == (JobStatus.SUBMITTED, mine)
    assert world.notifier.published == []


def test_reconciliation_is_deferred_while_the_task_list_is_unavailable(world):
    job = waiting_job(world, "unsure")
    world.provider.create_errors = [ProviderUnavailable("HTTP 500", status_code=500, maybe_created=True)]
    admit(world.deps, FLASH)
    world.clock.advance(UNCERTAIN_RECHECK_S)
    # When the task list cannot be read
    world.provider.list_errors = [ProviderUnavailable("HTTP 503", status_code=503)]
    stored = world.store.get_job(job.job_id)
    assert reconcile(world.deps, stored) is ReconcileOutcome.DEFERRED
    # Then the job keeps waiting in SUBMITTING (with its slot), and is looked at again later
    assert _status(world, job) is JobStatus.SUBMITTING
    assert world.store.slots_in_use(FLASH) == 1
    now = world.clock.now()
    assert world.store.due_jobs(DueKind.LEASE, now + RECONCILE_DEFERRED_S - 1) == []
    assert [j.job_id for j in world.store.due_jobs(DueKind.LEASE, now + RECONCILE_DEFERRED_S)] == [job.job_id]
    # and once the list answers, it is settled (nothing was created: submit again)
    world.clock.advance(RECONCILE_DEFERRED_S)
    assert reconcile_expired_leases(world.deps) == 1
    assert _status(world, job) is JobStatus.WAITING


def test_reconciliation_holds_the_submit_lease_so_no_create_of_ours_is_in_flight(world):
    job = waiting_job(world, "unsure")
    world.provider.create_errors = [ProviderUnavailable("HTTP 500", status_code=500, maybe_created=True)]
    admit(world.deps, FLASH)
    world.clock.advance(UNCERTAIN_RECHECK_S)
    # Given another worker holding the lease: reconciliation waits for it
    assert world.store.acquire_submit_lease("another-worker", 30.0) is not None
    assert reconcile_expired_leases(world.deps) == 0
    assert _status(world, job) is JobStatus.SUBMITTING
    world.store.release_submit_lease("another-worker")
    # When it runs, the lease is its own while it reads the task list, and free afterwards
    seen = []

    class Watching(Wrapped):
        def iter_tasks(self, **kw):
            seen.append(world.store.acquire_submit_lease("intruder", 30.0))
            return self.inner.iter_tasks(**kw)

    assert reconcile_expired_leases(replace(world.deps, provider=Watching(world.provider))) == 1
    assert seen == [None]
    assert world.store.acquire_submit_lease("afterwards", 30.0) is not None


def test_one_jobs_reconciliation_error_does_not_stall_the_others(world):
    # Given two jobs whose creates had unknown outcomes
    a = waiting_job(world, "a", created_at=world.clock.now() - 2)
    b = waiting_job(world, "b", created_at=world.clock.now() - 1)
    world.provider.create_errors = [ProviderUnavailable("HTTP 500", status_code=500, maybe_created=True)]
    admit(world.deps, FLASH)
    world.provider.create_errors = [ProviderUnavailable("HTTP 500", status_code=500, maybe_created=True)]
    admit(world.deps, FLASH)
    assert {_status(world, a), _status(world, b)} == {JobStatus.SUBMITTING}
    # When the first reconciliation hits an unexpected error
    world.clock.advance(UNCERTAIN_RECHECK_S + 1)
    world.provider.list_errors = [RuntimeError("a bug")]
    assert reconcile_expired_leases(world.deps) == 2
    # Then that job is retried later, and the other was settled
    assert sorted([_status(world, a), _status(world, b)]) == [JobStatus.SUBMITTING, JobStatus.WAITING]
    [stuck] = [j for j in (a, b) if _status(world, j) is JobStatus.SUBMITTING]
    now = world.clock.now()
    assert world.store.due_jobs(DueKind.LEASE, now + RECONCILE_RETRY_S - 1) == []
    assert [j.job_id for j in world.store.due_jobs(DueKind.LEASE, now + RECONCILE_RETRY_S)] == [stuck.job_id]


def test_a_job_the_index_still_lists_for_reconciliation_but_that_moved_on_is_left_alone(world):
    job = submitted_job(world, "moved-on")

    class LaggingIndex(Wrapped):
        def due_jobs(self, kind, now, **kw):
            if kind is DueKind.LEASE:
                return [self.inner.get_job(job.job_id)]
            return self.inner.due_jobs(kind, now, **kw)

    assert reconcile_expired_leases(replace(world.deps, store=LaggingIndex(world.store))) == 0
    assert world.provider.list_calls == 0
    assert _status(world, job) is JobStatus.SUBMITTED


def test_nothing_is_reconciled_when_no_lease_ran_out(world):
    waiting_job(world, "fine")
    admit(world.deps, FLASH)
    assert reconcile_expired_leases(world.deps) == 0
    assert world.provider.list_calls == 0


# --- the request ------------------------------------------------------------------------------------


def test_base64_frame_transport_sends_the_frames_inline_as_data_uris():
    world = memory_world(settings_with(frame_transport="base64"))
    first, last = frame_png((1, 2, 3)), frame_png((4, 5, 6))
    job = waiting_job(world, "inline", frames={"first.png": first, "last.png": last})
    request = build_request(world.deps, job)
    assert request.first_frame_url == "data:image/png;base64," + base64.b64encode(first).decode()
    assert request.last_frame_url == "data:image/png;base64," + base64.b64encode(last).decode()


def test_url_frame_transport_sends_short_lived_links_to_the_inbox(world):
    settings = world.deps.settings
    job = waiting_job(world, "linked")
    request = build_request(world.deps, job)
    assert request.first_frame_url == world.blobs.presign_get(
        settings.inbox_bucket, "inbox/linked/first.png", settings.presign_ttl_s
    )
    assert (request.model, request.prompt, request.resolution) == (FLASH, "a slow pan across the bay", "720P")


def test_a_template_job_sends_no_prompt_and_no_last_frame(world):
    spec = JobSpec(model=PLUS, resolution="720P", prompt="the video follows the template", template="mech1")
    job = waiting_job(world, "effect", spec=spec, frames={"first.png": frame_png()})
    request = build_request(world.deps, job)
    assert (request.template, request.prompt, request.last_frame_url) == ("mech1", None, None)


def test_the_regions_own_model_name_is_sent():
    world = memory_world(settings_with(provider_region="ap-southeast-1"))
    job = waiting_job(world, "sg", spec=JobSpec(model=PLUS, resolution="720P", prompt="p"))
    assert build_request(world.deps, job).model == "wan2.1-kf2v-plus"


def test_a_job_without_a_spec_cannot_be_submitted(world):
    job = replace(waiting_job(world, "empty"), spec=None)
    with pytest.raises(ValueError, match="no spec"):
        build_request(world.deps, job)


class _DiesBeforeRecording(Wrapped):
    """A store whose record_task dies: the provider accepted the task, the function never wrote it down."""

    def record_task(self, task_id: str, job_id: str) -> None:
        raise RuntimeError("injected: died after the provider accepted the task")


class _UnknownOutcomeOnce(Wrapped):
    """The first create takes 0.3 s and ends in a 5xx: the task may or may not exist (here it does not)."""

    failures = 1

    def create_task(self, request):
        if self.failures:
            self.failures -= 1
            self.inner._clock.advance(0.3)
            raise ProviderUnavailable("500 InternalError", status_code=500, maybe_created=True)
        return self.inner.create_task(request)


def test_after_an_unknown_outcome_the_next_create_waits_until_that_jobs_window_has_closed(world):
    # Given a create with an unknown outcome, then another job's create that dies before its record
    a = waiting_job(world, "a")
    world.clock.advance(0.01)
    b = waiting_job(world, "b")
    deps = replace(world.deps, provider=_UnknownOutcomeOnce(world.provider))
    admit(deps, FLASH)
    assert world.store.get_job(a.job_id).status is JobStatus.SUBMITTING
    with pytest.raises(RuntimeError):
        admit(replace(deps, store=_DiesBeforeRecording(deps.store)), FLASH)
    (task_id,) = world.provider.created_at
    # Then b's create came after a's reconciliation window (its end, a margin, and b's own margin)
    uncertain_at = world.store.get_job(a.job_id).uncertain_at
    assert world.provider.created_at[task_id] >= uncertain_at + admission.WINDOW_SEPARATION_S
    # When both are reconciled once their leases ran out
    world.clock.advance(world.deps.timing.submit_lease_s + 1)
    reconcile_expired_leases(world.deps)
    # Then a (whose create made nothing) waits for a new submit, and b adopts its own task
    assert world.store.get_job(a.job_id).status is JobStatus.WAITING
    assert world.store.get_job(b.job_id).task_id == task_id
    assert world.store.job_for_task(task_id) == b.job_id


def test_after_a_holder_died_the_next_create_starts_after_that_jobs_window(world):
    # Given two jobs whose creates each die before their task is recorded, the second right after the
    # first holder's lease ran out
    a = waiting_job(world, "a")
    world.clock.advance(0.01)
    b = waiting_job(world, "b")
    dying = replace(world.deps, store=_DiesBeforeRecording(world.deps.store))
    for _ in (a, b):
        with pytest.raises(RuntimeError):
            admit(dying, FLASH)
        world.clock.advance(world.deps.timing.submit_lease_s + 0.01)
    # When both are reconciled
    world.clock.advance(5)
    reconcile_expired_leases(world.deps)
    reconcile_expired_leases(world.deps)
    # Then each adopts its own task: two tasks, two owners, nobody fails "NeedsAttention"
    jobs = [world.store.get_job(j.job_id) for j in (a, b)]
    assert [j.status for j in jobs] == [JobStatus.SUBMITTED, JobStatus.SUBMITTED]
    assert len({j.task_id for j in jobs}) == 2
    assert {world.store.job_for_task(j.task_id) for j in jobs} == {a.job_id, b.job_id}
