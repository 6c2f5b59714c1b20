"""The local console: Powertools JSON records in, one readable line per job event out; every record in
the log file. First from sample records (each kind of line), then from the records the use cases
really emit for a job's whole life in the in-memory world."""

from __future__ import annotations

import io
import json
import logging
import struct
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from inbetween.observability import logger as pipeline_logger
from inbetween.provider.models import TaskState, TaskStatus
from inbetween.usecases import completion, intake, task_checks
from inbetween.webhooks.outcome import DeliveryResult
from inbetween_local.console import ConsoleStream, JobConsole, attached, clock_time, human_size
from inbetween_local.memory import memory_world
from inbetween_local.memory import test_settings as settings_for

from tests.unit.usecases.usecase_kit import FLASH, drop, job_named, pair

JOB_ID = "my-shot/5d1c0e9a7b21"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def record(message: str, level: str = "INFO", **fields: Any) -> dict[str, Any]:
    """A record as the functions' Powertools logger writes it (with Lambda context keys)."""
    return {
        "level": level,
        "location": "somewhere:1",
        "message": message,
        "timestamp": "2026-12-02 16:20:01,123+0000",
        "service": "inbetween",
        "cold_start": False,
        "function_name": "inbetween-local-SubmitFunction",
        "function_request_id": "5b7e",
        "correlation_id": JOB_ID,
        **fields,
    }


def feed_all(console: JobConsole, *records: dict[str, Any]) -> list[str]:
    return [line for r in records for line in console.feed(r)]


def texts(lines: list[str]) -> list[str]:
    """The lines without their time and subject columns."""
    return [line.split(None, 2)[2] for line in lines]


# ---------------------------------------------------------------------------------------------- lines
def test_a_jobs_life_is_a_line_per_event_with_its_time_and_name():
    # Given a console that has seen the folder's files dropped and settle
    clock = Clock()
    console = JobConsole(hold_s=0.5, clock=clock)
    held = feed_all(
        console,
        record("object dropped", job="my-shot", file="first.png"),
        record("drop settling", job="my-shot", recheck_in_s=2),
        record("object dropped", job="my-shot", file="last.png"),
        record("drop settling", job="my-shot", recheck_in_s=2),
        record("intake", item="ObjectCreated(...)", outcome="settling"),
    )
    # When the job's life goes on
    clock.now += 2
    lines = held + feed_all(
        console,
        record("job accepted", job_id=JOB_ID, job="my-shot", model=FLASH),
        record("task created", job_id=JOB_ID, task_id="task-7", model=FLASH),
        record("poll tick", checked=1, admitted=0),
        record("task status", job_id=JOB_ID, task_id="task-7", provider_status="RUNNING"),
        record("task ended", job_id=JOB_ID, task_id="task-7", provider_status="SUCCEEDED"),
        record(
            "video stored",
            job_id=JOB_ID,
            task_id="task-7",
            video_key=f"results/{JOB_ID}/video.mp4",
            video_bytes=412_100,
            cost="3.00 CNY",
        ),
        record("webhook attempt", job_id=JOB_ID, attempt=1, state="delivered", status=200),
        record("job notified", job_id=JOB_ID, status="STORED", event_type="video.generation.succeeded"),
        record("completion", item="CompleteJob(...)", outcome="stored"),
    )
    # Then each event is one line, the drops one line for the folder, the ticks and summaries silent
    assert texts(lines) == [
        "dropped first.png, last.png; settling",
        f"accepted ({FLASH}), job id {JOB_ID}",
        "submitted: task task-7",
        "provider: RUNNING",
        "provider: SUCCEEDED",
        f"stored results/{JOB_ID}/video.mp4 (412.1 KB, 3.00 CNY)",
        "webhook attempt 1: 200 delivered",
        "notified: STORED (video.generation.succeeded)",
    ]
    # and each line has the record's time and the job's name, also where the record has only its id
    assert all(line.startswith("16:20:01  my-shot ") for line in lines)


def test_held_drops_show_when_their_time_comes_without_another_event():
    clock = Clock()
    console = JobConsole(hold_s=0.5, clock=clock)
    assert console.feed(record("object dropped", job="a", file="first.png")) == []
    clock.now += 0.2
    assert console.due() == []
    clock.now += 0.4
    assert texts(console.due()) == ["dropped first.png"]
    assert console.due() == []


def test_whatever_is_still_held_comes_out_at_the_end():
    console = JobConsole(hold_s=60, clock=Clock())
    console.feed(record("object dropped", job="a", file="first.png"))
    console.feed(record("object dropped", job="b", file="first.png"))
    assert sorted(line.split()[1] for line in console.drain()) == ["a", "b"]


