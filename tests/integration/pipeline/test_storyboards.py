"""Storyboards through the pipeline (moto, the emulator, the real handlers, the stitch function): a folder
of numbered keyframes becomes one verified film.mp4; a changed keyframe remakes only its two shots."""

from __future__ import annotations

import io
import json
import random

import av
import pytest
from faults import FunctionCrashed
from inbetween.domain.films import FilmStatus
from inbetween.usecases import film_runs
from PIL import Image

FILM = "harbour"
COLOURS = [(220, 60, 60), (60, 200, 60), (60, 60, 220), (220, 200, 60), (60, 200, 200), (200, 60, 200)]
FILM_JSON = {
    "model": "wan2.7-i2v",
    "resolution": "720P",
    "defaults": {"duration": 2, "prompt": "the tide comes in"},
}
FPS, SHOT_S = 30, 2

pytestmark = pytest.mark.timeout(240)


def _png(colour, marker=0) -> bytes:
    image = Image.new("RGB", (320, 240), colour)
    for x in range(0, 320, 16):  # a pattern, so that the seams' keyframe match is not a flat colour's
        image.putpixel((x, (x * 7 + marker) % 240), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _sync(pipeline, files: dict[str, bytes]) -> None:
    names = list(files)
    random.Random(7).shuffle(names)  # `aws s3 sync` lands files in any order
    for name in names:
        pipeline.drop(FILM, {name: files[name]})


def _film_runs(pipeline) -> list[dict]:
    table = pipeline.session.resource("dynamodb").Table(pipeline.settings.jobs_table)
    items = table.scan(ConsistentRead=True)["Items"]
    return sorted((i for i in items if str(i["pk"]).startswith("film#")), key=lambda i: i["created_at"])


def _stored_runs(pipeline, count: int):
    def done() -> bool:
        runs = _film_runs(pipeline)
        return len(runs) >= count and all(
            r["status"] in ("STORED", "FAILED") and r.get("notified_at") for r in runs
        )

    return done


def _frames(pipeline, key: str, tmp_path) -> tuple[int, bool]:
    path = tmp_path / key.replace("/", "_")
    pipeline.s3.download_file(pipeline.settings.output_bucket, key, str(path))
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0)), bool(container.streams.audio)


def test_six_keyframes_become_one_film_and_a_changed_keyframe_remakes_two_shots(pipeline, tmp_path):
    keyframes = {f"{i:02d}.png": _png(c) for i, c in enumerate(COLOURS, start=1)}
    # Given six numbered keyframes and a film.json synced into the inbox, in any order
    _sync(pipeline, {**keyframes, "film.json": json.dumps(FILM_JSON).encode()})
    # When the pipeline works through them
    pipeline.run_until(_stored_runs(pipeline, 1), timeout=180)
    (run,) = _film_runs(pipeline)
    # Then one film of five shots: each shot's frames, less one per seam, with sound
    assert run["status"] == "STORED", run.get("error")
    expected = 5 * FPS * SHOT_S - 4
    assert int(run["frames"]) == expected
    assert _frames(pipeline, run["video_key"], tmp_path) == (expected, True)
    prefix = run["video_key"].rsplit("/", 1)[0]
    for name in ("poster.jpg", "contact-sheet.png"):
        assert pipeline.s3.head_object(Bucket=pipeline.settings.output_bucket, Key=f"{prefix}/{name}")
    assert pipeline.emulator.stats.creates_accepted == 5
    # and one film.succeeded event, no per-shot events (film.json does not ask for them)
    notes = pipeline.notifications()
    assert [n["message"]["type"] for n in notes] == ["film.succeeded"]
    data = notes[0]["message"]["data"]
    assert [s["keyframes"] for s in data["shots"]] == [[1, 2], [2, 3], [3, 4], [4, 5], [5, 6]]
    assert all(s["status"] == "STORED" and s["task_id"] and s["usage"] for s in data["shots"])

    # When keyframe 4 is changed and the folder synced again
    pipeline.drop(FILM, {"04.png": _png(COLOURS[3], marker=5)})
    pipeline.run_until(_stored_runs(pipeline, 2), timeout=180)
    # Then exactly two new provider tasks (shots 3->4 and 4->5) and a new film; the others are reused
    assert pipeline.emulator.stats.creates_accepted == 7
    newest = _film_runs(pipeline)[-1]
    assert newest["status"] == "STORED" and newest["video_key"] != run["video_key"]
    assert [n["message"]["type"] for n in pipeline.notifications()] == ["film.succeeded"]


