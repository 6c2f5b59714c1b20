"""The monthly budget guard on the local stack, through the `inbetween` CLI: a budget of three videos' price
holds the fourth job (no provider task for it), sends `budget.reached` once, and releases the job when
`inbetween budget set` raises the budget; `jobs`, `status`, `spend` and `budget show` tell the costs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from inbetween.domain import costs
from inbetween.domain.models import JobStatus
from inbetween_local import cli

from tests.e2e.conftest import SAMPLES, STACK_MARKS

pytestmark = STACK_MARKS

FLASH = "wan2.2-kf2v-flash"
ONE_VIDEO = 1_000_000  # 5 s of kf2v flash at 720P: 0.20 CNY/s (Beijing, the stack's region)


@pytest.fixture
def cli_env(stack, tmp_path, monkeypatch):
    state = stack.write_state(tmp_path / "state.json")
    monkeypatch.setenv("INBETWEEN_STATE_FILE", str(state))
    for name in cli.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    yield stack
    assert cli.main(["budget", "set", "--deployed"]) == 0  # the other tests run without a budget


def wait_for(check: Callable[[], bool], what: Callable[[], object], timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s; found {what()!r}")
        time.sleep(0.25)


def in_flight(store) -> list[str]:
    """Every job and film of the stack not yet final: their estimates and bills move the month's committed
    spend, and a job ending unpaid releases held ones, so the budget is set only once there are none."""
    jobs = [f"{j.job_name} {j.status}" for j in store.recent_jobs(limit=10_000) if not j.status.is_final]
    films = [f"{r.film} {r.status}" for r in store.recent_film_runs(limit=10_000) if not r.status.is_final]
    return jobs + films


def budget_events(stack, queue_url: str) -> list[dict]:
    events = []
    while batch := stack.notifications(queue_url, wait_s=1):
        events += [json.loads(m["Message"]) for m in batch]
    return [e for e in events if e.get("type") == "budget.reached"]


def test_a_budget_of_three_videos_holds_the_fourth_until_it_is_raised(cli_env, notification_queue, capsys):
    stack = cli_env
    store = stack.job_store()
    month = costs.month_of(time.time())
    # Given this month's budget.reached not yet sent (other tests of this stack may have reached it), the
    # queue drained, and a budget of exactly three more videos than the month has committed so far
    stack.client("dynamodb").update_item(
        TableName=stack.environment["JOBS_TABLE"],
        Key={"pk": {"S": f"spend#{month}"}},
        UpdateExpression="REMOVE reached_at",
    )
    wait_for(lambda: not in_flight(store), lambda: in_flight(store))
    budget_events(stack, notification_queue)
    base = store.month_spend(month).committed_micros
    creates = stack.emulator.stats.creates_accepted
    assert cli.main(["budget", "set", costs.format_amount(base + 3 * ONE_VIDEO)]) == 0
    assert "a month, from now on" in capsys.readouterr().out

    # When four jobs are dropped, one after another
    names = [f"budget-e2e-{n}" for n in range(1, 5)]
    for name in names:
        args = ["drop", str(SAMPLES / "first.png"), str(SAMPLES / "last.png"), "--job", name]
        assert cli.main([*args, "--model", FLASH, "--resolution", "720P", "--no-prompt-extend"]) == 0
    capsys.readouterr()

    def statuses() -> list[JobStatus | None]:
        latest = {job.job_name: job.status for job in reversed(store.recent_jobs(limit=1000))}
        return [latest.get(name) for name in names]

    # Then three are made and stored, and the fourth waits HELD, with no provider task
    wait_for(lambda: statuses() == [JobStatus.STORED] * 3 + [JobStatus.HELD], statuses)
    assert stack.emulator.stats.creates_accepted - creates == 3
    assert store.month_spend(month).committed_micros == base + 3 * ONE_VIDEO
    # And budget.reached went out once, naming the held job
    (event,) = budget_events(stack, notification_queue)
    assert event["data"]["held_job"] == names[3]
    assert event["data"]["budget"] == {"amount": costs.format_amount(base + 3 * ONE_VIDEO), "currency": "CNY"}

    # And the CLI shows it: the held job and its estimate, the costs, the month's spend
    assert cli.main(["status", names[3]]) == 0
    out = capsys.readouterr().out
    assert "status:    HELD" in out and "~1.00 CNY estimated (held: over the month's budget)" in out
    assert cli.main(["budget", "show"]) == 0
    out = capsys.readouterr().out
    assert "(set with `inbetween budget set`)" in out and f"held jobs:  1 (oldest: {names[3]})" in out
    assert cli.main(["jobs", "--limit", "200"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("budget-e2e-")]
    assert sorted(row[1] for row in rows) == ["HELD", "STORED", "STORED", "STORED"]
    assert all("1.00" in row or "~1.00" in row for row in rows)
    assert cli.main(["spend", "--by", "model"]) == 0
    spend = capsys.readouterr().out
    assert any(line.startswith(FLASH) for line in spend.splitlines())

    # When the budget is raised by one video
    assert cli.main(["budget", "set", costs.format_amount(base + 4 * ONE_VIDEO)]) == 0
    # Then the held job is made and stored, and nothing more is sent about the budget
    wait_for(lambda: statuses()[3] is JobStatus.STORED, statuses)
    assert stack.emulator.stats.creates_accepted - creates == 4
    assert store.month_spend(month).committed_micros == base + 4 * ONE_VIDEO
    assert budget_events(stack, notification_queue) == []
    assert cli.main(["status", names[3]]) == 0
    assert "cost:      1.00 CNY (billed 5 s)" in capsys.readouterr().out
