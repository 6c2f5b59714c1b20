"""The fault suite: 200+ jobs through the local stack with faults on every boundary, and the figures that
prove nothing was lost, paid twice, stored unverified, notified twice or left in a dead-letter queue.

Faults (every one drawn from a RNG seeded by INBETWEEN_FAULT_SEED, printed; thread timing still varies):
provider 5xx and Throttling (429) on create; failed (5xx) and slow task queries; video downloads cut off
half way; tasks that end FAILED with a code and without one (prompt markers); provider rejections and
invalid drops; every S3 event delivered three times; two poller invocations at once; completion messages
redelivered while their first delivery is still working (2 s visibility, 3 concurrent invocations, slow
completions); a crash after the provider accepted a task and before the table recorded it; a crash after
the video is stored and before the notification; a webhook endpoint down for 30 s, then back.

This is the push-off run (the poller finds every finished task). The same scenario and assertions run
with provider push on, lossy, in test_a_push_fault_suite.py; both live in fault_kit.py.

Run alone: ``.venv/bin/pytest -q -s tests/e2e/test_fault_suite.py`` (``-s`` shows the table).
INBETWEEN_FAULT_JOBS sets the number of jobs (default 200).
"""

from __future__ import annotations

import pytest

from tests.e2e.fault_kit import assert_nothing_lost, job_count, run_fault_suite

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e-fault-suite"),
    pytest.mark.timeout(840),
    pytest.mark.filterwarnings("ignore:No application metrics to publish"),
]

JOBS = job_count("INBETWEEN_FAULT_JOBS", 200)


def test_two_hundred_jobs_survive_faults_on_every_boundary(request, monkeypatch, tmp_path):
    # Given 200 job folders dropped at once into a stack with faults on every boundary (push off)
    # When the pipeline has worked through them and the dead-letter queues are redriven
    run = run_fault_suite(
        request, monkeypatch, tmp_path, title="push off", job_count=JOBS, stack_name="inbetween-faults"
    )
    # Then no job is lost, no task is created twice, every final state is notified once
    assert_nothing_lost(run)
