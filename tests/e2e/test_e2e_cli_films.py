"""The `inbetween` CLI's films against a running local stack: drop-film --wait, status FILM, fetch FILM."""

from __future__ import annotations

import io
import json
import time

import av
import pytest
from inbetween_local import cli
from PIL import Image

from tests.e2e.conftest import STACK_MARKS

pytestmark = [*STACK_MARKS, pytest.mark.timeout(180)]

FILM = "cli-e2e-film"
COLOURS = [(220, 60, 60), (60, 200, 60), (60, 60, 220)]
FPS, SHOT_S = 30, 2


@pytest.fixture
def cli_env(stack, tmp_path, monkeypatch):
    state = stack.write_state(tmp_path / "state.json")
    monkeypatch.setenv("INBETWEEN_STATE_FILE", str(state))
    for name in cli.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    return stack


def _png(colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (320, 240), colour)
    for x in range(0, 320, 8):  # a pattern, so that the stitch's seam check has something to match
        for y in range(0, 240, 40):
            image.putpixel((x, (y + x * 3) % 240), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _shot_rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("SHOT "))
    return [line.split() for line in lines[header + 1 :] if line.strip()]


def test_drop_film_wait_then_status_and_fetch(cli_env, tmp_path, capsys):
    # Given a storyboard folder: three keyframes, a film.json, and a file that is no part of a film
    folder = tmp_path / FILM
    folder.mkdir()
    for number, colour in enumerate(COLOURS, start=1):
        (folder / f"{number:02d}.png").write_bytes(_png(colour))
    film_json = {"model": "wan2.7-i2v", "resolution": "720P", "defaults": {"duration": SHOT_S}}
    (folder / "film.json").write_text(json.dumps(film_json))
    (folder / "notes.md").write_text("not uploaded")

    # When it is dropped with --wait
    started = time.monotonic()
    code = cli.main(["drop-film", str(folder), "--wait", "--timeout", "90"])
    out = capsys.readouterr().out
    # Then its film files are uploaded (film.json first) and the film is followed to STORED
    assert code == 0, out
    uploaded = [line.rsplit("/", 1)[-1] for line in out.splitlines() if line.startswith("uploaded s3://")]
    assert uploaded == ["film.json", "01.png", "02.png", "03.png"]
    assert f"inbox/{FILM}/01.png" in out
    assert "skipped (not part of a film): notes.md" in out
    assert "status:    STORED" in out
    run_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("run id:"))
    assert run_id.startswith(f"{FILM}/")

    # And `status FILM` shows the run and its two shots, stored, with their provider task ids
    assert cli.main(["status", FILM]) == 0
    status = capsys.readouterr().out
    assert f"film:      {FILM}" in status and "status:    STORED" in status
    assert f"run id:    {run_id}" in status
    assert "shots:     2 (independent, seam 0 frames)" in status
    frames = 2 * FPS * SHOT_S - 1  # two 60-frame clips, the frame at their seam shared
    assert f"frames:    {frames}" in status
    rows = _shot_rows(status)
    assert [row[:3] for row in rows] == [["1", "1->2", "STORED"], ["2", "2->3", "STORED"]]
    assert all(row[3] != "-" for row in rows), rows  # task ids
    assert all(row[4] == f"{SHOT_S}s" for row in rows), rows

    # And `jobs` lists the film beside its shots' jobs
    assert cli.main(["jobs"]) == 0
    films = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{FILM} ")]
    assert any(run_id in line and "STORED" in line for line in films), films

    # And `fetch FILM` downloads the film, its poster and its contact sheet
    out_dir = tmp_path / "out"
    assert cli.main(["fetch", FILM, "--out", str(out_dir)]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["contact-sheet.png", "film.mp4", "poster.jpg"]
    with av.open(str(out_dir / "film.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames
    assert Image.open(out_dir / "poster.jpg").format == "JPEG"
    assert Image.open(out_dir / "contact-sheet.png").format == "PNG"
    # (a film is three files: -o FILE is refused)
    assert cli.main(["fetch", FILM, "-o", str(tmp_path / "x.mp4")]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    print(f"film made and fetched in {time.monotonic() - started:.1f} s")

    # When the same folder is dropped again: the pipeline has that run already (nothing new is made),
    # and --wait knows it from the folder's content instead of waiting for a new run
    again = time.monotonic()
    code = cli.main(["drop-film", str(folder), "--wait", "--timeout", "30"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"run id:    {run_id}" in out
    assert time.monotonic() - again < 10


def test_a_film_without_a_stored_run_is_a_clear_fetch_error(cli_env, tmp_path, capsys):
    # Given a film whose keyframes differ in aspect ratio: the pipeline rejects it before paying
    folder = tmp_path / "cli-e2e-film-mixed"
    folder.mkdir()
    (folder / "01.png").write_bytes(_png(COLOURS[0]))
    buffer = io.BytesIO()
    Image.new("RGB", (240, 320), COLOURS[1]).save(buffer, "PNG")
    (folder / "02.png").write_bytes(buffer.getvalue())
    (folder / "film.json").write_text(json.dumps({"model": "wan2.7-i2v", "resolution": "720P"}))
    code = cli.main(["drop-film", str(folder), "--wait", "--timeout", "60"])
    out = capsys.readouterr().out
    # Then --wait ends with the rejection and its reason, and exits non-zero
    assert code == 1, out
    assert "status:    REJECTED" in out and "MixedAspectRatios" in out
    # And `fetch` says there is no stored run, naming the newest run's state and error
    assert cli.main(["fetch", folder.name, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "has no stored run" in err and "REJECTED (MixedAspectRatios" in err
    assert "Traceback" not in err
