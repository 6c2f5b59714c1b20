"""`inbetween drop-film` refuses a folder that is no film before it connects (no stack is running here:
a command that tried to connect would say so instead), and never shows a traceback."""

from __future__ import annotations

import pytest
from inbetween_local import cli

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"  # never read: the folder is refused on its names and film.json


@pytest.fixture
def no_stack(tmp_path, monkeypatch):
    monkeypatch.setenv("INBETWEEN_STATE_FILE", str(tmp_path / "missing.json"))
    for name in cli.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _folder(root, files: dict[str, bytes]):
    folder = root / "board"
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return folder


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"first.png": PNG, "01.png": PNG, "02.png": PNG}, "is not a film: it holds first.png"),
        (
            {"cover.png": PNG, "notes.md": b"x"},
            "is not a film: it has no film.json and no numbered keyframes",
        ),
        ({"01.png": PNG}, "a film needs at least 2 numbered keyframes; the folder has 1"),
        ({"film.json": b"{}"}, "a film needs at least 2 numbered keyframes; the folder has 0"),
        ({"1.png": PNG, "01.jpg": PNG}, "have the same number (1)"),
        (
            {"01.png": PNG, "02.png": PNG, "film.json": b'{"resolutoin": "720P"}'},
            "film.json has an unknown field 'resolutoin'; did you mean 'resolution'?",
        ),
        ({"01.png": PNG, "02.png": PNG, "07.txt": b"x"}, "07.txt sits beside no keyframe"),
    ],
)
def test_a_folder_that_is_no_film_is_refused_before_connecting(no_stack, files, says, capsys):
    folder = _folder(no_stack, files)
    code = cli.main(["drop-film", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err
    assert "no local stack is running" not in err
    assert "Traceback" not in err


def test_not_a_folder(no_stack, capsys):
    assert cli.main(["drop-film", str(no_stack / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_film_folder_goes_on_to_find_the_stack(no_stack, capsys):
    # Given a valid film folder, the checks pass and the CLI looks for a stack (there is none here)
    folder = _folder(no_stack, {"01.png": PNG, "02.png": PNG, "film.json": b'{"defaults": {"duration": 2}}'})
    assert cli.main(["drop-film", str(folder), "--name", "my-film"]) == 2
    assert "no local stack is running" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["status", "film"], ["fetch", "film", "--out", "x"], ["watch", "film"]])
def test_film_commands_without_a_stack(no_stack, argv, capsys):
    assert cli.main(argv) == 2
    assert "no local stack is running" in capsys.readouterr().err
