"""`inbetween local up`'s console: a job dropped into the running stack shows its life in at most ten
readable lines (its task id, its stored size, its notification), idle ticks print nothing, and the
functions' JSON records go to the log file whose path it printed.

The stack runs in its own process, as a user starts it (its environment is process-global, and this
folder's shared stack runs in the tests' process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from inbetween_local import cli
from inbetween_local.console import human_size

from tests.e2e.conftest import SAMPLES

ROOT = Path(__file__).resolve().parents[2]
JOB = "console-e2e"

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("e2e-console")]


class Terminal:
    """What ``inbetween local up`` prints, line by line, as it prints it."""

    def __init__(self, process: subprocess.Popen[str]):
        self.lines: list[str] = []
        self._process = process
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, predicate, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if predicate(line)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self._process.poll() is not None:
                    raise AssertionError(
                        "not printed in time; the terminal showed:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(min(left, 0.5))

    def close(self, timeout: float = 30) -> None:
        self._reader.join(timeout=timeout)


@pytest.fixture
def local_up(tmp_path, monkeypatch):
    """``inbetween local up`` running in its own process; stopped with Ctrl-C (SIGINT) afterwards."""
    for name in cli.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("INBETWEEN_STATE_FILE", raising=False)
    state, log = tmp_path / "state.json", tmp_path / "functions.log"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("shared", "local", "media", "."))
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inbetween_local.cli",
            "local",
            "up",
            "--state-file",
            str(state),
            "--log-file",
            str(log),
            "--poller-period-s",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    terminal = Terminal(process)
    try:
        yield terminal, state, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        terminal.close()
        assert process.stderr is not None
        process.stderr.close()


def test_a_dropped_job_shows_its_life_in_at_most_ten_lines_and_the_log_file_has_the_records(local_up, capsys):
    terminal, state, log = local_up
    # Given a local stack that is up, and says where the functions' logs go
    terminal.wait_for(lambda line: line.startswith("job events, one line each"), timeout=120)
    assert f"the functions' JSON logs: {log}" in "\n".join(terminal.lines)
    # and has idled through a few poller ticks
    time.sleep(3)
    header = len(terminal.lines)

    # When a pair is dropped into its inbox
    assert (
        cli.main(
            [
                "drop",
                str(SAMPLES / "first.png"),
                str(SAMPLES / "last.png"),
                "--prompt",
                "the ball rolls to the right",
                "--job",
                JOB,
                "--model",
                "wan2.2-kf2v-flash",
                "--state-file",
                str(state),
            ]
        )
        == 0
    )
    # Then the console follows it to its notification
    terminal.wait_for(lambda line: f" {JOB} " in line and "notified:" in line, timeout=120)
    time.sleep(1.5)  # anything printed just after (a late line would count against the ten)
    capsys.readouterr()
    assert cli.main(["status", JOB, "--state-file", str(state)]) == 0
    status = capsys.readouterr().out
    task_id = next(line.split()[-1] for line in status.splitlines() if line.startswith("task id:"))
    size = int(
        next(line for line in status.splitlines() if line.startswith("video:")).split("(")[1].split()[0]
    )

    events = terminal.lines[header:]
    life = [line for line in events if line.split()[1:2] == [JOB]]
    # in at most ten readable lines, each with its time and the job's name
    assert 1 <= len(life) <= 10, "\n".join(life)
    assert all(not line.lstrip().startswith("{") for line in events), "raw JSON on the terminal"
    # nothing else was printed meanwhile but a warning, if one came: the poller's ticks are silent
    others = [line for line in events if line not in life]
    assert all(" WARNING: " in line or " ERROR: " in line for line in others), "\n".join(events)
    # with the task id, the stored video's size, and the notification
    assert any(f"submitted: task {task_id}" in line for line in life)
    stored = next(line for line in life if " stored " in line)
    assert f"video.mp4 ({human_size(size)}" in stored
    assert any("notified: STORED (video.generation.succeeded)" in line for line in life)
    assert any("webhook attempt 1: " in line and "delivered" in line for line in life)

    # And the log file has the functions' raw records, as JSON, the idle ticks and the job's alike
    records = [json.loads(line) for line in log.read_text().splitlines()]
    messages = [r["message"] for r in records]
    assert messages.count("poll tick") >= 3
    created = [r for r in records if r["message"] == "task created"]
    assert [r["task_id"] for r in created] == [task_id]
    assert all(r.get("service") == "inbetween" and "timestamp" in r for r in records)
