"""The fault suite with provider push on: the same jobs, faults and assertions as test_fault_suite.py
(the scenario is fault_kit.py's), plus a lossy event channel: the emulator drops 10 % of the task-finished
events, sends 25 % twice, delays every copy by up to 3 s and holds 15 % back for 20 s (so they overtake
nothing but arrive after the poller's overdue check has already handled the job: stale events). All of it
drawn from the suite's seed.

On top of the shared assertions (no job lost, no duplicate task, one notification per final state), it
asserts what push users rely on: the events were delivered and used (most jobs finish from their event,
with the one task query it triggers), every delivery got a 2xx (duplicates, stale events and events for a
task the table does not know yet included, so the bus never retries them), and the jobs whose event was
lost still reached their final state through the poller's overdue check.

Jobs: INBETWEEN_FAULT_PUSH_JOBS, by default half of INBETWEEN_FAULT_JOBS (so 100). The suite is CPU-bound
(moto, three function pools, the emulator's encoder); 200 jobs take about 6.5 minutes of one core. Run
beside the push-off suite on the other xdist worker, 100 jobs keep ``make test`` well under its budget
and still inject every fault several times.

Collection order matters (hence the file name): this file is collected first, so it is handed to one
worker before anything else, and the push-off run (the folder's last file) to the other; it runs before
any test of this worker starts the folder's shared stack, and stops it if one is up (one stack per
process: the environment is process-global).

Run alone: ``.venv/bin/pytest -q -s tests/e2e/test_a_push_fault_suite.py``.
"""

from __future__ import annotations

import math

import pytest
from inbetween.domain.models import JobStatus
from inbetween_local.emulator import PushConfig

from tests.e2e.fault_kit import SEED, assert_nothing_lost, job_count, run_fault_suite

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    # the other group than the push-off run (e2e-fault-suite), so the two can run on different workers
    pytest.mark.xdist_group("e2e-local-stack"),
    pytest.mark.timeout(840),
    pytest.mark.filterwarnings("ignore:No application metrics to publish"),
]

JOBS = job_count("INBETWEEN_FAULT_PUSH_JOBS", math.ceil(job_count("INBETWEEN_FAULT_JOBS", 200) / 2))
EVENT_DROP = 0.10
EVENT_DUPLICATE = 0.25
EVENT_DELAY_S = (0.0, 3.0)
EVENT_HELD_BACK = 0.15
EVENT_HOLD_S = 20.0  # past the overdue check (the stack's push clocks: 10 s expected + 5 s grace)


def lossy_events() -> PushConfig:
    return PushConfig(
        url="http://127.0.0.1/",  # the stack points it at its function URL
        drop_probability=EVENT_DROP,
        duplicate_probability=EVENT_DUPLICATE,
        delay_s=EVENT_DELAY_S,
        reorder_probability=EVENT_HELD_BACK,
        reorder_hold_s=EVENT_HOLD_S,
        seed=SEED,
    )


def test_jobs_survive_faults_on_every_boundary_with_lossy_provider_push(request, monkeypatch, tmp_path):
    # Given 100 job folders dropped at once into a stack with faults on every boundary, push on, and
    # task-finished events dropped, duplicated, delayed and held back on their way
    # When the pipeline has worked through them and the dead-letter queues are redriven
    run = run_fault_suite(
        request,
        monkeypatch,
        tmp_path,
        title="push on, lossy events",
        job_count=JOBS,
        stack_name="inbetween-push-faults",
        push_faults=lossy_events(),
    )
    # Then no job is lost, no task is created twice, every final state is notified once
    assert_nothing_lost(run)

    # and every task's end was sent as an event, and the channel really lost, repeated and held them
    sender, submitted = run.push_stats, run.submitted
    assert sender.finished == len(run.tasks)
    assert sender.dropped > 0 and sender.duplicated > 0 and sender.reordered > 0
    # and every delivery was answered 2xx, so the bus retries none (duplicates and stale ones included)
    assert sender.failed == 0
    assert set(sender.statuses) == {200}, sender.statuses
    outcomes = run.push_outcome_counts
    assert outcomes["duplicate"] + outcomes["already handled"] > 0, outcomes
    assert not [o for o in outcomes if o.startswith("raised")], outcomes
    # and the events were used: most jobs finished from their own event, and the poller did not query
    # every task on its own clock (push off: about two queries per job, push on: about one)
    assert len(run.finished_by_push) > len(submitted) / 2, (len(run.finished_by_push), len(submitted))
    assert run.stats.queries < 2 * len(submitted), (run.stats.queries, len(submitted))
    # and the jobs whose event was lost still finished, each found by the poller's overdue check
    unheard = run.unheard
    assert len(unheard) == sender.dropped
    assert all(run.stats.per_task[task].queries >= 1 for task in unheard)
    by_name = {j.name: j for j in run.jobs}
    assert {run.final[submitted[t]] for t in unheard} <= {JobStatus.STORED, JobStatus.FAILED}
    assert all(run.final[submitted[t]] is by_name[submitted[t]].expected for t in unheard)
