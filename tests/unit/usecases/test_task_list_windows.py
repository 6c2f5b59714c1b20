"""The poller's task-list windows against a provider with a real task list (limits_kit.LimitedProvider:
creation-time windows, pages of 100, either order): a task stuck for hours does not stretch the window
every other due task is listed in, and a list longer than three pages is read to its end when that is
cheaper than querying the due tasks it has not shown yet."""

from __future__ import annotations

from dataclasses import replace

import pytest
from inbetween.domain.catalog import provider_model_name
from inbetween.domain.models import DueKind, InputObject, Job, JobSpec, JobStatus
from inbetween.provider.models import TaskStatus
from inbetween.usecases import polling
from inbetween_local.memory import MemoryWorld, memory_world
from inbetween_local.memory import test_settings as settings_with
from limits_kit import LimitedProvider

MODEL = "wan2.2-kf2v-flash"
HOUR = 3600.0


def listed_world(*, newest_first: bool) -> tuple[MemoryWorld, LimitedProvider, str]:
    world = memory_world(settings_with(provider_concurrency=1000))
    provider = LimitedProvider(world.clock, newest_first=newest_first, concurrency=1000)
    world.deps = replace(world.deps, provider=provider)
    return world, provider, provider_model_name(MODEL, world.deps.settings.provider_region)


def running_job(
    world: MemoryWorld, provider: LimitedProvider, name: str, *, created: float, lasts_s: float
) -> Job:
    """A job whose task was created at ``created``, running for ``lasts_s``, whose check is due now."""
    task = provider.add_task(
        provider_model_name(MODEL, world.deps.settings.provider_region), created=created, lasts_s=lasts_s
    )
    inputs = {
        role: InputObject(f"inbox/{name}/{role}.png", f"etag-{role}", 1000) for role in ("first", "last")
    }
    job = Job(
        f"{name}/run1",
        name,
        "run1",
        JobStatus.SUBMITTED,
        JobSpec(model=MODEL, resolution="720P", prompt="a slow zoom"),
        inputs,
        created,
        created,
        expected_size=(1280, 720),
        task_id=task.task_id,
        submit_started_at=created,
        submitted_at=created + 0.4,
        provider_status="RUNNING",
    )
    assert world.store.add_job(job, due=(DueKind.POLL, world.clock.now()))
    return job


def provider_calls(provider: LimitedProvider) -> int:
    return provider.queries + provider.list_calls


@pytest.mark.parametrize("newest_first", [True, False], ids=["newest-first", "oldest-first"])
def test_a_straggler_stuck_for_hours_does_not_widen_the_window_the_others_are_listed_in(newest_first):
    # Given a task stuck for five hours, a thousand tasks the account made since (done), and twenty
    # fresh ones of ours created over the last four minutes, all due for a check
    world, provider, model = listed_world(newest_first=newest_first)
    now = world.clock.now()
    straggler = running_job(world, provider, "straggler", created=now - 5 * HOUR, lasts_s=10 * HOUR)
    for n in range(1000):
        provider.add_task(model, created=now - 5 * HOUR + 10 + n * 17.5, lasts_s=120)
    fresh = [
        running_job(world, provider, f"fresh-{n}", created=now - 240 + n * 12, lasts_s=600) for n in range(20)
    ]
    # When the poller checks them
    report = polling.tick(world.deps, budget_s=0)
    # Then the fresh tasks were answered by one list call over their own minutes, the straggler by its
    # own query: two provider calls, where one window over five hours cost 3 pages and more
    assert report.checked == 21
    assert provider_calls(provider) == 2 and provider.queries == 1
    ((lo, hi),) = provider.windows
    assert lo >= fresh[0].submit_started_at - polling.LIST_MARGIN_S
    assert hi <= fresh[-1].submit_started_at + polling.LIST_MARGIN_S
    for job in [straggler, *fresh]:
        stored = world.store.get_job(job.job_id)
        assert (stored.status, stored.polls) == (JobStatus.SUBMITTED, 1)


@pytest.mark.parametrize("newest_first", [True, False], ids=["newest-first", "oldest-first"])
def test_a_task_list_past_three_pages_is_read_to_the_end_when_that_is_cheaper_than_queries(newest_first):
    # Given a hundred due tasks of ours among 450 made over the same ten minutes (the others not due)
    world, provider, model = listed_world(newest_first=newest_first)
    now = world.clock.now()
    due = []
    for n in range(450):
        created = now - 600 + n * (600 / 450)
        if n % 9 < 2:  # 100 of them, spread over the whole list
            due.append(running_job(world, provider, f"due-{n}", created=created, lasts_s=3600))
        else:
            provider.add_task(model, created=created, lasts_s=3600)
    assert len(due) == 100
    # When the poller checks them
    report = polling.tick(world.deps, budget_s=0)
    # Then the list was read to its fifth page and no due task was missed or queried one by one
    assert report.checked == 100
    assert provider.list_calls == 5 and provider.queries == 0
    assert all(world.store.get_job(j.job_id).polls == 1 for j in due)


def test_pages_that_would_cost_more_than_querying_the_tasks_not_yet_seen_are_not_read():
    # Given two due tasks of ours at the end of a list of 302 tasks (oldest first: they are on page 4)
    world, provider, model = listed_world(newest_first=False)
    now = world.clock.now()
    for n in range(300):
        provider.add_task(model, created=now - 100 + n * 0.1, lasts_s=3600)
    jobs = [running_job(world, provider, name, created=now - 50, lasts_s=3600) for name in ("a", "b")]
    # When the poller checks them
    polling.tick(world.deps, budget_s=0)
    # Then after the first page (three more to go, against two queries) it queried them
    assert provider.list_calls == 1
    assert provider.queries == 2
    assert all(world.store.get_job(j.job_id).provider_status == TaskStatus.RUNNING.value for j in jobs)
