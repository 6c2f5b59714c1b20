"""The poller's provider traffic: the account's query quota is shared, so tasks due together are checked
with one task-list call, and only tasks that ended are queried one by one."""

from __future__ import annotations

import pytest
from faults import FaultyStore, Refuse, notes_still_running
from inbetween_local.emulator import EmulatorConfig, Faults
from pipeline_kit import API_KEY

MODEL = "wan2.2-kf2v-flash"


@pytest.fixture
def emulator_config():
    return EmulatorConfig(
        api_keys=(API_KEY,),
        pending_s=0.1,
        running_s=2.0,
        render_preset="ultrafast",
        faults=Faults(max_concurrent={MODEL: 4}),
    )


@pytest.fixture
def template_parameters():
    # the pairs are kf2v jobs, so that the emulator's raised figure above is the one that counts
    return {"DefaultModel": MODEL}


@pytest.fixture
def env_overrides():
    return {"PROVIDER_CONCURRENCY": "4", "POLL_INTERVAL_SECONDS": "0.5"}


def test_tasks_running_together_are_checked_with_list_calls_not_one_query_each(pipeline, pair):
    # Given four jobs running at once
    names = [f"together-{i}" for i in range(4)]
    for name in names:
        pipeline.drop(name, pair)

    # When the pipeline works through them
    pipeline.run_until(
        lambda: all((i or {}).get("notified_at") for i in pipeline.latest_runs(names).values()), timeout=60
    )

    # Then all are stored, each task was checked several times, but the provider saw fewer queries
    # (task lists + single-task queries) than there were checks: one list answered for several tasks
    items = [pipeline.job(n) for n in names]
    assert {i["status"] for i in items} == {"STORED"}
    checks = sum(int(i["polls"]) for i in items)
    stats = pipeline.emulator.stats
    assert stats.list_calls >= 1
    assert stats.queries + stats.list_calls < checks
    # and every task that ended was queried for its result (the list has no video URL)
    assert stats.queries >= len(names)


@pytest.mark.timeout(120)
def test_a_running_task_whose_record_fails_is_checked_later_and_the_tick_ends(pipeline, pair):
    # Given two jobs whose tasks are running, and a table that refuses to record that (throttled, say)
    names = ["stuck-0", "stuck-1"]
    for name in names:
        pipeline.drop(name, pair)
    pipeline.submit_step()
    assert {pipeline.job(n)["status"] for n in names} == {"SUBMITTED"}
    refusal = Refuse(notes_still_running)
    pipeline.replace(store=FaultyStore(pipeline.deps.store, before_apply=refusal))
    pipeline.advance(1.0)  # both are due

    # When the poller ticks
    report = pipeline.poll_step()

    # Then the tick ends (it used to spin on the due items it could not move), and each job's next
    # check is in the future
    assert report["checked"] >= 2
    assert refusal.refused >= 2
    assert pipeline.emulator.stats.list_calls <= 2
    now = pipeline.deps.clock.now()
    assert all(int(pipeline.job(n)["due_at"]) / 1000 > now for n in names)