def test_a_failed_shot_fails_the_film_naming_it_and_fixing_it_makes_one_new_task(pipeline):
    keyframes = {f"{i:02d}.png": _png(c) for i, c in enumerate(COLOURS[:3], start=1)}
    broken = {**FILM_JSON, "shots": {"2": {"prompt": "[fail:InternalError.Algo] the tide"}}}
    _sync(pipeline, {**keyframes, "film.json": json.dumps(broken).encode()})
    pipeline.run_until(_stored_runs(pipeline, 1), timeout=180)
    (run,) = _film_runs(pipeline)
    assert run["status"] == "FAILED" and run["error"]["field"] == "shots.2"
    assert "shot 2 (keyframe 2 to 3)" in run["error"]["message"]
    assert [n["message"]["type"] for n in pipeline.notifications()] == ["film.failed"]
    error_json = pipeline.read_json(pipeline.settings.inbox_bucket, f"inbox/{FILM}/error.json")
    assert error_json["error"]["field"] == "shots.2"
    # When the shot's prompt is fixed
    pipeline.drop(FILM, {"film.json": json.dumps(FILM_JSON).encode()})
    pipeline.run_until(_stored_runs(pipeline, 2), timeout=180)
    # Then one new task (shot 2), shot 1 reused, and the film completes
    assert pipeline.emulator.stats.creates_accepted == 3
    assert _film_runs(pipeline)[-1]["status"] == "STORED"
    assert [n["message"]["type"] for n in pipeline.notifications()] == ["film.succeeded"]


def test_continue_mode_makes_each_shot_from_the_tail_of_the_one_before_then_one_film(pipeline, tmp_path):
    # Given three keyframes and a film.json asking each shot to continue the one before
    keyframes = {f"{i:02d}.png": _png(c) for i, c in enumerate(COLOURS[:3], start=1)}
    continued = {**FILM_JSON, "mode": "continue"}
    _sync(pipeline, {**keyframes, "film.json": json.dumps(continued).encode()})
    # When the pipeline works through it
    pipeline.run_until(_stored_runs(pipeline, 1), timeout=180)
    (run,) = _film_runs(pipeline)
    assert run["status"] == "STORED", run.get("error")
    # Then two tasks, one after the other: the second continues the first's last 2 s toward keyframe 3,
    # so it asks for (and is billed) 2 + 2 s
    assert pipeline.emulator.stats.creates_accepted == 2
    shots = [pipeline.raw_item(f"job#{s['job_id']}") for s in run["shots"]]
    assert [int(s["spec"]["duration"]) for s in shots] == [SHOT_S, SHOT_S + 2]
    assert set(shots[1]["inputs"]) == {"first_clip", "last"}
    tail = shots[1]["inputs"]["first_clip"]
    assert tail["bucket"] == pipeline.settings.output_bucket and tail["key"].endswith("/tail.mp4")
    assert float(shots[1]["created_at"]) >= float(shots[0]["finished_at"])
    # and the film shows each shot's own seconds once: the repeated tail is cut from the continued clip
    expected = 2 * FPS * SHOT_S
    assert int(run["frames"]) == expected
    assert _frames(pipeline, run["video_key"], tmp_path) == (expected, True)
    notes = pipeline.notifications()
    assert [n["message"]["type"] for n in notes] == ["film.succeeded"]
    assert [s["usage"]["duration"] for s in notes[0]["message"]["data"]["shots"]] == [SHOT_S, SHOT_S + 2]


class CrashingFilmStore:
    """A store whose stitch dies once after the film is uploaded (before the run is STORED), and once
    after it is STORED (before it is announced): as a Lambda process dying there would."""

    def __init__(self, inner):
        self.inner = inner
        self.crashes = {"before stored": 1, "before announced": 1}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _crash(self, where: str) -> None:
        if self.crashes[where] > 0:
            self.crashes[where] -= 1
            raise FunctionCrashed(f"injected: the stitch died {where}")

    def move_film_run(self, run_id, expected, new, **changes):
        if new is FilmStatus.STORED:
            self._crash("before stored")
        return self.inner.move_film_run(run_id, expected, new, **changes)

    def claim_film_notification(self, run_id, *, now, until):
        run = self.inner.get_film_run(run_id)
        if run is not None and run.status is FilmStatus.STORED:
            self._crash("before announced")
        return self.inner.claim_film_notification(run_id, now=now, until=until)


def test_a_stitch_that_dies_is_redelivered_and_stores_and_announces_the_film_once(pipeline, tmp_path):
    store = CrashingFilmStore(pipeline.deps.store)
    pipeline.replace(store=store)
    keyframes = {f"{i:02d}.png": _png(c) for i, c in enumerate(COLOURS[:3], start=1)}
    _sync(pipeline, {**keyframes, "film.json": json.dumps(FILM_JSON).encode()})
    # When the stitch dies after uploading the film, and again after storing the run
    for _ in range(2):
        with pytest.raises(FunctionCrashed):
            pipeline.run_until(_stored_runs(pipeline, 1), timeout=180)
    assert store.crashes == {"before stored": 0, "before announced": 0}
    # Then its message comes back and the film is stored and announced once
    pipeline.run_until(_stored_runs(pipeline, 1), timeout=60)
    (run,) = _film_runs(pipeline)
    assert run["status"] == "STORED"
    assert _frames(pipeline, run["video_key"], tmp_path) == (2 * FPS * SHOT_S - 1, True)
    # and nothing later says it again: the poller's safety net, past every due time
    pipeline.advance(film_runs.STITCH_OVERDUE_S + 60)
    pipeline.poll_step()
    pipeline.stitch_step()
    assert [n["message"]["type"] for n in pipeline.notifications()] == ["film.succeeded"]
    assert pipeline.emulator.stats.creates_accepted == 2
