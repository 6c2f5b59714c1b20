"""One JobStore, one behaviour: every test here runs against the in-memory store the unit tests use and
against DynamoJobStore on moto (the table as template.yaml defines it). Where the two ever disagree, the
DynamoDB behaviour is the reference and the in-memory store is fixed."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace
from typing import Any

import pytest
from inbetween.aws.jobs_table import DynamoJobStore
from inbetween.domain.films import FILM_SETTABLE_FIELDS, FilmMode, FilmRun, FilmStatus, PendingShot, ShotRef
from inbetween.domain.models import (
    DeliveryState,
    DueKind,
    EarlyEvent,
    ErrorInfo,
    InputObject,
    Job,
    JobSpec,
    JobStatus,
    SubmitLease,
    Transition,
    WebhookAttempt,
    WebhookDelivery,
)
from inbetween.ports import JobStore
from inbetween_local.memory import InMemoryJobStore, ManualClock

FLASH = "wan2.2-kf2v-flash"
PLUS = "wanx2.1-kf2v-plus"
T0 = 1_800_000_000.0


@dataclass
class Subject:
    store: JobStore
    clock: ManualClock

    @property
    def now(self) -> float:
        return self.clock.now()


@pytest.fixture(params=["memory", "dynamodb"])
def subject(request) -> Subject:
    clock = ManualClock(T0)
    if request.param == "memory":
        return Subject(InMemoryJobStore(clock), clock)
    client = request.getfixturevalue("create_jobs_table")("jobs")
    return Subject(DynamoJobStore(client, "jobs", clock=clock.now), clock)


def a_job(
    name: str = "shot",
    status: JobStatus = JobStatus.WAITING,
    *,
    model: str = FLASH,
    at: float = T0,
    **kw: Any,
) -> Job:
    inputs = {
        "first": InputObject(f"inbox/{name}/first.png", "e1", 10),
        "last": InputObject(f"inbox/{name}/last.png", "e2", 20),
    }
    return Job(
        f"{name}/run", name, "run", status, JobSpec(model=model, resolution="720P"), inputs, at, at, **kw
    )


def every_field_job() -> Job:
    spec = JobSpec(
        model=PLUS,
        resolution="720P",
        prompt="a slow zoom",
        negative_prompt="blur",
        prompt_extend=False,
        watermark=True,
        seed=42,
        template="hanfu-1",
        webhook_url="https://hooks.test/in?x=1",
    )
    return Job(
        job_id="shot/0123456789ab",
        job_name="shot",
        run_id="0123456789ab",
        status=JobStatus.STORED,
        spec=spec,
        inputs={"first": InputObject("inbox/shot/first.png", "etag1", 12345)},
        created_at=T0 + 0.25,
        updated_at=T0 + 0.5,
        expected_size=(1280, 720),
        error=ErrorInfo("Code", "message", "hint", True, "req-1"),
        finished_at=T0 + 9.125,
        submit_started_at=T0 + 1.5,
        lease_holder="holder-1",
        submit_lane="a1b2c3d4e5f6",
        uncertain_at=T0 + 1.75,
        task_id="task-1",
        submitted_at=T0 + 2.0,
        provider_status="SUCCEEDED",
        running_since=T0 + 2.5,
        polls=3,
        video_url="https://dashscope-result.test/v.mp4",
        video_key="results/shot/0123456789ab/video.mp4",
        video_bytes=123_456,
        poster_key="results/shot/0123456789ab/poster.jpg",
        contact_sheet_key="results/shot/0123456789ab/contact-sheet.png",
        provider={"usage": {"SR": 720, "video_count": 1}, "end_ts": T0 + 8.5, "actual_prompt": "a zoom"},
        notified_at=T0 + 10.0,
        notify_claimed_until=T0 + 130.0,
        push_claim_until=T0 + 32.0,
        push_event_id="evt-1",
        push_received_at=T0 + 2.5,
        cancel_requested_at=T0 + 2.25,
        cancel_source="cli",
        cancel_answer="running",
        estimate_micros=3_000_000,
        spend_month="2027-01",
        cost_micros=3_669_620,
    )


def job_of(subject: Subject, job: Job) -> Job:
    found = subject.store.get_job(job.job_id)
    assert found is not None
    return found


def due_ids(subject: Subject, kind: DueKind, now: float, **kw: Any) -> list[str]:
    return [j.job_id for j in subject.store.due_jobs(kind, now, **kw)]


# ---------------------------------------------------------------------------------------------- the job record
def test_a_job_with_every_field_set_reads_back_as_written(subject):
    job = every_field_job()
    unset = [f.name for f in fields(Job) if getattr(job, f.name) in (None, {}, 0, "")]
    assert unset == [], "every_field_job() must set every Job field"
    assert Job.from_item(job.to_item()) == job
    assert subject.store.add_job(job)
    assert subject.store.get_job(job.job_id) == job


def test_an_unknown_job_is_none(subject):
    assert subject.store.get_job("nobody/run") is None


def test_add_job_is_idempotent_and_never_overwrites(subject):
    job = a_job()
    assert subject.store.add_job(job, due=(DueKind.ADMIT, T0))
    assert not subject.store.add_job(replace(job, status=JobStatus.REJECTED), due=(DueKind.NOTIFY, T0))
    assert job_of(subject, job) == job
    assert due_ids(subject, DueKind.ADMIT, T0, model=FLASH) == [job.job_id]
    assert due_ids(subject, DueKind.NOTIFY, T0 + 10**6) == []


def test_recent_jobs_are_newest_first_and_bounded(subject):
    for i in range(4):
        subject.store.add_job(a_job(f"j{i}", at=T0 + i))
    assert [j.job_name for j in subject.store.recent_jobs(limit=3)] == ["j3", "j2", "j1"]


# ---------------------------------------------------------------------------------------------- apply
def test_apply_moves_the_job_sets_and_removes_fields_adds_counters_and_stamps_the_time(subject):
    job = a_job(status=JobStatus.SUBMITTING, lease_holder="h", submit_started_at=T0)
    subject.store.add_job(job)
    subject.clock.advance(5)
    error = ErrorInfo("E", "m", "h")
    assert subject.store.apply(
        Transition.of(job.job_id, (JobStatus.WAITING, JobStatus.SUBMITTING), JobStatus.SUBMITTED)
        .set(
            task_id="t-1",
            lease_holder=None,
            expected_size=(832, 480),
            error=error,
            provider={"a": {"b": [1, "x"]}},
        )
        .add(polls=1)
    )
    assert subject.store.apply(Transition.of(job.job_id, JobStatus.SUBMITTED).add(polls=2))
    after = job_of(subject, job)
    assert (after.status, after.task_id, after.lease_holder, after.polls) == (
        JobStatus.SUBMITTED,
        "t-1",
        None,
        3,
    )
    assert (after.expected_size, after.error, after.provider) == ((832, 480), error, {"a": {"b": [1, "x"]}})
    assert after.submit_started_at == T0
    assert after.updated_at == T0 + 5


def test_apply_from_an_unexpected_status_changes_nothing(subject):
    job = a_job()
    subject.store.add_job(job, due=(DueKind.ADMIT, T0))
    subject.clock.advance(1)
    moved = subject.store.apply(
        Transition.of(job.job_id, JobStatus.SUBMITTING, JobStatus.SUBMITTED)
        .set(task_id="t")
        .schedule(DueKind.POLL, T0 + 60)
    )
    assert moved is False
    assert job_of(subject, job) == job
    assert due_ids(subject, DueKind.ADMIT, T0, model=FLASH) == [job.job_id]


def test_apply_to_an_unknown_job_is_false_and_creates_nothing(subject):
    assert not subject.store.apply(Transition.of("nobody/run", JobStatus.WAITING, JobStatus.SUBMITTING))
    assert subject.store.get_job("nobody/run") is None
    assert subject.store.recent_jobs() == []


def test_apply_schedules_and_moves_the_due_item_and_clear_due_removes_it(subject):
    job = a_job(status=JobStatus.SUBMITTED)
    subject.store.add_job(job)
    assert due_ids(subject, DueKind.POLL, T0 + 10**6) == []
    subject.store.apply(Transition.of(job.job_id, JobStatus.SUBMITTED).schedule(DueKind.POLL, T0 + 60))
    assert due_ids(subject, DueKind.POLL, T0 + 59) == []
    assert due_ids(subject, DueKind.POLL, T0 + 60) == [job.job_id]
    # a transition that says nothing of the due item leaves it
    subject.store.apply(Transition.of(job.job_id, JobStatus.SUBMITTED).set(provider_status="RUNNING"))
    assert subject.store.next_due_at(DueKind.POLL) == T0 + 60
    # another kind replaces it
    subject.store.apply(
        Transition.of(job.job_id, JobStatus.SUBMITTED, JobStatus.COMPLETING).schedule(
            DueKind.COMPLETE, T0 + 900
        )
    )
    assert subject.store.next_due_at(DueKind.POLL) is None
    assert due_ids(subject, DueKind.COMPLETE, T0 + 900) == [job.job_id]
    subject.store.clear_due(job.job_id)
    assert subject.store.next_due_at(DueKind.COMPLETE) is None
    assert job_of(subject, job).status is JobStatus.COMPLETING


def test_slots_are_taken_up_to_the_limit_with_the_jobs_move_and_given_back_with_it(subject):
    jobs = [a_job(f"j{i}", at=T0 + i) for i in range(3)]
    for job in jobs:
        subject.store.add_job(job, due=(DueKind.ADMIT, job.created_at))

    def take(job: Job) -> bool:
        return subject.store.apply(
            Transition.of(job.job_id, JobStatus.WAITING, JobStatus.SUBMITTING)
            .schedule(DueKind.LEASE, T0 + 90)
            .take_slot(FLASH, 2)
        )

    assert [take(j) for j in jobs] == [True, True, False]
    assert subject.store.slots_in_use(FLASH) == 2
    assert subject.store.slots_in_use(PLUS) == 0
    # the job whose slot was refused did not move, and still waits in line
    assert job_of(subject, jobs[2]) == jobs[2]
    assert due_ids(subject, DueKind.ADMIT, T0 + 10, model=FLASH) == [jobs[2].job_id]
    # giving one back frees it for the third
    assert subject.store.apply(
        Transition.of(jobs[0].job_id, JobStatus.SUBMITTING, JobStatus.WAITING)
        .schedule(DueKind.ADMIT, jobs[0].created_at, model=FLASH)
        .release_slot(FLASH)
    )
    assert subject.store.slots_in_use(FLASH) == 1
    assert take(jobs[2])
    assert subject.store.slots_in_use(FLASH) == 2


def test_a_slot_transaction_whose_job_condition_fails_leaves_the_slots_alone(subject):
    job = a_job(status=JobStatus.SUBMITTED)
    subject.store.add_job(job)
    taken = Transition.of(job.job_id, JobStatus.WAITING, JobStatus.SUBMITTING).take_slot(FLASH, 2)
    assert not subject.store.apply(taken)
    assert subject.store.slots_in_use(FLASH) == 0
    assert job_of(subject, job) == job


def test_a_slot_cannot_be_given_back_when_none_is_in_use_and_the_job_does_not_move(subject):
    job = a_job(status=JobStatus.SUBMITTED)
    subject.store.add_job(job, due=(DueKind.POLL, T0))
    released = (
        Transition.of(job.job_id, JobStatus.SUBMITTED, JobStatus.FAILED)
        .schedule(DueKind.NOTIFY, T0 + 120)
        .release_slot(FLASH)
    )
    assert not subject.store.apply(released)
    assert subject.store.slots_in_use(FLASH) == 0
    assert job_of(subject, job) == job
    assert due_ids(subject, DueKind.POLL, T0) == [job.job_id]


def test_concurrent_takers_never_exceed_the_limit_in_memory():
    # Memory only: moto runs conditional writes and transactions without any lock, so threads race
    # through its condition checks (DynamoDB itself serialises them). The in-memory store must not,
    # or the unit tests of concurrent claims would prove nothing.
    store = InMemoryJobStore(ManualClock(T0))
    jobs = [a_job(f"j{i}") for i in range(8)]
    for job in jobs:
        store.add_job(job)
    results: list[bool] = []
    barrier = threading.Barrier(len(jobs))

    def take(job: Job) -> None:
        barrier.wait()
        results.append(
            store.apply(
                Transition.of(job.job_id, JobStatus.WAITING, JobStatus.SUBMITTING).take_slot(FLASH, 2)
            )
        )

    threads = [threading.Thread(target=take, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [False] * 6 + [True] * 2
    assert store.slots_in_use(FLASH) == 2
    assert sum(store.get_job(j.job_id).status is JobStatus.SUBMITTING for j in jobs) == 2


@pytest.mark.parametrize(
    ("claim", "applies"),
    [(None, True), (T0 - 1, True), (T0, False), (T0 + 30, False)],
    ids=["no-claim", "claim-expired", "claim-ends-now", "claim-held"],
)
def test_a_transition_unless_push_claimed_waits_for_the_claim_to_run_out(subject, claim, applies):
    job = a_job(status=JobStatus.SUBMITTED, push_claim_until=claim)
    subject.store.add_job(job)
    tr = Transition.of(job.job_id, JobStatus.SUBMITTED).set(provider_status="RUNNING").unless_push_claimed(T0)
    assert subject.store.apply(tr) is applies
    assert (job_of(subject, job).provider_status == "RUNNING") is applies


# ---------------------------------------------------------------------------------------------- the due index
def test_due_jobs_are_oldest_due_first_bounded_and_of_one_kind(subject):
    for name, at in (("c", T0 + 3), ("a", T0 + 1), ("d", T0 + 4), ("b", T0 + 2)):
        subject.store.add_job(a_job(name, JobStatus.SUBMITTED), due=(DueKind.POLL, at))
    subject.store.add_job(a_job("other", JobStatus.COMPLETING), due=(DueKind.COMPLETE, T0))
    assert due_ids(subject, DueKind.POLL, T0 + 3) == ["a/run", "b/run", "c/run"]
    assert due_ids(subject, DueKind.POLL, T0 + 10, limit=2) == ["a/run", "b/run"]
    assert due_ids(subject, DueKind.POLL, T0 + 0.5) == []
    assert subject.store.next_due_at(DueKind.POLL) == T0 + 1
    assert subject.store.next_due_at(DueKind.COMPLETE) == T0
    assert subject.store.next_due_at(DueKind.LEASE) is None


def test_waiting_jobs_queue_per_model_in_arrival_order(subject):
    for name, model, at in (
        ("f2", FLASH, T0 + 2),
        ("p1", PLUS, T0 + 1),
        ("f1", FLASH, T0 + 1),
        ("p2", PLUS, T0 + 3),
    ):
        subject.store.add_job(a_job(name, model=model, at=at), due=(DueKind.ADMIT, at))
    assert due_ids(subject, DueKind.ADMIT, T0 + 10, model=FLASH) == ["f1/run", "f2/run"]
    assert due_ids(subject, DueKind.ADMIT, T0 + 10, model=PLUS) == ["p1/run", "p2/run"]
    assert due_ids(subject, DueKind.ADMIT, T0 + 10, model=PLUS, limit=1) == ["p1/run"]


def test_due_times_are_kept_to_the_millisecond(subject):
    subject.store.add_job(a_job("a", JobStatus.SUBMITTED), due=(DueKind.POLL, T0 + 1.0004))
    assert subject.store.next_due_at(DueKind.POLL) == T0 + 1.0
    assert due_ids(subject, DueKind.POLL, T0 + 1.0) == ["a/run"]


def test_postpone_moves_a_due_item_only_while_it_is_due_for_that_kind(subject):
    job = a_job(status=JobStatus.SUBMITTED)
    subject.store.add_job(job, due=(DueKind.POLL, T0))
    assert not subject.store.postpone(job.job_id, DueKind.COMPLETE, T0 + 100)
    assert due_ids(subject, DueKind.POLL, T0) == [job.job_id]
    assert subject.store.next_due_at(DueKind.COMPLETE) is None
    assert subject.store.postpone(job.job_id, DueKind.POLL, T0 + 100)
    assert subject.store.next_due_at(DueKind.POLL) == T0 + 100
    assert not subject.store.postpone("nobody/run", DueKind.POLL, T0)
    assert subject.store.get_job("nobody/run") is None
    subject.store.clear_due(job.job_id)
    assert subject.store.next_due_at(DueKind.POLL) is None
    assert not subject.store.postpone(job.job_id, DueKind.POLL, T0)
    assert job_of(subject, job) == job
    subject.store.clear_due("nobody/run")  # harmless
    assert subject.store.get_job("nobody/run") is None


# ---------------------------------------------------------------------------------------------- notification claims
def test_a_notification_is_claimed_by_one_until_the_claim_runs_out_and_never_after_it_is_sent(subject):
    job = a_job(status=JobStatus.FAILED)
    subject.store.add_job(job, due=(DueKind.NOTIFY, T0 + 120))
    assert subject.store.claim_notification(job.job_id, now=T0, until=T0 + 120)
    assert not subject.store.claim_notification(job.job_id, now=T0 + 60, until=T0 + 180)
    assert not subject.store.claim_notification(job.job_id, now=T0 + 120, until=T0 + 240)
    assert subject.store.claim_notification(job.job_id, now=T0 + 121, until=T0 + 241)
    assert job_of(subject, job).notify_claimed_until == T0 + 241
    subject.store.mark_notified(job.job_id, T0 + 122)
    assert job_of(subject, job).notified_at == T0 + 122
    assert subject.store.next_due_at(DueKind.NOTIFY) is None
    assert not subject.store.claim_notification(job.job_id, now=T0 + 1000, until=T0 + 1120)
    subject.store.mark_notified(job.job_id, T0 + 500)  # a second mark keeps the first time
    assert job_of(subject, job).notified_at == T0 + 122


def test_an_unknown_job_cannot_be_claimed_or_marked(subject):
    assert not subject.store.claim_notification("nobody/run", now=T0, until=T0 + 1)
    subject.store.mark_notified("nobody/run", T0)
    assert subject.store.get_job("nobody/run") is None


# ---------------------------------------------------------------------------------------------- tasks
def test_a_recorded_task_names_its_job(subject):
    assert subject.store.job_for_task("t-1") is None
    subject.store.record_task("t-1", "shot/run")
    subject.store.record_task("t-2", "other/run")
    assert (subject.store.job_for_task("t-1"), subject.store.job_for_task("t-2")) == ("shot/run", "other/run")
    assert subject.store.recent_jobs() == []  # task records are not jobs


# ---------------------------------------------------------------------------------------------- the submit lease
def test_the_submit_lease_has_one_holder_until_released_or_expired(subject):
    lease = subject.store.acquire_submit_lease("a", 90)
    assert lease == SubmitLease("a", T0 + 90, 0.0)
    assert subject.store.acquire_submit_lease("b", 90) is None
    assert subject.store.acquire_submit_lease("a", 90) is None  # not re-entrant either
    subject.clock.advance(30)
    assert subject.store.extend_submit_lease("a", 90, next_submit_at=T0 + 31)
    assert not subject.store.extend_submit_lease("b", 90)
    subject.store.release_submit_lease("b")  # not b's to release
    assert subject.store.acquire_submit_lease("b", 90) is None
    subject.store.release_submit_lease("a")
    assert not subject.store.extend_submit_lease("a", 90)
    # the next holder learns when the next create may be sent
    assert subject.store.acquire_submit_lease("b", 60) == SubmitLease("b", T0 + 90, T0 + 31)


def test_an_expired_submit_lease_passes_to_the_next_holder(subject):
    subject.store.acquire_submit_lease("a", 90)
    subject.clock.advance(90)
    assert subject.store.acquire_submit_lease("b", 90) is None  # expires only after its last instant
    subject.clock.advance(0.5)
    # the new holder learns until when the one that never released it may have been creating
    assert subject.store.acquire_submit_lease("b", 90) == SubmitLease(
        "b", T0 + 180.5, 0.0, expired_until=T0 + 90
    )
    assert not subject.store.extend_submit_lease("a", 90)  # the old holder lost it
    subject.store.release_submit_lease("a")
    assert subject.store.acquire_submit_lease("c", 90) is None


def test_each_submit_lane_has_a_lease_of_its_own_and_the_accounts_is_the_one_it_always_was(subject):
    # the account's lane and two keys' lanes are held at once, each by its own holder
    assert subject.store.acquire_submit_lease("a", 90) is not None
    assert subject.store.acquire_submit_lease("b", 90, lane="ref-one") == SubmitLease(
        "b", T0 + 90, 0.0, lane="ref-one"
    )
    assert subject.store.acquire_submit_lease("c", 90, lane="ref-two") is not None
    assert subject.store.acquire_submit_lease("d", 90, lane="ref-one") is None
    # each lane keeps its own next create time
    assert subject.store.extend_submit_lease("b", 90, next_submit_at=T0 + 5, lane="ref-one")
    assert not subject.store.extend_submit_lease("b", 90, next_submit_at=T0 + 5)  # not b's lane
    subject.store.release_submit_lease("b", lane="ref-one")
    subject.store.release_submit_lease("a")
    assert subject.store.acquire_submit_lease("e", 90, lane="ref-one") == SubmitLease(
        "e", T0 + 90, T0 + 5, lane="ref-one"
    )
    assert subject.store.acquire_submit_lease("f", 90) == SubmitLease("f", T0 + 90, 0.0)


def test_a_lanes_api_key_id_is_kept_on_its_lease_and_read_with_it(subject):
    lease = subject.store.acquire_submit_lease("a", 90, lane="ref-one")
    assert lease is not None and lease.api_key_id is None
    subject.store.remember_api_key_id("1250", lane="ref-one")
    subject.store.release_submit_lease("a", lane="ref-one")
    assert subject.store.acquire_submit_lease("b", 90, lane="ref-one") == SubmitLease(
        "b", T0 + 90, 0.0, lane="ref-one", api_key_id="1250"
    )
    other = subject.store.acquire_submit_lease("c", 90, lane="ref-two")
    assert other is not None and other.api_key_id is None
    assert subject.store.recent_jobs() == []  # not a job


# ---------------------------------------------------------------------------------------------- incomplete drops
def test_incomplete_drops_are_noted_once_and_come_due_when_their_time_is_up(subject):
    assert subject.store.note_incomplete_drop("half", first_seen=T0, settle_by=T0 + 900)
    assert not subject.store.note_incomplete_drop("half", first_seen=T0 + 5, settle_by=T0 + 905)
    assert subject.store.note_incomplete_drop("other", first_seen=T0, settle_by=T0 + 800)
    assert subject.store.overdue_drops(T0 + 899) == ["other"]
    assert subject.store.overdue_drops(T0 + 900) == ["other", "half"]
    assert subject.store.overdue_drops(T0 + 900, limit=1) == ["other"]
    subject.store.forget_drop("other")
    subject.store.forget_drop("never-noted")
    assert subject.store.overdue_drops(T0 + 10**6) == ["half"]
    assert subject.store.note_incomplete_drop("other", first_seen=T0 + 1000, settle_by=T0 + 1900)
    assert subject.store.overdue_drops(T0 + 1000) == ["half"]
    assert subject.store.get_job("half") is None and subject.store.recent_jobs() == []


# ---------------------------------------------------------------------------------------------- webhook deliveries
def a_delivery(delivery_id: str = "msg_1", **kw: Any) -> WebhookDelivery:
    return WebhookDelivery(delivery_id, "shot/run", "https://hooks.test/in", '{"type":"x"}', T0, **kw)


def test_a_webhook_delivery_is_added_once_and_reads_back_with_its_next_attempt(subject):
    delivery = a_delivery(next_attempt_at=T0 + 300)
    assert subject.store.add_webhook_delivery(delivery)
    assert not subject.store.add_webhook_delivery(replace(delivery, url="https://elsewhere.test/"))
    assert subject.store.get_webhook_delivery("msg_1") == delivery
    assert subject.store.get_webhook_delivery("msg_nobody") is None
    assert subject.store.due_webhook_deliveries(T0 + 299) == []
    assert subject.store.due_webhook_deliveries(T0 + 300) == ["msg_1"]


def test_a_delivery_without_a_next_attempt_is_never_due(subject):
    subject.store.add_webhook_delivery(a_delivery())
    assert subject.store.get_webhook_delivery("msg_1").next_attempt_at is None
    assert subject.store.due_webhook_deliveries(T0 + 10**6) == []


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (
            WebhookAttempt(
                DeliveryState.PENDING, T0 + 1, status=503, error="HTTP 503", next_attempt_at=T0 + 6
            ),
            {
                "state": DeliveryState.PENDING,
                "attempts": 1,
                "last_status": 503,
                "last_error": "HTTP 503",
                "delivered_at": None,
                "next_attempt_at": T0 + 6,
            },
        ),
        (
            WebhookAttempt(DeliveryState.DELIVERED, T0 + 1, status=204),
            {
                "state": DeliveryState.DELIVERED,
                "attempts": 1,
                "last_status": 204,
                "last_error": None,
                "delivered_at": T0 + 1,
                "next_attempt_at": None,
            },
        ),
        (
            WebhookAttempt(DeliveryState.GONE, T0 + 1, status=410),
            {
                "state": DeliveryState.GONE,
                "attempts": 1,
                "last_status": 410,
                "last_error": None,
                "delivered_at": None,
                "next_attempt_at": None,
            },
        ),
        (
            WebhookAttempt(DeliveryState.EXHAUSTED, T0 + 1, status=500, error="HTTP 500"),
            {
                "state": DeliveryState.EXHAUSTED,
                "attempts": 1,
                "last_status": 500,
                "last_error": "HTTP 500",
                "delivered_at": None,
                "next_attempt_at": None,
            },
        ),
        (
            WebhookAttempt(DeliveryState.REFUSED, T0 + 1, counted=False, error="refused"),
            {
                "state": DeliveryState.REFUSED,
                "attempts": 0,
                "last_status": None,
                "last_error": "refused",
                "delivered_at": None,
                "next_attempt_at": None,
            },
        ),
    ],
    ids=[
        s.value
        for s in (
            DeliveryState.PENDING,
            DeliveryState.DELIVERED,
            DeliveryState.GONE,
            DeliveryState.EXHAUSTED,
            DeliveryState.REFUSED,
        )
    ],
)
def test_an_attempt_records_its_state_and_moves_or_removes_the_next_one(subject, attempt, expected):
    subject.store.add_webhook_delivery(a_delivery(next_attempt_at=T0 + 300))
    subject.store.record_webhook_attempt("msg_1", attempt)
    d = subject.store.get_webhook_delivery("msg_1")
    got = {name: getattr(d, name) for name in expected}
    assert got == expected
    assert subject.store.due_webhook_deliveries(T0 + 10**6) == (
        ["msg_1"] if expected["next_attempt_at"] else []
    )


def test_attempts_count_up_and_keep_the_last_answer_when_an_attempt_has_none(subject):
    subject.store.add_webhook_delivery(a_delivery(next_attempt_at=T0))
    subject.store.record_webhook_attempt(
        "msg_1",
        WebhookAttempt(DeliveryState.PENDING, T0, status=503, error="HTTP 503", next_attempt_at=T0 + 5),
    )
    subject.store.record_webhook_attempt(
        "msg_1", WebhookAttempt(DeliveryState.PENDING, T0 + 5, error="timed out", next_attempt_at=T0 + 300)
    )
    d = subject.store.get_webhook_delivery("msg_1")
    assert (d.attempts, d.last_status, d.last_error, d.next_attempt_at) == (2, 503, "timed out", T0 + 300)
    subject.store.record_webhook_attempt(
        "msg_1", WebhookAttempt(DeliveryState.REFUSED, T0 + 300, counted=False)
    )
    d = subject.store.get_webhook_delivery("msg_1")
    assert (d.state, d.attempts, d.last_status, d.last_error) == (DeliveryState.REFUSED, 2, 503, "timed out")


def test_due_deliveries_are_oldest_first_and_can_be_postponed(subject):
    for delivery_id, at in (("msg_b", T0 + 2), ("msg_a", T0 + 1), ("msg_c", T0 + 3)):
        subject.store.add_webhook_delivery(a_delivery(delivery_id, next_attempt_at=at))
    assert subject.store.due_webhook_deliveries(T0 + 5) == ["msg_a", "msg_b", "msg_c"]
    assert subject.store.due_webhook_deliveries(T0 + 5, limit=2) == ["msg_a", "msg_b"]
    subject.store.postpone_webhook_delivery("msg_a", T0 + 300)
    assert subject.store.due_webhook_deliveries(T0 + 5) == ["msg_b", "msg_c"]
    assert subject.store.get_webhook_delivery("msg_a").next_attempt_at == T0 + 300
    subject.store.postpone_webhook_delivery("msg_nobody", T0)
    assert subject.store.get_webhook_delivery("msg_nobody") is None
    assert subject.store.due_webhook_deliveries(T0 + 5) == ["msg_b", "msg_c"]


def test_a_delivery_that_ended_can_be_postponed_back_into_the_index(subject):
    # the poller's hand-over postpones whatever it found due; a delivery that ended meanwhile comes
    # due again and its attempt finds it not pending (nothing to do): both stores must allow this
    subject.store.add_webhook_delivery(a_delivery(next_attempt_at=T0))
    subject.store.record_webhook_attempt("msg_1", WebhookAttempt(DeliveryState.DELIVERED, T0, status=200))
    subject.store.postpone_webhook_delivery("msg_1", T0 + 300)
    d = subject.store.get_webhook_delivery("msg_1")
    assert (d.state, d.next_attempt_at) == (DeliveryState.DELIVERED, T0 + 300)


# ---------------------------------------------------------------------------------------------- early push events
def test_an_early_event_is_noted_once_rechecked_and_forgotten(subject):
    hint = EarlyEvent("t-1", received_at=T0 + 0.25, recheck_at=T0 + 5, expires_at=T0 + 1800)
    assert subject.store.note_early_event(hint)
    assert not subject.store.note_early_event(replace(hint, received_at=T0 + 10))
    assert subject.store.note_early_event(EarlyEvent("t-2", T0, T0 + 4, T0 + 1800))
    assert subject.store.due_early_events(T0 + 3.999) == []
    assert [e.task_id for e in subject.store.due_early_events(T0 + 5)] == ["t-2", "t-1"]
    assert subject.store.due_early_events(T0 + 5, limit=1)[0].task_id == "t-2"
    assert subject.store.due_early_events(T0 + 5)[1] == hint
    subject.store.recheck_early_event("t-1", T0 + 10)
    assert [e.task_id for e in subject.store.due_early_events(T0 + 9)] == ["t-2"]
    assert subject.store.due_early_events(T0 + 10)[1] == replace(hint, recheck_at=T0 + 10)
    subject.store.forget_early_event("t-2")
    subject.store.recheck_early_event("t-2", T0)  # forgotten: stays forgotten
    subject.store.forget_early_event("t-never")
    assert [e.task_id for e in subject.store.due_early_events(T0 + 10**6)] == ["t-1"]


def test_an_early_events_expiry_is_kept_in_whole_seconds(subject):
    # expires_at is the table's TTL attribute: DynamoDB's TTL takes whole epoch seconds
    subject.store.note_early_event(EarlyEvent("t-1", T0, T0, T0 + 1800.75))
    assert subject.store.due_early_events(T0)[0].expires_at == T0 + 1800


def test_an_attempt_recorded_for_an_unknown_delivery_creates_nothing(subject):
    subject.store.record_webhook_attempt(
        "msg_unknown", WebhookAttempt(state=DeliveryState.PENDING, at=T0, next_attempt_at=T0 + 5)
    )
    assert subject.store.get_webhook_delivery("msg_unknown") is None
    assert subject.store.due_webhook_deliveries(T0 + 10) == []


def test_a_waiting_job_is_never_postponed(subject):
    with pytest.raises(ValueError, match="keeps its place"):
        subject.store.postpone("any", DueKind.ADMIT, T0)


# ---------------------------------------------------------------------------------------------- film runs
RUN = "reel/0123456789ab"


def a_run(run_id: str = RUN, status: FilmStatus = FilmStatus.RUNNING, **kw: Any) -> FilmRun:
    film = run_id.split("/", 1)[0]
    shots = (ShotRef(1, 1, 2, f"{film}~s1/aaaa"), ShotRef(2, 2, 5, f"{film}~s2/bbbb"))
    return FilmRun(run_id, film, status, shots, T0, T0, **kw)


def every_field_run() -> FilmRun:
    return FilmRun(
        run_id=RUN,
        film="reel",
        status=FilmStatus.FAILED,
        shots=(
            ShotRef(1, 1, 2, "reel~01/abc"),
            ShotRef(
                2,
                2,
                7,
                "reel~02/def",
                PendingShot(
                    JobSpec(model="wan2.7-i2v", resolution="720P", duration=7, prompt="on"),
                    InputObject(key="inbox/reel/07.png", etag="e7", size=99),
                ),
            ),
        ),
        created_at=T0 + 0.25,
        updated_at=T0 + 0.5,
        seam=6,
        mode=FilmMode.CONTINUE,
        shot_events=True,
        webhook_url="https://hooks.test/film?x=1",
        keyframes=("inbox/reel/01.png", "inbox/reel/02.png", "inbox/reel/07.png"),
        size=(1104, 816),
        error=ErrorInfo("ShotFailed", "shot 2 failed", "fix it", False, "req-9", "shots.2"),
        finished_at=T0 + 30.125,
        video_key="results/reel/0123456789ab/film.mp4",
        video_bytes=987_654,
        frames=241,
        duration_s=10.041,
        notified_at=T0 + 31.0,
        notify_claimed_until=T0 + 151.0,
        cancel_requested_at=T0 + 12.5,
        cancel_source="inbox",
    )


def run_of(subject: Subject, run_id: str = RUN) -> FilmRun:
    found = subject.store.get_film_run(run_id)
    assert found is not None
    return found


def test_a_film_run_with_every_field_set_reads_back_as_written(subject):
    run = every_field_run()
    defaults = FilmRun("", "", FilmStatus.RUNNING, (), 0.0, 0.0)
    same = [f.name for f in fields(FilmRun) if getattr(run, f.name) == getattr(defaults, f.name)]
    assert same == [], "every_field_run() must set every FilmRun field"
    assert FilmRun.from_item(run.to_item()) == run
    assert subject.store.add_film_run(run)
    assert subject.store.get_film_run(RUN) == run
    assert subject.store.due_film_runs(T0 + 10**6) == []  # added without a due time


def test_an_unknown_film_run_is_none_and_not_a_job(subject):
    assert subject.store.get_film_run("nobody/0") is None
    subject.store.add_film_run(a_run(), due_at=T0)
    assert subject.store.recent_jobs() == []
    assert subject.store.get_job(RUN) is None
    assert due_ids(subject, DueKind.NOTIFY, T0 + 10**6) == []


def test_add_film_run_is_idempotent_and_never_overwrites(subject):
    run = a_run()
    assert subject.store.add_film_run(run, due_at=T0 + 300)
    assert not subject.store.add_film_run(replace(run, status=FilmStatus.REJECTED), due_at=T0)
    assert run_of(subject) == run
    assert subject.store.due_film_runs(T0 + 299) == []
    assert subject.store.due_film_runs(T0 + 300) == [RUN]
    assert subject.store.next_due_at(DueKind.FILM) == T0 + 300


def test_move_film_run_from_the_expected_status_sets_changes_the_time_and_the_due(subject):
    subject.store.add_film_run(a_run(), due_at=T0 + 300)
    subject.clock.advance(5)
    error = ErrorInfo("ShotFailed", "shot 1 failed", "fix it", field="shots.1")
    assert subject.store.move_film_run(
        RUN,
        FilmStatus.RUNNING,
        FilmStatus.FAILED,
        due_at=T0 + 125,
        error=error,
        finished_at=T0 + 5,
        keyframes=("inbox/reel/01.png", "inbox/reel/02.png"),
        mode=FilmMode.CONTINUE,
        frames=120,
    )
    after = run_of(subject)
    assert (after.status, after.error, after.finished_at, after.updated_at) == (
        FilmStatus.FAILED,
        error,
        T0 + 5,
        T0 + 5,
    )
    assert (after.keyframes, after.mode, after.frames) == (
        ("inbox/reel/01.png", "inbox/reel/02.png"),
        FilmMode.CONTINUE,
        120,
    )
    assert (after.shots, after.created_at, after.film) == (a_run().shots, T0, "reel")
    assert subject.store.due_film_runs(T0 + 124) == []
    assert subject.store.due_film_runs(T0 + 125) == [RUN]


def test_move_film_run_from_another_status_or_of_an_unknown_run_changes_nothing(subject):
    run = a_run(status=FilmStatus.STITCHING)
    subject.store.add_film_run(run, due_at=T0 + 1200)
    subject.clock.advance(1)
    assert not subject.store.move_film_run(
        RUN, FilmStatus.RUNNING, FilmStatus.FAILED, due_at=T0, finished_at=T0 + 1
    )
    assert not subject.store.move_film_run(RUN, FilmStatus.RUNNING, FilmStatus.STITCHING)  # due None
    assert run_of(subject) == run
    assert subject.store.due_film_runs(T0 + 1200) == [RUN]
    assert not subject.store.move_film_run("nobody/0", FilmStatus.RUNNING, FilmStatus.FAILED, due_at=T0)
    assert subject.store.get_film_run("nobody/0") is None
    assert subject.store.due_film_runs(T0 + 10**6) == [RUN]


@pytest.mark.parametrize("name", ["status", "shots", "film", "updated_at", "no_such_field"])
def test_move_film_run_refuses_a_field_it_may_not_set_before_writing(subject, name):
    assert name not in FILM_SETTABLE_FIELDS
    run = a_run()
    subject.store.add_film_run(run, due_at=T0 + 300)
    subject.clock.advance(1)
    with pytest.raises(ValueError, match=name):
        subject.store.move_film_run(
            RUN, FilmStatus.RUNNING, FilmStatus.FAILED, due_at=T0, finished_at=T0 + 1, **{name: "x"}
        )
    assert run_of(subject) == run
    assert subject.store.due_film_runs(T0 + 300) == [RUN]


def test_a_change_of_none_removes_the_field_and_a_due_of_none_leaves_the_index(subject):
    run = a_run(video_key="results/reel/x/film.mp4", webhook_url="https://hooks.test/f", frames=10)
    subject.store.add_film_run(run, due_at=T0 + 1)
    assert subject.store.move_film_run(
        RUN, FilmStatus.RUNNING, FilmStatus.RUNNING, video_key=None, frames=None, seam=3
    )
    after = run_of(subject)
    assert (after.video_key, after.frames, after.seam, after.webhook_url) == (
        None,
        None,
        3,
        "https://hooks.test/f",
    )
    assert subject.store.due_film_runs(T0 + 10**6) == []
    assert subject.store.next_due_at(DueKind.FILM) is None


def test_due_film_runs_are_oldest_due_first_bounded_and_postponed(subject):
    for run_id, at in (("b/1", T0 + 2), ("a/1", T0 + 1), ("c/1", T0 + 3), ("d/1", T0 + 60)):
        subject.store.add_film_run(a_run(run_id), due_at=at)
    subject.store.add_webhook_delivery(a_delivery("msg_x", next_attempt_at=T0))  # another due kind
    subject.store.add_job(a_job(status=JobStatus.SUBMITTED), due=(DueKind.POLL, T0))
    assert subject.store.due_film_runs(T0 + 5) == ["a/1", "b/1", "c/1"]
    assert subject.store.due_film_runs(T0 + 5, limit=2) == ["a/1", "b/1"]
    subject.store.postpone_film_run("a/1", T0 + 300)
    assert subject.store.due_film_runs(T0 + 5) == ["b/1", "c/1"]
    assert subject.store.due_film_runs(T0 + 300) == ["b/1", "c/1", "d/1", "a/1"]
    subject.store.postpone_film_run("nobody/0", T0)  # an unknown run stays unknown
    assert subject.store.get_film_run("nobody/0") is None
    assert subject.store.due_film_runs(T0 + 5) == ["b/1", "c/1"]


def test_a_film_run_added_without_a_due_time_can_be_postponed_into_the_index(subject):
    subject.store.add_film_run(a_run())
    subject.store.postpone_film_run(RUN, T0 + 10.0015)
    assert subject.store.due_film_runs(T0 + 10) == []
    assert subject.store.due_film_runs(T0 + 10.001) == [RUN]
    assert subject.store.next_due_at(DueKind.FILM) == T0 + 10.001  # whole milliseconds, as for jobs


def test_a_film_notification_is_claimed_once_until_the_claim_runs_out_and_never_after_it_is_sent(subject):
    subject.store.add_film_run(a_run(status=FilmStatus.STORED), due_at=T0 + 120)
    assert subject.store.claim_film_notification(RUN, now=T0, until=T0 + 120)
    assert not subject.store.claim_film_notification(RUN, now=T0 + 60, until=T0 + 180)
    assert not subject.store.claim_film_notification(RUN, now=T0 + 120, until=T0 + 240)
    assert subject.store.claim_film_notification(RUN, now=T0 + 121, until=T0 + 241)
    assert run_of(subject).notify_claimed_until == T0 + 241
    subject.store.mark_film_notified(RUN, T0 + 122)
    assert run_of(subject).notified_at == T0 + 122
    assert subject.store.due_film_runs(T0 + 10**6) == []
    assert not subject.store.claim_film_notification(RUN, now=T0 + 1000, until=T0 + 1120)
    subject.store.mark_film_notified(RUN, T0 + 500)  # a second mark keeps the first time
    assert run_of(subject).notified_at == T0 + 122
    assert run_of(subject).status is FilmStatus.STORED


def test_an_unknown_film_run_cannot_be_claimed_or_marked(subject):
    assert not subject.store.claim_film_notification("nobody/0", now=T0, until=T0 + 1)
    subject.store.mark_film_notified("nobody/0", T0)
    assert subject.store.get_film_run("nobody/0") is None
    assert subject.store.due_film_runs(T0 + 10**6) == []


def test_link_shot_adds_a_run_once_however_often_and_leaves_the_job_alone(subject):
    job = a_job(status=JobStatus.SUBMITTED, task_id="t-1")
    subject.store.add_job(job, due=(DueKind.POLL, T0 + 15))
    subject.clock.advance(5)
    assert subject.store.link_shot(job.job_id, "reel/aaa")
    assert subject.store.link_shot(job.job_id, "reel/aaa")
    assert subject.store.link_shot(job.job_id, "reel/bbb")
    assert subject.store.link_shot(job.job_id, "reel/aaa")
    after = job_of(subject, job)
    assert after.film_runs == ("reel/aaa", "reel/bbb")
    assert replace(after, film_runs=()) == job  # updated_at included: linking is not a transition
    assert due_ids(subject, DueKind.POLL, T0 + 15) == [job.job_id]


def test_link_shot_to_an_unknown_job_is_false_and_creates_nothing(subject):
    assert not subject.store.link_shot("nobody/run", "reel/aaa")
    assert not subject.store.link_shot("nobody/run", "reel/aaa")
    assert subject.store.get_job("nobody/run") is None
    assert subject.store.recent_jobs() == []


def test_concurrent_link_shots_leave_the_run_once(subject):
    job = a_job()
    subject.store.add_job(job)
    results: list[bool] = []
    runs = ["reel/aaa", "reel/bbb", "reel/aaa", "reel/bbb", "reel/aaa", "reel/ccc"] * 2
    threads = [
        threading.Thread(target=lambda r=r: results.append(subject.store.link_shot(job.job_id, r)))
        for r in runs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * len(runs)
    assert sorted(job_of(subject, job).film_runs) == ["reel/aaa", "reel/bbb", "reel/ccc"]


# ---------------------------------------------------------------------------------------------- open runs
def test_open_runs_are_noted_once_forgotten_one_by_one_and_per_folder(subject):
    # Given two runs of one folder noted (one twice: a duplicate event) and one of a namesake's
    for folder, run_id in [
        ("reel", "reel/aaa"),
        ("reel", "reel/bbb"),
        ("reel", "reel/aaa"),
        ("reel-2", "reel-2/c"),
    ]:
        subject.store.note_open_run(folder, run_id)
    assert subject.store.open_runs("reel") == ["reel/aaa", "reel/bbb"]
    # When one ends (twice: forgetting is idempotent)
    subject.store.forget_open_run("reel", "reel/aaa")
    subject.store.forget_open_run("reel", "reel/aaa")
    # Then the other is still there, and the namesake's folder is untouched
    assert subject.store.open_runs("reel") == ["reel/bbb"]
    assert subject.store.open_runs("reel-2") == ["reel-2/c"]
    subject.store.forget_open_run("reel", "reel/bbb")
    assert subject.store.open_runs("reel") == []
    # and forgetting in a folder never noted creates nothing, nor is it an error
    subject.store.forget_open_run("never", "never/x")
    assert subject.store.open_runs("never") == []


def test_recent_film_runs_are_one_films_newest_first_and_not_a_namesakes(subject):
    for i, (film, at) in enumerate([("reel", 1.0), ("reel", 3.0), ("reel-2", 2.0), ("other", 4.0)]):
        subject.store.add_film_run(replace(a_run(f"{film}/{i:012d}"), created_at=T0 + at))
    assert [r.run_id for r in subject.store.recent_film_runs("reel")] == [
        "reel/000000000001",
        "reel/000000000000",
    ]
    assert [r.film for r in subject.store.recent_film_runs(limit=2)] == ["other", "reel"]
    assert subject.store.recent_film_runs("nobody") == []
    subject.store.add_job(a_job("reel"))
    assert len(subject.store.recent_film_runs()) == 4  # jobs are not film runs


def test_a_continued_shots_input_in_the_output_bucket_keeps_its_bucket(subject):
    tail = InputObject(key="results/reel/shot-1/tail.mp4", etag="t1", size=4096, bucket="out-bucket")
    last = InputObject(key="inbox/reel/03.png", etag="e3", size=99)
    job = replace(a_job("reel"), inputs={"first_clip": tail, "last": last})
    assert subject.store.add_job(job)
    stored = subject.store.get_job(job.job_id)
    assert stored.inputs == {"first_clip": tail, "last": last}
    assert stored.inputs["last"].bucket is None  # the inbox