def test_a_folder_that_keeps_settling_says_so_once():
    console = JobConsole(hold_s=0, clock=Clock())
    lines = feed_all(
        console,
        record("drop settling", job="a", recheck_in_s=2),
        record("drop settling", job="a", recheck_in_s=2),
        record("drop settling", job="a", recheck_in_s=2),
    )
    assert texts(lines) == ["settling: looks again in 2 s"]


def test_without_a_cost_the_stored_line_shows_the_size_alone():
    console = JobConsole()
    lines = console.feed(
        record("video stored", job_id=JOB_ID, video_key="results/x/video.mp4", video_bytes=930)
    )
    assert texts(lines) == ["stored results/x/video.mp4 (930 bytes)"]


def test_a_cost_in_the_notifications_shape_reads_the_same():
    console = JobConsole()
    cost = {"amount": "3.00", "currency": "CNY", "billed_seconds": 5, "estimated": False}
    lines = console.feed(
        record("video stored", job_id=JOB_ID, video_key="results/x/video.mp4", video_bytes=2_000, cost=cost)
    )
    assert texts(lines) == ["stored results/x/video.mp4 (2.0 KB, 3.00 CNY)"]


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            {"attempt": 2, "state": "pending", "status": 500, "error": "answered 500", "retry_in_s": 30},
            "webhook attempt 2: 500 (answered 500); retry in 30 s",
        ),
        (
            {"attempt": 1, "state": "pending", "status": 0, "error": "connection refused", "retry_in_s": 5},
            "webhook attempt 1: no answer (connection refused); retry in 5 s",
        ),
        (
            {"attempt": 8, "state": "exhausted", "status": 503, "error": "answered 503"},
            "webhook attempt 8: 503 (answered 503); gave up, every attempt of the schedule failed",
        ),
        (
            {"attempt": 1, "state": "gone", "status": 410},
            "webhook attempt 1: 410 gone: the receiver asked not to be sent more",
        ),
        (
            {"attempt": 0, "state": "refused", "status": None, "error": "webhook_url must use https"},
            "webhook refused, never sent: webhook_url must use https",
        ),
    ],
)
def test_each_webhook_attempt_says_what_the_receiver_answered(fields, text):
    console = JobConsole()
    assert texts(console.feed(record("webhook attempt", job_id=JOB_ID, **fields))) == [text]


def test_a_failed_task_and_a_rejected_drop_say_why():
    console = JobConsole()
    lines = feed_all(
        console,
        record(
            "task ended",
            job_id=JOB_ID,
            task_id="t",
            provider_status="FAILED",
            code="DataInspectionFailed",
            error="the input was refused",
        ),
        record(
            "job notified",
            job_id=JOB_ID,
            status="FAILED",
            event_type="video.generation.failed",
            code="DataInspectionFailed",
        ),
        record(
            "job rejected",
            job_id="other/abc",
            job="other",
            code="IncompleteDrop",
            error="the job folder has no last frame after 900 seconds",
        ),
        record("drop incomplete", job="third", missing=["last frame"], timeout_s=900),
    )
    assert texts(lines) == [
        "provider: FAILED (DataInspectionFailed: the input was refused)",
        "notified: FAILED (video.generation.failed), error DataInspectionFailed",
        "rejected: IncompleteDrop: the job folder has no last frame after 900 seconds",
        "incomplete: waiting for the last frame; rejected if still missing after 900 s",
    ]


def test_warnings_and_errors_are_always_shown_even_without_a_job():
    console = JobConsole()
    lines = feed_all(
        console,
        record("task list failed; querying tasks one by one", level="WARNING", code="Throttling"),
        record(
            "poller step failed",
            level="ERROR",
            step="admit",
            exception="Traceback (most recent call last): ...",
            exception_name="KeyError",
        ),
    )
    assert lines[0].split(None, 1)[1].startswith("-")
    assert texts(lines) == [
        "WARNING: task list failed; querying tasks one by one (code=Throttling)",
        "ERROR: poller step failed (step=admit) [KeyError; the traceback is in the log file]",
    ]


def test_an_unknown_event_about_a_job_or_a_film_is_shown_by_its_message_and_fields():
    # an event added later (a held job, a film's step) is seen before it gets a line of its own
    console = JobConsole()
    lines = feed_all(
        console,
        record("job held", job_id=JOB_ID, job="my-shot", month="2026-12"),
        record("film handed to the stitch", film_run="story/abc", shots=3),
    )
    assert [line.split(None, 1)[1] for line in lines] == [
        "my-shot           job held (month=2026-12)",
        "story/abc         film handed to the stitch (shots=3)",
    ]


