"""The `inbetween` CLI against a running local stack (found through its state file)."""

from __future__ import annotations

import pytest
from inbetween_local import cli

from tests.e2e.conftest import SAMPLES, STACK_MARKS, probe_mp4

pytestmark = STACK_MARKS


@pytest.fixture
def cli_env(stack, tmp_path, monkeypatch):
    state = stack.write_state(tmp_path / "state.json")
    monkeypatch.setenv("INBETWEEN_STATE_FILE", str(state))
    for name in cli.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    return stack


def test_drop_wait_then_jobs_status_and_fetch(cli_env, tmp_path, capsys):
    # When a pair is dropped with --wait
    code = cli.main(
        [
            "drop",
            str(SAMPLES / "first.png"),
            str(SAMPLES / "last.png"),
            "--prompt",
            "ball",
            "--job",
            "cli-e2e",
            "--no-prompt-extend",
            "--wait",
            "--timeout",
            "90",
        ]
    )
    out = capsys.readouterr().out
    # Then it follows the job to STORED
    assert code == 0, out
    assert "uploaded s3://" in out and "inbox/cli-e2e/job.json" in out
    assert "status:    STORED" in out

    # And `jobs` lists it as stored
    assert cli.main(["jobs"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("cli-e2e ")]
    assert rows and "STORED" in rows[0]

    # And `status` shows it by name and by job id
    assert cli.main(["status", "cli-e2e"]) == 0
    status = capsys.readouterr().out
    assert "status:    STORED" in status
    job_id = next(line.split()[-1] for line in status.splitlines() if line.startswith("job id:"))
    assert cli.main(["status", job_id]) == 0
    assert job_id in capsys.readouterr().out

    # And `fetch` downloads the video
    target = tmp_path / "out" / "cli.mp4"
    assert cli.main(["fetch", "cli-e2e", "-o", str(target)]) == 0
    assert probe_mp4(target)["codec"] == "h264"


def test_a_first_frame_alone_with_a_duration_makes_a_wan27_video_with_sound(cli_env, tmp_path, capsys):
    # When only a first frame is dropped, with a duration, on the deployment's default model (wan2.7-i2v)
    code = cli.main(
        [
            "drop",
            str(SAMPLES / "first.png"),
            "--duration",
            "3",
            "--resolution",
            "720P",
            "--job",
            "cli-e2e-first-only",
            "--wait",
            "--timeout",
            "90",
        ]
    )
    out = capsys.readouterr().out
    # Then the job is stored, and its video lasts the asked 3 s, with a soundtrack
    assert code == 0, out
    assert "status:    STORED" in out
    target = tmp_path / "first-only.mp4"
    assert cli.main(["fetch", "cli-e2e-first-only", "-o", str(target)]) == 0
    import av

    with av.open(str(target)) as container:
        video = container.streams.video[0]
        assert round(float(video.duration * video.time_base)) == 3
        assert container.streams.audio, "wan2.7-i2v videos have a soundtrack"


def test_a_failed_job_ends_drop_wait_with_its_error(cli_env, capsys):
    # Given a prompt the emulator fails (content inspection)
    code = cli.main(
        [
            "drop",
            str(SAMPLES / "first.png"),
            str(SAMPLES / "last.png"),
            "--prompt",
            "[fail:DataInspectionFailed]",
            "--job",
            "cli-e2e-fail",
            "--wait",
            "--timeout",
            "90",
        ]
    )
    out = capsys.readouterr().out
    # Then --wait reports the final state and the provider's error, and exits non-zero
    assert code == 1, out
    assert "status:    FAILED" in out
    assert "DataInspectionFailed" in out
    # And `fetch` says there is no video, without a traceback
    assert cli.main(["fetch", "cli-e2e-fail", "-o", "unused.mp4"]) == 1
    err = capsys.readouterr().err
    assert "has no video: it is FAILED" in err
    assert "Traceback" not in err


def test_status_of_an_unknown_job_is_a_clear_error(cli_env, capsys):
    assert cli.main(["status", "no-such-job"]) == 1
    assert "no job named 'no-such-job'" in capsys.readouterr().err
