"""Provider push through the local stack (`inbetween local up --push`): events lost, repeated, delayed and
reordered on the way, and still every job is stored once, notified once, with about one task query each.

The scenario runs in its own process (push_scenario.py): the local stack's environment is process-global
and this folder's shared stack runs with push off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("e2e-push")]


def test_lost_and_repeated_events_cost_no_video_and_about_one_query_per_job():
    # Given a local stack with push on, where half the events are dropped and half are duplicated
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("shared", "local", ".")))
    # When four jobs are dropped into it
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "e2e" / "push_scenario.py"), "3"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    # Then events were really lost and repeated on the way
    events = report["events"]
    assert events["finished"] == 4
    assert events["dropped"] >= 1 and events["duplicated"] >= 1
    assert report["url"].startswith("http://127.0.0.1:")
    # and still every job is stored, with one task each and one notification each
    assert set(report["statuses"].values()) == {"STORED"}
    assert report["tasks_created"] == 4
    assert report["notifications"] == dict.fromkeys(report["statuses"], 1)
    # and the provider was asked about each task about once (the dropped ones by the overdue check)
    assert max(report["queries"].values()) <= 2
    assert sum(report["queries"].values()) <= 5
