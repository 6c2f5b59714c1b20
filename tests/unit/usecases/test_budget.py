"""Costs and the monthly budget guard, through the real use cases against the in-memory world: the estimate
at intake, the bill from the provider's usage when a job ends (in its metadata.json and notification),
the month's committed spend settled exactly once whatever the ending, and jobs over the budget HELD in
arrival order, announced once a month, released by a raised budget or a new month."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from typing import Any

import pytest
from inbetween.domain import costs
from inbetween.domain.models import DueKind, JobStatus
from inbetween.errors import ProviderThrottled
from inbetween.provider.models import TaskState, TaskStatus, Usage
from inbetween.usecases import budget, completion, intake, polling
from inbetween.usecases.budget import BUDGET_REACHED_EVENT
from inbetween.usecases.notify import SUCCEEDED_EVENT
from inbetween_local.memory import MemoryWorld, memory_world
from inbetween_local.memory import test_settings as settings_with
from usecase_kit import FLASH, drop, pair

WAN27 = "wan2.7-i2v"
HOOK = "https://hooks.test/inbetween"
ONE_FLASH_VIDEO = 1_000_000  # 5 s of wan2.2-kf2v-flash at 720P in Beijing: 0.20 CNY/s
# mid-January, so that a month's end is a known distance away
JAN_15 = datetime(2027, 1, 15, 12, 0, tzinfo=UTC).timestamp()


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def mp4() -> bytes:
    hdlr = box(b"hdlr", b"\0" * 8 + b"vide" + b"\0" * 12 + b"VideoHandler\0")
    moov = box(b"moov", box(b"trak", box(b"mdia", hdlr)))
    return box(b"ftyp", b"isom\0\0\x02\0isomiso2mp41") + moov + box(b"mdat", b"\x00" * 4096)


def world_with(**settings: Any) -> MemoryWorld:
    values: dict[str, Any] = {"provider_concurrency": 10, "default_webhook_url": HOOK}
    values.update(settings)
    world = memory_world(settings_with(**values))
    world.clock.advance(JAN_15 - world.clock.now())
    return world


def dropped(world: MemoryWorld, name: str, **job_json: Any) -> str:
    """A drop folder uploaded and taken in by intake (which admits at once); its job id."""
    fields = {"model": FLASH, "resolution": "720P", **job_json}
    drop(world, name, {**pair(), "job.json": json.dumps(fields).encode()})
    intake.examine(world.deps, name)
    world.clock.advance(1)
    (job,) = [j for j in world.store.recent_jobs(limit=100) if j.job_name == name]
    return job.job_id


def status(world: MemoryWorld, job_id: str) -> JobStatus:
    job = world.store.get_job(job_id)
    assert job is not None
    return job.status


def committed(world: MemoryWorld) -> int:
    return world.store.month_spend(costs.month_of(world.clock.now())).committed_micros


def task_ends(world: MemoryWorld, job_id: str, state: TaskStatus, *, billed_s: int | None = 5) -> None:
    """The job's task ends at the provider; the poller notices, and a success is stored by completion."""
    job = world.store.get_job(job_id)
    assert job is not None and job.task_id
    url = f"https://videos.test/{job.task_id}.mp4"
    usage = Usage(video_duration=billed_s, video_count=1, sr=720) if billed_s is not None else None
    if state is TaskStatus.SUCCEEDED:
        world.videos.videos[url] = mp4()
        world.provider.set_state(
            job.task_id, TaskState(task_id=job.task_id, status=state, video_url=url, usage=usage)
        )
    else:
        world.provider.set_state(
            job.task_id, TaskState(task_id=job.task_id, status=state, code="InternalError")
        )
    world.clock.advance(120)
    polling.tick(world.deps, budget_s=0)
    if state is TaskStatus.SUCCEEDED:
        assert completion.complete(world.deps, job_id) is completion.CompletionOutcome.STORED


def budget_events(world: MemoryWorld) -> list[Any]:
    return [n for n in world.notifier.published if n.event_type == BUDGET_REACHED_EVENT]


# ---------------------------------------------------------------------------------------------- costs


def test_intake_estimates_a_job_from_its_seconds_model_resolution_and_region():
    world = world_with()
    assert world.store.get_job(dropped(world, "flash")).estimate_micros == ONE_FLASH_VIDEO
    # wan2.7 bills every second asked for: 8 s at 1080P in Beijing, 1.00 CNY/s
    job_id = dropped(world, "long", model=WAN27, resolution="1080P", duration=8)
    assert world.store.get_job(job_id).estimate_micros == 8_000_000
    # Singapore bills in CNY too: 5 s at 0.733924 CNY/s
    singapore = world_with(provider_region="ap-southeast-1")
    job_id = dropped(singapore, "intl", model=WAN27, resolution="720P")
    assert singapore.store.get_job(job_id).estimate_micros == 3_669_620


