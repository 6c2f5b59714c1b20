"""`inbetween cancel JOB|FILM` against the pipeline (moto server, the emulator, the template's handlers):
the CLI sends its request to the intake queue, the submit function carries it out where the provider key
is, and the CLI reports what happened: withdrawn, cancelled at the provider, or running (paid, stored)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from inbetween_local import cli
from inbetween_local.emulator import EmulatorConfig
from pipeline_kit import API_KEY, frame_png

KF2V = "wan2.2-kf2v-flash"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def emulator_config(request):
    pending_s, running_s = getattr(request, "param", (60.0, 0.4))  # PENDING for a minute by default
    return EmulatorConfig(
        api_keys=(API_KEY,), pending_s=pending_s, running_s=running_s, render_preset="ultrafast"
    )


@pytest.fixture
def env_overrides():
    return {"PROVIDER_CONCURRENCY": "1", "PROVIDER_BACKLOG": "0"}


@pytest.fixture
def cli_env(pipeline, monkeypatch):
    """The CLI finds the deployment through the INBETWEEN_* variables (AWS_ENDPOINT_URL: moto)."""
    settings = pipeline.settings
    monkeypatch.setenv("INBETWEEN_INBOX_BUCKET", settings.inbox_bucket)
    monkeypatch.setenv("INBETWEEN_OUTPUT_BUCKET", settings.output_bucket)
    monkeypatch.setenv("INBETWEEN_JOBS_TABLE", settings.jobs_table)
    monkeypatch.setenv("INBETWEEN_INTAKE_QUEUE_URL", settings.intake_queue_url)
    return pipeline


def drop_job(pipeline, name: str) -> None:
    job = {"model": KF2V, "resolution": "480P", "prompt": "a red square turns blue"}
    pipeline.drop(
        name,
        {
            "first.png": frame_png((220, 40, 40)),
            "last.png": frame_png((40, 60, 220)),
            "job.json": json.dumps(job).encode(),
        },
    )


def run_cli(pipeline, capsys, *args: str) -> tuple[int, str]:
    """The CLI in a thread (it waits for the deployment's answer), the pipeline's steps in this one."""
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(cli.main(["cancel", *args, "--timeout", "30", "--poll-s", "0.05"]))
    )
    thread.start()
    deadline = time.monotonic() + 40
    while thread.is_alive() and time.monotonic() < deadline:
        pipeline.submit_step()
        pipeline.poll_step()
        time.sleep(0.05)
    thread.join(timeout=5)
    assert result, "the CLI did not return"
    return result[0], capsys.readouterr().out


def test_cancel_of_a_pending_job_reports_it_cancelled_at_the_provider(cli_env, capsys):
    pipeline = cli_env
    drop_job(pipeline, "pending-cli")
    pipeline.submit_step()
    assert pipeline.job("pending-cli")["status"] == "SUBMITTED"
    code, out = run_cli(pipeline, capsys, "pending-cli")
    assert code == 0, out
    assert "cancel of job pending-cli" in out
    assert "pending-cli: CANCELED: its task was still PENDING at the provider and was cancelled there" in out
    assert pipeline.emulator.stats.cancels == 1 and pipeline.job("pending-cli")["status"] == "CANCELED"
    # and `status` says what the cancel did
    assert cli.main(["status", "pending-cli"]) == 0
    status = capsys.readouterr().out
    assert "status:    CANCELED" in status and "(cli): its task was still PENDING" in status


def test_cancel_of_a_waiting_job_reports_it_withdrawn(cli_env, capsys):
    pipeline = cli_env
    drop_job(pipeline, "first-cli")
    pipeline.submit_step()
    drop_job(pipeline, "second-cli")
    pipeline.submit_step()
    assert pipeline.job("second-cli")["status"] == "WAITING"
    code, out = run_cli(pipeline, capsys, pipeline.job("second-cli")["job_id"])
    assert code == 0, out
    assert "second-cli: CANCELED: withdrawn before it reached the provider" in out
    assert pipeline.emulator.stats.creates_accepted == 1 and pipeline.emulator.stats.cancels == 0


@pytest.mark.parametrize("emulator_config", [(0.1, 5.0)], indirect=True)
def test_cancel_of_a_running_job_says_it_is_paid_and_will_be_stored(cli_env, capsys):
    pipeline = cli_env
    drop_job(pipeline, "running-cli")
    pipeline.submit_step()
    task_id = pipeline.job("running-cli")["task_id"]
    deadline = time.monotonic() + 10
    while pipeline.emulator.task(task_id).status.value != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    code, out = run_cli(pipeline, capsys, "running-cli")
    assert code == 0, out
    assert "running-cli: RUNNING at the provider: its task was already RUNNING and cannot be cancelled" in out
    assert "it is paid, and its video will be stored" in out
    assert pipeline.emulator.stats.cancels == 0


def test_cancel_of_a_film_reports_each_shot(cli_env, capsys):
    pipeline = cli_env
    pipeline.drop(
        "film-cli",
        {
            "01.png": frame_png((220, 40, 40)),
            "02.png": frame_png((40, 200, 40)),
            "03.png": frame_png((40, 60, 220)),
            "film.json": json.dumps({"model": KF2V, "resolution": "480P"}).encode(),
        },
    )
    pipeline.submit_step()
    code, out = run_cli(pipeline, capsys, "film-cli")
    assert code == 0, out
    out = "\n".join(line for line in out.splitlines() if not line.startswith("{"))  # not the metrics
    assert "film film-cli: CANCELED" in out, out
    shot_lines = [line for line in out.splitlines() if line.startswith("  shot ")]
    assert len(shot_lines) == 2
    assert sum("cancelled there" in line for line in shot_lines) == 1
    assert sum("withdrawn" in line for line in shot_lines) == 1
    assert pipeline.emulator.stats.cancels == 1


@pytest.mark.parametrize("emulator_config", [(0.1, 0.4)], indirect=True)
def test_cancel_of_a_finished_job_sends_nothing(cli_env, capsys):
    pipeline = cli_env
    drop_job(pipeline, "done-cli")
    pipeline.run_until_final("done-cli", timeout=60)
    assert cli.main(["cancel", "done-cli"]) == 0
    assert "job done-cli is already STORED: nothing to cancel" in capsys.readouterr().out
    assert pipeline.receive(pipeline.settings.intake_queue_url) == []


def test_cancel_without_waiting_and_of_an_unknown_job(cli_env, capsys):
    pipeline = cli_env
    drop_job(pipeline, "nowait-cli")
    pipeline.submit_step()
    assert cli.main(["cancel", "nowait-cli", "--no-wait"]) == 0
    assert "see what it did with: inbetween status nowait-cli" in capsys.readouterr().out
    pipeline.submit_step()
    assert pipeline.job("nowait-cli")["status"] == "CANCELED"
    assert cli.main(["cancel", "nobody-cli"]) == 1
    assert "no job named 'nobody-cli'" in capsys.readouterr().err


def test_cancel_needs_to_know_the_intake_queue(cli_env, capsys, monkeypatch):
    pipeline = cli_env
    monkeypatch.delenv("INBETWEEN_INTAKE_QUEUE_URL")
    drop_job(pipeline, "noqueue-cli")
    pipeline.submit_step()
    assert cli.main(["cancel", "noqueue-cli"]) == 2
    assert "set INBETWEEN_INTAKE_QUEUE_URL" in capsys.readouterr().err
