"""With no stack to talk to, every command says how to get one, and never shows a traceback."""

from __future__ import annotations

import json
import socket

import pytest
from inbetween_local import cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def no_stack(tmp_path, monkeypatch):
    monkeypatch.setenv("INBETWEEN_STATE_FILE", str(tmp_path / "missing.json"))
    for name in cli.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("argv", [["jobs"], ["status", "x"], ["watch", "x"], ["fetch", "x"]])
def test_no_local_stack_and_no_deployed_stack(no_stack, argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "no local stack is running: start one with `inbetween local up`" in err
    assert "--stack NAME" in err
    assert "Traceback" not in err


def test_a_state_file_left_by_a_stopped_stack(no_stack, monkeypatch, capsys):
    state = no_stack / "stale.json"
    state.write_text(json.dumps({"endpoint_url": f"http://127.0.0.1:{closed_port()}"}))
    monkeypatch.setenv("INBETWEEN_STATE_FILE", str(state))
    assert cli.main(["jobs"]) == 2
    err = capsys.readouterr().err
    assert "no local stack is running" in err and "left over" in err


def test_an_endpoint_url_where_nothing_answers(no_stack, capsys):
    assert cli.main(["jobs", "--endpoint-url", f"http://127.0.0.1:{closed_port()}"]) == 2
    assert "nothing answers at" in capsys.readouterr().err


def test_drop_needs_a_first_frame_or_a_first_clip(no_stack, capsys):
    assert cli.main(["drop"]) == 2
    assert "give a FIRST frame, or --first-clip" in capsys.readouterr().err
