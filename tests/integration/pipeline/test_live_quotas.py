"""Live quotas through the pipeline: with no concurrency configured, admission keeps as many tasks in
flight as the account's list-quotas figure says (here raised to 7 in the emulator, which enforces it),
reads that figure at most once per few minutes per container, and never earns a Throttling answer."""

from __future__ import annotations

import json

import pytest
from inbetween_local.emulator import EmulatorConfig, Faults
from pipeline_kit import API_KEY

WAN27 = "wan2.7-i2v"
RAISED = 7


@pytest.fixture
def emulator_config():
    # over the concurrency a create is refused (Throttling.AllocationQuota) rather than queued, so that
    # a single task too many shows as an error
    return EmulatorConfig(
        api_keys=(API_KEY,),
        pending_s=0.1,
        running_s=10.0,  # long enough that intake of the first seven drops, loaded or not, ends first
        render_preset="ultrafast",
        faults=Faults(max_concurrent={WAN27: RAISED}, queue_limits={WAN27: 0}),
    )


def test_admission_keeps_the_live_quota_in_flight_and_never_gets_throttled(pipeline, pair):
    # Given a deployment with ProviderConcurrency 0 (the default), an account raised to 7 wan2.7 tasks,
    # and eight jobs dropped at once
    assert pipeline.settings.provider_concurrency == 0
    job = json.dumps({"model": WAN27, "resolution": "720P", "duration": 2}).encode()
    names = [f"live-{i}" for i in range(8)]
    for name in names:
        pipeline.drop(name, {**pair, "job.json": job})
    peak = 0

    def done() -> bool:
        nonlocal peak
        peak = max(peak, pipeline.deps.store.slots_in_use(WAN27))
        return all((i or {}).get("notified_at") for i in pipeline.latest_runs(names).values())

    # When the pipeline works through them
    pipeline.run_until(done, timeout=120)
    # Then all are stored, seven (not the published five) ran at once, and never more
    assert {pipeline.job(n)["status"] for n in names} == {"STORED"}
    assert peak == RAISED
    stats = pipeline.emulator.stats
    assert stats.creates_accepted == len(names)
    assert not any(code.startswith("Throttling") for code in stats.creates_rejected)
    # and the figure was read once by this container, not once per admission
    assert stats.quota_reads == 1