def test_the_webhook_receivers_view_is_a_line_too():
    console = JobConsole()
    assert texts(console.webhook_received("my-shot", "msg_1", verified=True)) == [
        "webhook received, signature verified (msg_1)"
    ]
    assert texts(console.webhook_received("", "msg_2", verified=False, reason="bad signature")) == [
        "webhook REJECTED by the receiver: bad signature"
    ]


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (999, "999 bytes"), (1000, "1.0 KB"), (412_100, "412.1 KB"), (3_200_000, "3.2 MB")],
)
def test_sizes_read_as_people_read_them(size, text):
    assert human_size(size) == text


def test_a_record_without_a_powertools_time_gets_the_clock_time():
    assert clock_time({"timestamp": "2026-12-02 16:20:01,123+0000"}, 0) == "16:20:01"
    assert len(clock_time({}, 0)) == 8


# ---------------------------------------------------------------------------------------------- stream
def test_every_raw_record_goes_to_the_log_file_and_the_lines_to_the_terminal():
    log_file, out = io.StringIO(), io.StringIO()
    stream = ConsoleStream(JobConsole(), log_file, out)
    tick = json.dumps(record("poll tick", checked=0))
    created = json.dumps(record("task created", job_id=JOB_ID, task_id="task-7"))
    # written in pieces, as a stream may be
    stream.write(tick + "\n" + created[:20])
    stream.write(created[20:] + "\n")
    stream.write("not json\n")
    assert log_file.getvalue().splitlines() == [tick, created, "not json"]
    assert texts(out.getvalue().splitlines()) == ["submitted: task task-7"]


def test_verbose_shows_the_raw_stream_too():
    log_file, out = io.StringIO(), io.StringIO()
    stream = ConsoleStream(JobConsole(), log_file, out, verbose=True)
    tick = json.dumps(record("poll tick", checked=0))
    stream.write(tick + "\n")
    assert out.getvalue().splitlines() == [tick]


def test_attached_takes_a_powertools_loggers_stream_and_gives_it_back():
    # Given a Powertools logger writing to its own stream
    original = io.StringIO()
    logger = Logger(service="console-test", logger_handler=logging.StreamHandler(original))
    log_file, out = io.StringIO(), io.StringIO()
    # When the console is attached while it logs
    with attached(logger, log_file, out, hold_s=60):
        logger.info("task created", extra={"job_id": JOB_ID, "task_id": "task-7"})
        logger.info("object dropped", extra={"job": "my-shot", "file": "first.png"})
    logger.info("after")
    # Then the records went to the log file as JSON, the lines to the terminal (held ones at the end)
    raw = [json.loads(line) for line in log_file.getvalue().splitlines()]
    assert [r["message"] for r in raw] == ["task created", "object dropped"]
    assert texts(out.getvalue().splitlines()) == ["submitted: task task-7", "dropped first.png"]
    # and the logger has its own stream again
    assert [json.loads(line)["message"] for line in original.getvalue().splitlines()] == ["after"]


def test_attached_refuses_a_handler_that_is_not_a_stream():
    logger = Logger(service="console-test-null", logger_handler=logging.NullHandler())
    with (
        pytest.raises(TypeError, match="not a stream handler"),
        attached(logger, io.StringIO(), io.StringIO()),
    ):
        pass


# ---------------------------------------------------------------------------------- the use cases' records
@pytest.fixture(autouse=True)
def pipeline_logs_at_info():
    """The job lines are INFO records (local up's default level); the level is put back afterwards."""
    level = pipeline_logger.log_level
    pipeline_logger.setLevel("INFO")
    yield
    pipeline_logger.setLevel(level)


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def small_mp4() -> bytes:
    """The smallest file the completion's MP4 check takes for a video."""
    hdlr = box(b"hdlr", b"\0" * 8 + b"vide" + b"\0" * 12 + b"VideoHandler\0")
    moov = box(b"moov", box(b"trak", box(b"mdia", hdlr)))
    return box(b"ftyp", b"isom\0\0\x02\0isomiso2mp41") + moov + box(b"mdat", b"\0" * 4096)


