"""The bench code does not rot: its cheapest figures, in a tiny configuration (no timed assertion)."""

from __future__ import annotations

import pytest

from bench import poller_reads
from bench.provider_traffic import launch, measure
from bench.run import table
from bench.traffic_run import Scenario


def test_poller_read_cost_figure_counts_items_read_against_a_scan():
    # Given a small table of finished and active jobs, some due
    [figure] = poller_reads.run(sizes=(200, 20, 5))

    # Then the figure reads about one item per due job, and the Scan baseline reads the whole table
    assert figure.detail["pipeline_checked"] == 5
    assert figure.value is not None and figure.value >= 1.0
    assert figure.detail["scan_items_read"] == 220
    assert "| Poller read cost" in table([figure])


def test_an_idle_poller_tick_only_queries_the_due_index():
    requests = poller_reads.idle_tick_requests()

    assert set(requests) == {"dynamodb.Query"}


@pytest.mark.timeout(120)
def test_pipeline_and_sdk_scenarios_yield_latency_and_query_counts():
    # Given two pairs through the real handlers, and one through the SDK's call loop, on a scaled clock
    pipeline, sdk = launch(
        [
            Scenario("pipeline", jobs=2, quota=2, scale=120.0, count_requests=True),
            Scenario("sdk_loop", jobs=1, quota=2, scale=120.0),
        ]
    )  # each in its own interpreter, as make bench runs them
    assert "error" not in pipeline and "error" not in sdk

    # Then every job is notified, and the measures are computed from the provider's own times
    for result, jobs in ((pipeline, 2), (sdk, 1)):
        figures = measure(result)
        assert figures["completed"] == jobs
        assert figures["queries_per_job"] >= 1
        assert figures["detection_p95_s"] is not None
    assert pipeline["aws_requests"].get("sns.Publish") == 2
