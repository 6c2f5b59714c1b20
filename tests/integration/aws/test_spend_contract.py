"""The month's spend and the budget, as both job stores keep them (moto's DynamoDB and the in-memory
fake held to the same tests): an estimate committed with the job's admission or not at all, settled once,
the month's ``budget.reached`` mark taken once, the override; and 20 admissions at once against a budget
of 5 videos admit exactly 5, the transaction's condition alone deciding."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from inbetween.aws.jobs_table import DynamoJobStore
from inbetween.domain.models import DueKind, InputObject, Job, JobSpec, JobStatus, Transition
from inbetween.ports import JobStore
from inbetween_local.memory import InMemoryJobStore, ManualClock

WAN27 = "wan2.7-i2v"
T0 = 1_800_000_000.0
MONTH = "2027-01"
VIDEO = 3_000_000  # a 5 s wan2.7 video at 720P in Beijing, in micros of CNY


@dataclass
class Subject:
    store: JobStore
    clock: ManualClock


@pytest.fixture(params=["memory", "dynamodb"])
def subject(request) -> Subject:
    clock = ManualClock(T0)
    if request.param == "memory":
        return Subject(InMemoryJobStore(clock), clock)
    client = request.getfixturevalue("create_jobs_table")("jobs")
    return Subject(DynamoJobStore(client, "jobs", clock=clock.now), clock)


def waiting_job(n: int) -> Job:
    name = f"drop-{n:02d}"
    inputs = {"first": InputObject(f"inbox/{name}/first.png", "e1", 10)}
    spec = JobSpec(model=WAN27, resolution="720P")
    return Job(
        f"{name}/run", name, "run", JobStatus.WAITING, spec, inputs, T0 + n, T0 + n, estimate_micros=VIDEO
    )


def admission(job: Job, budget: int | None, *, slots: int = 50) -> Transition:
    return (
        Transition.of(job.job_id, JobStatus.WAITING, JobStatus.SUBMITTING)
        .take_slot(WAN27, slots)
        .commit_spend(MONTH, job.estimate_micros or 0, budget)
    )


def test_an_admission_within_the_budget_commits_the_estimate_with_the_slot(subject):
    store = subject.store
    job = waiting_job(1)
    store.add_job(job, due=(DueKind.ADMIT, job.created_at))
    assert store.month_spend(MONTH).committed_micros == 0

    assert store.apply(admission(job, budget=VIDEO))

    admitted = store.get_job(job.job_id)
    assert admitted.status is JobStatus.SUBMITTING and admitted.spend_month == MONTH
    assert store.month_spend(MONTH).committed_micros == VIDEO
    assert store.slots_in_use(WAN27) == 1


def test_an_admission_over_the_budget_changes_nothing(subject):
    store = subject.store
    first, second = waiting_job(1), waiting_job(2)
    for job in (first, second):
        store.add_job(job, due=(DueKind.ADMIT, job.created_at))
    assert store.apply(admission(first, budget=VIDEO + VIDEO // 2))

    assert not store.apply(admission(second, budget=VIDEO + VIDEO // 2))

    assert store.get_job(second.job_id).status is JobStatus.WAITING
    assert store.get_job(second.job_id).spend_month is None
    assert store.month_spend(MONTH).committed_micros == VIDEO
    assert store.slots_in_use(WAN27) == 1  # the slot was not taken either
    # an estimate larger than the whole budget never fits
    assert not store.apply(admission(second, budget=VIDEO - 1))


def test_without_a_budget_the_estimate_is_committed_all_the_same(subject):
    store = subject.store
    job = waiting_job(1)
    store.add_job(job, due=(DueKind.ADMIT, job.created_at))
    assert store.apply(admission(job, budget=None))
    assert store.month_spend(MONTH).committed_micros == VIDEO


def test_an_estimate_is_committed_once_and_settled_once(subject):
    store = subject.store
    job = waiting_job(1)
    store.add_job(job, due=(DueKind.ADMIT, job.created_at))
    assert store.apply(admission(job, budget=None))
    # a second commit of the same job (a stale copy) is refused: it has its month already
    again = Transition.of(job.job_id, JobStatus.SUBMITTING).commit_spend(MONTH, VIDEO, None)
    assert not store.apply(again)
    assert store.month_spend(MONTH).committed_micros == VIDEO

    bill = 3_669_620
    settle = Transition.of(job.job_id, JobStatus.SUBMITTING, JobStatus.STORED).set(cost_micros=bill)
    assert store.apply(settle.settle_spend(MONTH, bill - VIDEO, keep_month=True))
    assert store.month_spend(MONTH).committed_micros == bill
    # a settlement for another month (the job's is MONTH) does not apply
    other = Transition.of(job.job_id, JobStatus.STORED).settle_spend("2027-02", -bill, keep_month=True)
    assert not store.apply(other)
    assert store.month_spend(MONTH).committed_micros == bill
    assert store.month_spend("2027-02").committed_micros == 0
    assert store.get_job(job.job_id).cost_micros == bill


def test_a_job_sent_back_to_waiting_gives_its_estimate_back(subject):
    store = subject.store
    job = waiting_job(1)
    store.add_job(job, due=(DueKind.ADMIT, job.created_at))
    assert store.apply(admission(job, budget=VIDEO))
    back = Transition.of(job.job_id, JobStatus.SUBMITTING, JobStatus.WAITING).release_slot(WAN27)
    assert store.apply(back.settle_spend(MONTH, -VIDEO, keep_month=False))

    assert store.month_spend(MONTH).committed_micros == 0
    assert store.get_job(job.job_id).spend_month is None
    assert store.apply(admission(job, budget=VIDEO))  # and it can be admitted again


def test_a_job_with_nothing_committed_refuses_a_stale_settlement(subject):
    store = subject.store
    job = waiting_job(1)
    store.add_job(job, due=(DueKind.ADMIT, job.created_at))
    hold = Transition.of(job.job_id, JobStatus.WAITING, JobStatus.HELD).nothing_committed()
    assert store.apply(hold.schedule(DueKind.HOLD, job.created_at))
    assert [j.job_id for j in store.due_jobs(DueKind.HOLD, T0 + 10)] == [job.job_id]
    stale = Transition.of(job.job_id, JobStatus.HELD).settle_spend(MONTH, -VIDEO, keep_month=False)
    assert not store.apply(stale)
    assert store.month_spend(MONTH).committed_micros == 0


def test_the_months_budget_reached_mark_is_taken_once(subject):
    store = subject.store
    assert store.month_spend(MONTH).reached_at is None
    assert store.claim_budget_reached(MONTH, T0 + 5)
    assert not store.claim_budget_reached(MONTH, T0 + 6)
    assert store.month_spend(MONTH).reached_at == T0 + 5
    assert store.claim_budget_reached("2027-02", T0 + 7)  # a new month, a new mark


def test_the_budget_override_is_set_changed_and_removed(subject):
    store = subject.store
    assert store.budget_override() is None
    store.set_budget_override(15_000_000)
    assert store.budget_override() == 15_000_000
    store.set_budget_override(0)  # 0: no budget, over whatever the deployment says
    assert store.budget_override() == 0
    store.set_budget_override(None)
    assert store.budget_override() is None


def test_twenty_admissions_at_once_against_a_budget_of_five_videos_admit_exactly_five(subject, isolated_moto):
    # Given 20 waiting jobs, a slot for each (the budget alone must decide), a budget of 5 videos
    store = subject.store
    jobs = [waiting_job(n) for n in range(20)]
    for job in jobs:
        store.add_job(job, due=(DueKind.ADMIT, job.created_at))
    budget = 5 * VIDEO
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(jobs))

    def admit(job: Job) -> None:
        barrier.wait()
        ok = store.apply(admission(job, budget, slots=len(jobs)))
        with lock:
            results.append(ok)

    # When all 20 try at the same moment, each in its own thread
    threads = [threading.Thread(target=admit, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    # Then exactly 5 are admitted: the spend, the slots and the jobs agree
    assert len(results) == 20
    assert results.count(True) == 5
    assert store.month_spend(MONTH).committed_micros == 5 * VIDEO
    assert store.slots_in_use(WAN27) == 5
    assert sum(store.get_job(j.job_id).status is JobStatus.SUBMITTING for j in jobs) == 5
    assert sum(store.get_job(j.job_id).spend_month == MONTH for j in jobs) == 5