def test_the_use_cases_records_of_a_whole_job_make_its_life_in_at_most_ten_lines():
    # Given the in-memory world with a settle time and a default webhook, and the console on the
    # pipeline's own logger
    world = memory_world(
        settings_for(
            settle_seconds=2,
            default_model=FLASH,
            provider_concurrency=2,
            default_webhook_url="https://hooks.test/inbetween",
        )
    )
    deps = world.deps
    log_file, out = io.StringIO(), io.StringIO()
    # (drops held until the job's next event: the hold is real time, the world's clock is not)
    with attached(pipeline_logger, log_file, out, hold_s=60):
        # When a pair is dropped, settles, is accepted, runs and finishes
        drop(world, "life", pair())
        for name in ("first.png", "last.png"):
            intake.on_object_created(deps, deps.settings.inbox_bucket, f"inbox/life/{name}")
        world.clock.advance(5)
        assert intake.examine(deps, "life") is intake.IntakeOutcome.ACCEPTED
        job = job_named(world, "life")
        assert job is not None and job.task_id
        task_id = job.task_id
        world.provider.set_state(task_id, TaskState(task_id, TaskStatus.RUNNING))
        task_checks.observe_task(deps, job)
        task_checks.observe_task(deps, job_named(world, "life"))  # still RUNNING: no new line
        url = "https://dashscope-result.test/life.mp4"
        world.videos.videos[url] = small_mp4()
        world.provider.set_state(task_id, TaskState(task_id, TaskStatus.SUCCEEDED, video_url=url))
        task_checks.observe_task(deps, job_named(world, "life"))
        assert completion.complete(deps, job.job_id) is completion.CompletionOutcome.STORED
    # Then the console shows the job's life, each event once, in order
    lines = out.getvalue().splitlines()
    assert len(lines) <= 10, lines
    assert texts(lines) == [
        "dropped first.png, last.png; settling",
        f"accepted ({FLASH}), job id {job.job_id}",
        f"submitted: task {task_id}",
        "provider: RUNNING",
        "provider: SUCCEEDED",
        # the bill: 5 billed seconds at the flash model's 1080P price, CNY 0.48 a second
        f"stored results/life/{job.run_id}/video.mp4 ({human_size(len(small_mp4()))}, 2.40 CNY)",
        "webhook attempt 1: 200 delivered",
        "notified: STORED (video.generation.succeeded)",
    ]
    assert all(line.split()[1] == "life" for line in lines)
    # and the log file has every record the use cases wrote, as JSON
    messages = [json.loads(line)["message"] for line in log_file.getvalue().splitlines()]
    assert messages.count("object dropped") == 2 and "job notified" in messages


def test_a_webhook_retry_is_a_line_with_the_receivers_answer():
    world = memory_world(
        settings_for(default_model=FLASH, provider_concurrency=2, default_webhook_url="https://hooks.test/x")
    )
    world.webhooks.answers.append(DeliveryResult(False, 500, True, None, False, "answered 500"))
    log_file, out = io.StringIO(), io.StringIO()
    with attached(pipeline_logger, log_file, out, hold_s=0):
        drop(world, "retry", pair())
        intake.examine(world.deps, "retry")
        job = job_named(world, "retry")
        assert job is not None and job.task_id
        world.provider.set_state(
            job.task_id, TaskState(job.task_id, TaskStatus.FAILED, code="InternalError", message="boom")
        )
        task_checks.observe_task(world.deps, job)
    lines = texts(out.getvalue().splitlines())
    assert "provider: FAILED (InternalError: boom)" in lines
    retry = next(line for line in lines if line.startswith("webhook attempt 1"))
    assert retry.startswith("webhook attempt 1: 500 (answered 500); retry in ")
    assert lines[-1] == "notified: FAILED (video.generation.failed), error InternalError"


def test_an_incomplete_drop_says_what_it_waits_for_and_then_why_it_was_rejected():
    world = memory_world(settings_for(default_model=FLASH, incomplete_drop_timeout_s=60))
    log_file, out = io.StringIO(), io.StringIO()
    with attached(pipeline_logger, log_file, out, hold_s=60):
        # When a kf2v folder gets its first frame only, and never its last
        drop(world, "half", {"first.png": pair()["first.png"]})
        intake.on_object_created(world.deps, world.deps.settings.inbox_bucket, "inbox/half/first.png")
        world.clock.advance(61)
        assert intake.settle_overdue_drops(world.deps) == 1
    # Then the console says what the folder waits for, then why it was rejected, then the notification
    assert texts(out.getvalue().splitlines()) == [
        "dropped first.png",
        "incomplete: waiting for the last frame (last.<ext>); rejected if still missing after 60 s",
        "rejected: IncompleteDrop: the job folder has no last frame (last.<ext>) after 60 seconds",
        "notified: REJECTED (video.generation.failed), error IncompleteDrop",
    ]
