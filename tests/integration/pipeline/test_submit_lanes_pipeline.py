"""Submit lanes through the pipeline: with two API keys of the account in the secret, the submit
function admits through the lane an intake-queue message names, creating with that lane's key; the key's
id is learnt once and kept on the lane's lease item in DynamoDB; every job is stored with exactly one
task, and the emulator, which enforces the account's limits, never throttles."""

from __future__ import annotations

import json

import pytest
from inbetween.provider.client import api_key_ref
from inbetween_local.emulator import EmulatorConfig, api_key_id_for
from pipeline_kit import API_KEY, WEBHOOK_SECRET_RAW

WAN27 = "wan2.7-i2v"
SECOND_KEY = "sk-pipeline-second-lane-0002"


@pytest.fixture
def emulator_config():
    return EmulatorConfig(
        api_keys=(API_KEY, SECOND_KEY), pending_s=0.1, running_s=0.4, render_preset="ultrafast"
    )


@pytest.fixture
def secret_values():
    return {"DASHSCOPE_API_KEY_SECRET": f"{API_KEY},{SECOND_KEY}", "WEBHOOK_SECRET_NAME": WEBHOOK_SECRET_RAW}


def test_a_second_lane_creates_with_its_own_key_while_the_first_is_held_and_every_job_is_stored_once(
    pipeline, pair
):
    # Given two keys in the secret, and the first lane's lease held by another holder (a long burst)
    first_lane = api_key_ref(API_KEY)  # with several keys, each lane is named by its key's reference
    held = pipeline.deps.store.acquire_submit_lease("another-holder", 600.0, lane=first_lane)
    assert held is not None
    job = json.dumps({"model": WAN27, "resolution": "720P", "duration": 2}).encode()
    first = [f"lane-{i}" for i in range(4)]
    for name in first:
        pipeline.drop(name, {**pair, "job.json": job})
    pipeline.submit_step()  # intake: accepted, but the first lane is busy
    assert {pipeline.job(n)["status"] for n in first} == {"WAITING"}
    # When that holder wakes the second lane (the intake queue's admit message, as a holder filling a
    # burst sends it)
    pipeline.deps.queues.admit_waiting(WAN27, lane=1)
    pipeline.submit_step()
    # Then the second lane created them all with its own key, and learnt that key's id once
    second_ref = api_key_ref(SECOND_KEY)
    assert {pipeline.job(n)["status"] for n in first} == {"SUBMITTED"}
    assert {pipeline.job(n)["submit_lane"] for n in first} == {second_ref}
    tasks = pipeline.emulator.tasks  # a snapshot
    assert {tasks[pipeline.job(n)["task_id"]].api_key_id for n in first} == {api_key_id_for(SECOND_KEY)}
    lease = pipeline.raw_item(f"lock#submit#{second_ref}")
    assert lease is not None and lease["api_key_id"] == api_key_id_for(SECOND_KEY) and "holder" not in lease
    # and once the first lane is free, the next jobs go through it, with the first key
    pipeline.deps.store.release_submit_lease("another-holder", lane=first_lane)
    later = [f"later-{i}" for i in range(2)]
    for name in later:
        pipeline.drop(name, {**pair, "job.json": job})
    names = first + later

    def done() -> bool:
        return all((i or {}).get("notified_at") for i in pipeline.latest_runs(names).values())

    pipeline.run_until(done, timeout=120)
    assert {pipeline.job(n)["status"] for n in names} == {"STORED"}
    assert {pipeline.job(n).get("submit_lane") for n in later} == {first_lane}
    tasks = pipeline.emulator.tasks  # a snapshot
    assert {tasks[pipeline.job(n)["task_id"]].api_key_id for n in later} == {api_key_id_for(API_KEY)}
    # one task per job, none refused by the account's limits
    stats = pipeline.emulator.stats
    assert stats.creates_accepted == len(names)
    assert not any(code.startswith("Throttling") for code in stats.creates_rejected)