def test_a_stored_job_is_billed_from_its_usage_in_its_metadata_and_its_notification():
    # Given a deployment reporting in USD too, and a job whose task bills 5 s
    world = world_with(report_currency="USD", report_rate_micros=137_000)
    job_id = dropped(world, "shot")
    assert committed(world) == ONE_FLASH_VIDEO  # its estimate, while in flight

    # When it is stored
    task_ends(world, job_id, TaskStatus.SUCCEEDED, billed_s=5)

    # Then the bill is on the job, in metadata.json and in the notification, and the month is settled
    job = world.store.get_job(job_id)
    assert job.status is JobStatus.STORED and job.cost_micros == ONE_FLASH_VIDEO
    expected = {
        "amount": "1.00",
        "currency": "CNY",
        "billed_seconds": 5,
        "estimated": False,
        "report": {"amount": "0.137", "currency": "USD"},
    }
    meta = world.blobs.json[(world.deps.settings.output_bucket, f"results/shot/{job.run_id}/metadata.json")]
    assert meta["cost"] == expected
    (event,) = [n for n in world.notifier.published if n.event_type == SUCCEEDED_EVENT]
    assert event.data["cost"] == expected
    assert committed(world) == ONE_FLASH_VIDEO


def test_a_bill_below_the_estimate_lowers_the_months_spend_to_the_bill():
    world = world_with()
    job_id = dropped(world, "short")
    task_ends(world, job_id, TaskStatus.SUCCEEDED, billed_s=3)  # the provider billed 3 s, not 5
    assert world.store.get_job(job_id).cost_micros == 600_000
    assert committed(world) == 600_000


def test_a_failed_task_costs_nothing_and_gives_its_estimate_back():
    world = world_with()
    job_id = dropped(world, "broken")
    task_ends(world, job_id, TaskStatus.FAILED)
    job = world.store.get_job(job_id)
    assert job.status is JobStatus.FAILED and job.cost_micros == 0
    assert committed(world) == 0
    (event,) = world.notifier.published
    assert event.data["cost"] == {
        "amount": "0.00",
        "currency": "CNY",
        "billed_seconds": None,
        "estimated": False,
    }


def test_a_throttled_create_gives_its_estimate_back_until_it_is_admitted_again():
    world = world_with()
    world.provider.create_errors.append(ProviderThrottled("busy", code="Throttling"))
    job_id = dropped(world, "throttled")
    assert status(world, job_id) is JobStatus.WAITING
    assert world.store.get_job(job_id).spend_month is None
    assert committed(world) == 0
    polling.tick(world.deps, budget_s=0)  # admitted again: committed once, not twice
    assert status(world, job_id) is JobStatus.SUBMITTED
    assert committed(world) == ONE_FLASH_VIDEO


# ---------------------------------------------------------------------------------------------- the guard


def test_a_budget_of_three_videos_holds_the_fourth_and_announces_it_once():
    # Given a budget of exactly three 5 s videos
    world = world_with(monthly_budget_micros=3 * ONE_FLASH_VIDEO)

    # When four jobs are dropped, and a fifth later
    ids = [dropped(world, f"job-{n}") for n in range(1, 5)]
    later = dropped(world, "job-5")

    # Then three are submitted, and the others wait, HELD, in arrival order, with no provider task
    assert [status(world, i) for i in ids] == [JobStatus.SUBMITTED] * 3 + [JobStatus.HELD]
    assert status(world, later) is JobStatus.HELD
    assert len(world.provider.created) == 3
    held = world.store.due_jobs(DueKind.HOLD, world.clock.now())
    assert [j.job_id for j in held] == [ids[3], later]
    assert committed(world) == 3 * ONE_FLASH_VIDEO
    # And budget.reached went out once, on SNS and to the deployment's webhook
    (event,) = budget_events(world)
    assert event.data["month"] == "2027-01"
    assert event.data["budget"] == {"amount": "3.00", "currency": "CNY"}
    assert event.data["held_job_id"] == ids[3]
    deliveries = [world.store.get_webhook_delivery(d) for d in world.store.deliveries]
    assert [d.url for d in deliveries if BUDGET_REACHED_EVENT in d.body] == [HOOK]

    # When the poller runs again and again, nothing changes: no second event, nothing released
    for _ in range(3):
        world.clock.advance(5)
        polling.tick(world.deps, budget_s=0)
    assert len(budget_events(world)) == 1
    assert status(world, ids[3]) is JobStatus.HELD


