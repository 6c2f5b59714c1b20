"""Twenty drops taken in by four submit containers at once, against a budget of five videos (the
deployment's MonthlyBudget parameter, slots enough for all): exactly five are made, the rest wait HELD
with no provider task, and one `budget.reached` goes out. The transaction-level race (20 admissions
against the table at the same instant) is tests/integration/aws/test_spend_contract.py's."""

from __future__ import annotations

import threading

import pytest
from inbetween.domain import costs

KF2V = "wan2.2-kf2v-flash"
ONE_VIDEO = 1_000_000  # 5 s at 720P, 0.20 CNY/s


@pytest.fixture
def template_parameters():
    return {"DefaultModel": KF2V, "MonthlyBudget": "5", "ProviderConcurrency": "20"}


# DynamoDB isolates each request; moto's server (threads in this process) does not: tests/conftest.py
pytestmark = pytest.mark.usefixtures("isolated_moto")


def test_twenty_concurrent_drops_against_a_budget_of_five_videos_make_exactly_five(pipeline, pair):
    # Given twenty job folders dropped, and their S3 events waiting in the intake queue
    names = [f"burst-{n:02d}" for n in range(20)]
    for name in names:
        pipeline.drop(name, pair)
    messages = []
    while batch := pipeline.receive(pipeline.settings.intake_queue_url):
        messages += batch

    # When four submit containers take them in at the same time
    chunks = [messages[i::4] for i in range(4)]
    barrier = threading.Barrier(len(chunks))
    errors: list[BaseException] = []

    def container(instance: int) -> None:
        barrier.wait()
        try:
            pipeline.invoke_queue(
                "submit", pipeline.settings.intake_queue_url, chunks[instance], instance=instance + 1
            )
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=container, args=(i,)) for i in range(len(chunks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []

    # and the pipeline runs until the admitted ones are done
    def settled() -> bool:
        items = [pipeline.job(n) for n in names]
        return all(i is not None for i in items) and sum(i["status"] == "STORED" for i in items) == 5

    pipeline.run_until(settled, timeout=90)

    # Then exactly five were made, the other fifteen wait HELD, and the month's spend is five videos
    statuses = [pipeline.job(n)["status"] for n in names]
    assert statuses.count("STORED") == 5 and statuses.count("HELD") == 15
    assert pipeline.emulator.stats.creates_accepted == 5
    month = costs.month_of(pipeline.deps.clock.now())
    assert pipeline.deps.store.month_spend(month).committed_micros == 5 * ONE_VIDEO
    # And the budget was announced once
    events = [n["message"]["type"] for n in pipeline.notifications()]
    assert events.count("budget.reached") == 1
    assert events.count("video.generation.succeeded") == 5