def test_raising_the_budget_releases_held_jobs_in_arrival_order():
    world = world_with(monthly_budget_micros=3 * ONE_FLASH_VIDEO)
    ids = [dropped(world, f"job-{n}") for n in range(1, 6)]
    assert [status(world, i) for i in ids[3:]] == [JobStatus.HELD, JobStatus.HELD]

    # When the budget is raised by one video (as `inbetween budget set 4` does)
    world.store.set_budget_override(4 * ONE_FLASH_VIDEO)
    polling.tick(world.deps, budget_s=0)

    # Then the older held job is submitted, the younger still held
    assert status(world, ids[3]) is JobStatus.SUBMITTED
    assert status(world, ids[4]) is JobStatus.HELD
    assert committed(world) == 4 * ONE_FLASH_VIDEO
    # And an override of 0 means no budget at all
    world.store.set_budget_override(0)
    polling.tick(world.deps, budget_s=0)
    assert status(world, ids[4]) is JobStatus.SUBMITTED
    assert len(budget_events(world)) == 1


def test_a_job_that_ends_without_paying_makes_room_for_the_next_held_one():
    world = world_with(monthly_budget_micros=2 * ONE_FLASH_VIDEO)
    first, _, third = (dropped(world, f"job-{n}") for n in range(1, 4))
    assert status(world, third) is JobStatus.HELD
    task_ends(world, first, TaskStatus.FAILED)  # its estimate leaves the month: room for one more
    polling.tick(world.deps, budget_s=0)
    assert status(world, third) is JobStatus.SUBMITTED
    assert committed(world) == 2 * ONE_FLASH_VIDEO


def test_a_new_month_releases_held_jobs():
    world = world_with(monthly_budget_micros=ONE_FLASH_VIDEO)
    dropped(world, "january-1")
    second = dropped(world, "january-2")
    assert status(world, second) is JobStatus.HELD
    # When February begins (its committed spend starts at 0)
    world.clock.advance(datetime(2027, 2, 1, 0, 0, 1, tzinfo=UTC).timestamp() - world.clock.now())
    polling.tick(world.deps, budget_s=0)
    assert status(world, second) is JobStatus.SUBMITTED
    assert world.store.month_spend("2027-02").committed_micros == ONE_FLASH_VIDEO
    assert world.store.month_spend("2027-01").committed_micros == ONE_FLASH_VIDEO  # the first, January's


def test_a_cheap_job_waits_behind_an_older_held_one():
    # Given 2.00 CNY of budget, 1.00 of it spent, and a held 1080P job (2.40 CNY) waiting
    world = world_with(monthly_budget_micros=2 * ONE_FLASH_VIDEO)
    dropped(world, "spent")
    big = dropped(world, "big", resolution="1080P")
    assert status(world, big) is JobStatus.HELD
    # When a 480P job (0.50 CNY, which would fit) arrives after it
    cheap = dropped(world, "cheap", resolution="480P")
    # Then it is held behind the older one: the room goes in arrival order
    assert status(world, cheap) is JobStatus.HELD
    assert [j.job_id for j in world.store.due_jobs(DueKind.HOLD, world.clock.now())] == [big, cheap]


def test_an_estimate_larger_than_the_whole_budget_waits_until_the_budget_allows_it():
    world = world_with(monthly_budget_micros=ONE_FLASH_VIDEO)
    job_id = dropped(world, "too-big", resolution="1080P")
    assert status(world, job_id) is JobStatus.HELD
    assert world.provider.created == []
    world.store.set_budget_override(3 * ONE_FLASH_VIDEO)
    polling.tick(world.deps, budget_s=0)
    assert status(world, job_id) is JobStatus.SUBMITTED


def test_a_held_job_keeps_nothing_committed_and_its_release_admits_it_once():
    world = world_with(monthly_budget_micros=ONE_FLASH_VIDEO)
    dropped(world, "first")
    held = dropped(world, "second")
    assert world.store.get_job(held).spend_month is None
    world.store.set_budget_override(2 * ONE_FLASH_VIDEO)
    # two pollers at once: one release, one admission, one commit
    assert budget.release_held(world.deps) == 1
    assert budget.release_held(world.deps) == 0
    polling.tick(world.deps, budget_s=0)
    polling.tick(world.deps, budget_s=0)
    assert committed(world) == 2 * ONE_FLASH_VIDEO
    assert len(world.provider.created) == 2


@pytest.mark.parametrize("amount", ["-1", "abc", "1e3", "0.0000001", "nan"])
def test_amounts_that_are_not_plain_non_negative_decimals_are_refused(amount):
    with pytest.raises(ValueError):
        costs.parse_amount(amount)


def test_the_stored_log_record_carries_the_videos_size_and_cost(caplog):
    # the console prints it as the job's "stored" line
    world = world_with()
    job_id = dropped(world, "logged")
    caplog.set_level("INFO", logger="inbetween")
    task_ends(world, job_id, TaskStatus.SUCCEEDED, billed_s=5)
    (record,) = [r for r in caplog.records if r.getMessage() == "video stored"]
    assert record.job_id == job_id
    assert record.video_bytes == len(mp4())
    assert record.cost == "1.00 CNY"
